// Mounts the admin API on the server's router: authentication, scope checks,
// rate limiting, validation, and mapping of store errors to HTTP.
import { HttpError, type Request, type Router } from '../server/http.js';
import type { ControlPlane } from '../store/index.js';
import { ConflictError, InvalidError, NotFoundError } from '../store/errors.js';
import { authenticate } from './auth.js';
import { checkAccess, ROUTES } from './routes.js';
import { openApiDocument } from './openapi.js';
import { DirectReply } from '../server/stream-reply.js';
import type { NetworkPolicy } from '../pipeline/address-policy.js';

export interface ApiOptions {
  rateLimit: number;
  /** Request body limit for the API (413 above it). */
  bodyLimit?: number;
  /** Where agents' HTTP tools may point (TOOLS_ALLOW_PRIVATE_NETWORKS); default: public addresses only. */
  toolNetwork?: NetworkPolicy;
}

function storeToHttp(err: unknown): never {
  if (err instanceof NotFoundError) throw new HttpError(404, 'not_found', err.message);
  if (err instanceof ConflictError) throw new HttpError(409, 'conflict', err.message);
  if (err instanceof InvalidError) throw new HttpError(422, 'invalid_field', err.message);
  // Database-level refusals of a value (bad cidr text, numeric overflow …).
  const code = (err as { code?: string }).code;
  if (code === '22P02' || code === '22003' || code === '23514') throw new HttpError(422, 'invalid_field', (err as Error).message);
  // A NUL (\u0000, %00) in any text value or id: PostgreSQL text cannot hold it (found by `aybiza fuzz`).
  if (code === '22021') throw new HttpError(422, 'invalid_field', 'a value contains a character that cannot be stored (NUL)');
  throw err;
}

export function mountApi(router: Router, cp: ControlPlane, opts: ApiOptions): void {
  const doc = JSON.stringify(openApiDocument());
  router.route('GET', '/v1/openapi.json', () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: doc }));
  for (const spec of ROUTES) {
    const pattern = spec.path.replace(/\{(\w+)\}/g, ':$1');
    router.route(
      spec.method,
      pattern,
      async (req: Request) => {
        const p = await authenticate(cp, req, opts.rateLimit);
        checkAccess(spec, p);
        let result: unknown;
        try {
          result = await spec.handler({ req, p, cp, toolNetwork: opts.toolNetwork });
        } catch (err) {
          if (err instanceof HttpError) throw err;
          storeToHttp(err);
        }
        if (result instanceof DirectReply) return result.reply;
        return spec.status === 204 ? { status: 204 } : { status: spec.status, body: result };
      },
      { bodyLimit: opts.bodyLimit ?? 256 * 1024 },
    );
  }
}
