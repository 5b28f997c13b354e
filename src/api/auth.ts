// Bearer API keys: who is calling, what they may do, and how fast.
// A key held in memory (valid, not revoked) costs no database access; an
// unknown one costs one lookup, and each source address gets only
// FAILED_AUTH_LIMIT of those per window (429 after), so a flood of invented
// keys never reaches the database beyond that. The budget is held twice: by
// this thread (synchronous, counting lookups in flight, so a concurrent burst
// is held before it costs anything) and in the shared state (failed lookups,
// counted across every worker and, with Redis, every node: spreading a
// flood over them does not multiply it).
import { HttpError, type Request } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { ControlPlane } from '../store/index.js';
import type { Principal, Scope } from '../store/types.js';
import { clientKey, FailureLimiter } from './failure-limiter.js';

/** Lookups of unknown keys per source address (IPv6: per /64) per window. */
export const FAILED_AUTH_LIMIT = 20;
export const FAILED_AUTH_WINDOW_MS = 10_000;
/** Longer than any key we issue or anyone would configure: refused without a lookup. */
const MAX_KEY_CHARS = 512;

// One limiter per control plane (one per server; tests run several in a process).
const limiters = new WeakMap<ControlPlane, FailureLimiter>();

export function failureLimiter(cp: ControlPlane): FailureLimiter {
  let l = limiters.get(cp);
  if (!l) limiters.set(cp, (l = new FailureLimiter(FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW_MS)));
  return l;
}

const unauthorized = (message: string) => new HttpError(401, 'unauthorized', message, { 'www-authenticate': 'Bearer' });

export async function authenticate(cp: ControlPlane, req: Request, rateLimit: number): Promise<Principal> {
  const header = req.headers['authorization'] ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) {
    countBadInput('api', 'missing_key');
    throw unauthorized('missing API key: send Authorization: Bearer <key>');
  }
  const key = m[1];
  let p = key.length <= MAX_KEY_CHARS ? cp.tenants.cached(key) : undefined;
  if (!p) {
    const limiter = failureLimiter(cp);
    // A key found valid before is re-read (its cached copy aged) without
    // spending the address's budget: a neighbour's flood does not lock it out.
    const known = key.length <= MAX_KEY_CHARS && cp.tenants.known(key);
    const shared = `authfail:${clientKey(req.remoteAddress)}`;
    let waitMs = known ? 0 : limiter.begin(req.remoteAddress);
    // The shared budget is read, not spent: only a lookup that fails spends it.
    if (!waitMs && !known && !(await cp.state.hit(shared, FAILED_AUTH_LIMIT - 1, FAILED_AUTH_WINDOW_MS, 0))) {
      limiter.succeeded(req.remoteAddress); // this thread's count was not used
      waitMs = FAILED_AUTH_WINDOW_MS - (Date.now() % FAILED_AUTH_WINDOW_MS);
    }
    if (waitMs > 0) {
      countBadInput('api', 'auth_rate_limited');
      throw new HttpError(429, 'rate_limited', 'too many failed authentications from this address; retry later', {
        'retry-after': String(Math.ceil(waitMs / 1000)),
      });
    }
    const found = key.length <= MAX_KEY_CHARS ? await cp.tenants.lookup(key) : null;
    if (!found) {
      if (!known) await cp.state.hit(shared, FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW_MS);
      countBadInput('api', 'invalid_key');
      throw unauthorized('invalid API key');
    }
    if (!known) limiter.succeeded(req.remoteAddress);
    p = found;
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
