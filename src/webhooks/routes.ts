// The webhook endpoints of the admin API, as route specs mounted with the
// others (src/api/routes.ts), so they are documented in the OpenAPI document
// and reached by the fuzzer like every route.
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import { toolUrlProblem, DEFAULT_NETWORK_POLICY } from '../pipeline/address-policy.js';
import type { RouteSpec } from '../api/routes.js';
import { readScope, writeTenant } from '../api/auth.js';
import { body, limitParam, type Schema } from '../api/validate.js';
import { WEBHOOK_EVENTS } from './events.js';
import type { NewWebhook } from './store.js';

export const webhookCreate: Schema = {
  type: 'object',
  required: ['url', 'events'],
  additionalProperties: false,
  properties: {
    tenantId: { type: 'string', minLength: 1, maxLength: 64, description: 'required with a platform-admin key' },
    url: {
      type: 'string', pattern: '^https?://', maxLength: 2000,
      description: 'receives each event as a signed JSON POST; the same address policy as HTTP tools (loopback/private refused unless TOOLS_ALLOW_PRIVATE_NETWORKS; link-local/metadata, multicast, reserved always), checked here for literal hosts and at every delivery after DNS; redirects are not followed',
    },
    events: { type: 'array', minItems: 1, maxItems: 20, items: { type: 'string', enum: WEBHOOK_EVENTS } },
    secret: {
      type: 'string', minLength: 16, maxLength: 200, pattern: '^[!-~]+$',
      description: 'the HMAC-SHA256 key of Aybiza-Signature (printable ASCII, no spaces); generated (whsec_…) when absent; returned only by this call',
    },
  },
};
const cursor = (q: URLSearchParams) => q.get('cursor') ?? undefined;

export const WEBHOOK_ROUTES: RouteSpec[] = [
  {
    method: 'POST', path: '/v1/webhooks', summary: 'Subscribe a URL to events (the secret is shown only in this answer)', access: 'webhooks:write', body: webhookCreate, status: 201,
    handler: async ({ req, p, cp, toolNetwork }) => {
      const { tenantId, ...w } = body<NewWebhook & { tenantId?: string }>(req, webhookCreate);
      const problem = toolUrlProblem(w.url, toolNetwork ?? DEFAULT_NETWORK_POLICY);
      if (problem) {
        countBadInput('api', 'webhook_url_refused');
        throw new HttpError(422, 'invalid_field', `url: ${problem.message}`);
      }
      return cp.webhooks.create(p, writeTenant(p, tenantId), w);
    },
  },
  {
    method: 'GET', path: '/v1/webhooks', summary: 'List webhooks (secrets masked)', access: 'webhooks:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.webhooks.list(readScope(p), limitParam(req.query), cursor(req.query)),
  },
  {
    method: 'GET', path: '/v1/webhooks/{id}', summary: 'Get a webhook (secret masked)', access: 'webhooks:read', status: 200,
    handler: async ({ req, p, cp }) => cp.webhooks.get(readScope(p), req.params.id),
  },
  {
    method: 'DELETE', path: '/v1/webhooks/{id}', summary: 'Delete a webhook and its pending deliveries', access: 'webhooks:write', status: 204,
    handler: async ({ req, p, cp }) => cp.webhooks.delete(p, readScope(p), req.params.id),
  },
  {
    method: 'GET', path: '/v1/webhooks/{id}/deliveries', summary: 'A webhook\'s delivery attempts, newest first (outcome, HTTP status, error, the delivery\'s state and next attempt)', access: 'webhooks:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.webhooks.attempts(readScope(p), req.params.id, limitParam(req.query), cursor(req.query)),
  },
];
