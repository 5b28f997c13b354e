// Bearer API keys: who is calling, what they may do, and how fast.
import { HttpError, type Request } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { ControlPlane } from '../store/index.js';
import type { Principal, Scope } from '../store/types.js';

export async function authenticate(cp: ControlPlane, req: Request, rateLimit: number): Promise<Principal> {
  const header = req.headers['authorization'] ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) {
    countBadInput('api', 'missing_key');
    throw new HttpError(401, 'unauthorized', 'missing API key: send Authorization: Bearer <key>', { 'www-authenticate': 'Bearer' });
  }
  const p = await cp.tenants.authenticate(m[1]);
  if (!p) {
    countBadInput('api', 'invalid_key');
    throw new HttpError(401, 'unauthorized', 'invalid API key', { 'www-authenticate': 'Bearer' });
  }
  if (!(await cp.state.hit(`api:${p.keyId}`, rateLimit, 1000))) {
    countBadInput('api', 'rate_limited');
    throw new HttpError(429, 'rate_limited', `more than ${rateLimit} requests per second for this key`, { 'retry-after': '1' });
  }
  return p;
}

export function requireScope(p: Principal, scope: Scope): void {
  if (p.platformAdmin || p.scopes.includes(scope)) return;
  throw new HttpError(403, 'forbidden', `this key lacks the ${scope} scope`);
}

export function requireAdmin(p: Principal): void {
  if (!p.platformAdmin) throw new HttpError(403, 'forbidden', 'only a platform-admin key may do this');
}

/** The tenant a read is limited to: the key's own, or all for a platform admin. */
export function readScope(p: Principal): string | null {
  return p.platformAdmin ? null : p.tenantId;
}

/** The tenant a new object belongs to; another tenant's id reads as not found. */
export function writeTenant(p: Principal, requested: string | undefined): string {
  if (p.platformAdmin) {
    if (!requested) throw new HttpError(422, 'invalid_field', 'tenantId: is required with a platform-admin key');
    return requested;
  }
  if (requested && requested !== p.tenantId) throw new HttpError(404, 'not_found', 'tenant not found');
  return p.tenantId!;
}
