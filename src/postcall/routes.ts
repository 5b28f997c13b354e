// The memory endpoints of the admin API, as route specs mounted with the
// others (src/api/routes.ts), so they are in the OpenAPI document and the
// fuzzer reaches them. The number is E.164, sent raw or with + as %2B (the
// router percent-decodes path parameters). Memory is per tenant (its hash is
// keyed with the tenant), so a platform-admin key names the tenant with
// ?tenantId=.
import { HttpError, type Request } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { RouteSpec } from '../api/routes.js';
import { writeTenant } from '../api/auth.js';
import type { Principal } from '../store/types.js';

const E164 = /^\+[1-9]\d{6,14}$/;

function number(req: Request): string {
  const n = req.params.number;
  if (E164.test(n)) return n;
  countBadInput('api', 'invalid_field');
  throw new HttpError(422, 'invalid_field', 'number: must be an E.164 number (+ and 7 to 15 digits; + may be sent as %2B)');
}

const tenantOf = (req: Request, p: Principal) => writeTenant(p, req.query.get('tenantId') ?? undefined);

export const MEMORY_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/memory/{number}', summary: 'What agents with memory remember of a number: its calls\' summaries, newest first (E.164; a platform-admin key adds ?tenantId=)', access: 'calls:read', status: 200,
    handler: async ({ req, p, cp }) => {
      const n = number(req);
      return { number: n, items: await cp.memory.list(tenantOf(req, p), n) };
    },
  },
  {
    method: 'DELETE', path: '/v1/memory/{number}', summary: 'Erase everything remembered of a number (idempotent; audited with the number masked)', access: 'memory:write', status: 204,
    handler: async ({ req, p, cp }) => {
      const n = number(req);
      await cp.memory.erase(p, tenantOf(req, p), n);
    },
  },
];
