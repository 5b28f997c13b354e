// The admin API's routes as data: the same table mounts the handlers and
// renders the OpenAPI document, so every route is documented.
import { HttpError, type Request } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import { DEFAULT_NETWORK_POLICY, toolUrlProblem, type NetworkPolicy } from '../pipeline/address-policy.js';
import type { ControlPlane } from '../store/index.js';
import { DEFAULT_KEY_SCOPES, type AgentConfig, type Principal, type Scope } from '../store/types.js';
import type { NewTrunk, TrunkPatch } from '../store/trunks.js';
import { readScope, requireAdmin, requireScope, writeTenant } from './auth.js';
import { body, compile, limitParam, type Schema } from './validate.js';
import * as S from './schemas.js';
import { checkCountries, directionParam, OUTBOUND_ROUTES } from '../outbound/api.js';
import type { TenantOutbound } from '../store/types.js';
import { WEBHOOK_ROUTES } from '../webhooks/routes.js';
import { CAMPAIGN_ROUTES } from '../outbound/campaign-api.js';
import { MEMORY_ROUTES } from '../postcall/routes.js';
import { checkAnalysisConfig } from '../postcall/schema.js';
import { RECORDING_ROUTES, withRecording } from '../recordings/routes.js';
import { USAGE_ROUTES } from '../usage/routes.js';

export interface Ctx {
  req: Request;
  p: Principal;
  cp: ControlPlane;
  /** Where HTTP tools may connect (TOOLS_ALLOW_PRIVATE_NETWORKS); default: public addresses only. */
  toolNetwork?: NetworkPolicy;
}

/** Tool URLs whose host is a refused literal (loopback, metadata, …) are a 422 naming the field. */
function checkToolUrls(config: Partial<AgentConfig>, policy: NetworkPolicy = DEFAULT_NETWORK_POLICY): void {
  config.tools?.forEach((t, i) => {
    const problem = toolUrlProblem(t.url, policy);
    if (!problem) return;
    countBadInput('api', 'tool_url_refused');
    throw new HttpError(422, 'invalid_field', `tools[${i}].url: ${problem.message}`);
  });
}

/** Flux's rule (Deepgram rejects the stream otherwise): eagerEotThreshold at most eotThreshold (default 0.7). A 422. */
function checkSttThresholds(config: Partial<AgentConfig>): void {
  const stt = config.stt;
  if (stt?.eagerEotThreshold === undefined || stt.eagerEotThreshold <= (stt.eotThreshold ?? 0.7)) return;
  countBadInput('api', 'invalid_field');
  throw new HttpError(422, 'invalid_field', `stt.eagerEotThreshold: must not exceed stt.eotThreshold (${stt.eotThreshold ?? '0.7, the default'})`);
}

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI form: /v1/agents/{id} */
  path: string;
  summary: string;
  /** A scope, or 'admin' for platform-admin keys only. */
  access: Scope | 'admin';
  body?: Schema;
  /** The body may also be text/csv (campaign contacts): listed beside JSON in the OpenAPI document. */
  csv?: { description: string };
  /** Query parameters beyond limit/cursor, for the OpenAPI document. */
  query?: { name: string; required: boolean; description: string; schema: Record<string, unknown> }[];
  status: number;
  list?: boolean;
  handler(ctx: Ctx): Promise<unknown>;
}

const cursor = (req: Request) => req.query.get('cursor') ?? undefined;

export const ROUTES: RouteSpec[] = [
  {
    method: 'POST', path: '/v1/tenants', summary: 'Create a tenant', access: 'admin', body: S.tenantCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const b = body<{ name: string; maxConcurrentCalls?: number; outbound?: Partial<TenantOutbound> }>(req, S.tenantCreate);
      checkCountries(b.outbound);
      return cp.tenants.create(p, b.name, b.maxConcurrentCalls ?? null, b.outbound);
    },
  },
  {
    method: 'GET', path: '/v1/tenants', summary: 'List tenants', access: 'admin', status: 200, list: true,
    handler: async ({ cp }) => ({ items: await cp.tenants.list(), nextCursor: null }),
  },
  {
    method: 'POST', path: '/v1/api-keys', summary: 'Create an API key (shown once)', access: 'keys:write', body: S.apiKeyCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const b = body<{ tenantId: string; name?: string; scopes?: Scope[] }>(req, S.apiKeyCreate);
      const tenantId = writeTenant(p, b.tenantId);
      // A tenant key mints keys only for its own tenant and only with scopes it
      // holds; without a list, the default scopes it holds.
      const scopes = b.scopes ?? (p.platformAdmin ? [...DEFAULT_KEY_SCOPES] : DEFAULT_KEY_SCOPES.filter((s) => p.scopes.includes(s)));
      if (!p.platformAdmin) for (const s of scopes) requireScope(p, s);
      return cp.tenants.createKey(p, tenantId, b.name ?? '', [...new Set(scopes)]);
    },
  },
  {
    method: 'GET', path: '/v1/api-keys', summary: 'List API keys (id, name, scopes, prefix, createdAt, lastUsedAt; never the key)', access: 'keys:write', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.tenants.listKeys(readScope(p), limitParam(req.query), cursor(req)),
  },
  {
    method: 'DELETE', path: '/v1/api-keys/{id}', summary: 'Revoke an API key (at once, on every node)', access: 'keys:write', status: 204,
    handler: async ({ req, p, cp }) => cp.tenants.revokeKey(p, readScope(p), req.params.id),
  },
  {
    method: 'POST', path: '/v1/agents', summary: 'Create an agent (version 1, live)', access: 'agents:write', body: S.agentCreate, status: 201,
    handler: async ({ req, p, cp, toolNetwork }) => {
      const { tenantId, ...config } = body<AgentConfig & { tenantId?: string }>(req, S.agentCreate);
      checkToolUrls(config, toolNetwork);
      checkSttThresholds(config);
      checkAnalysisConfig(config);
      return cp.agents.create(p, writeTenant(p, tenantId), config);
    },
  },
  {
    method: 'GET', path: '/v1/agents', summary: 'List agents', access: 'agents:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.agents.list(readScope(p), limitParam(req.query), cursor(req)),
  },
  {
    method: 'GET', path: '/v1/agents/{id}', summary: 'Get an agent (latest version, liveVersion)', access: 'agents:read', status: 200,
    handler: async ({ req, p, cp }) => cp.agents.get(readScope(p), req.params.id),
  },
  {
    method: 'PATCH', path: '/v1/agents/{id}', summary: 'Change an agent: creates version n+1', access: 'agents:write', body: S.agentPatch, status: 200,
    handler: async ({ req, p, cp, toolNetwork }) => {
      const change = body<Partial<AgentConfig>>(req, S.agentPatch);
      checkToolUrls(change, toolNetwork);
      checkSttThresholds(change);
      checkAnalysisConfig(change);
      return cp.agents.patch(p, readScope(p), req.params.id, change);
    },
  },
  {
    method: 'POST', path: '/v1/agents/{id}/deploy', summary: 'Deploy a version (blue/green) or a percentage split; rollback = deploy an older version', access: 'agents:write', body: S.agentDeploy, status: 200,
    handler: async ({ req, p, cp }) => {
      const b = body<{ version: number; percent?: number }>(req, S.agentDeploy);
      return cp.agents.deploy(p, readScope(p), req.params.id, b.version, b.percent);
    },
  },
  {
    method: 'GET', path: '/v1/agents/{id}/versions', summary: 'List an agent\'s immutable versions', access: 'agents:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => ({ items: await cp.agents.versions(readScope(p), req.params.id), nextCursor: null }),
  },
  {
    method: 'POST', path: '/v1/phone-numbers', summary: 'Bind an E.164 number to an agent', access: 'numbers:write', body: S.phoneNumberCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const b = body<{ number: string; agentId: string }>(req, S.phoneNumberCreate);
      return cp.agents.addNumber(p, readScope(p), b.number, b.agentId);
    },
  },
  {
    method: 'GET', path: '/v1/phone-numbers', summary: 'List phone numbers', access: 'agents:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.agents.listNumbers(readScope(p), limitParam(req.query), cursor(req)),
  },
  {
    method: 'GET', path: '/v1/phone-numbers/{id}', summary: 'Get a phone number', access: 'agents:read', status: 200,
    handler: async ({ req, p, cp }) => cp.agents.getNumber(readScope(p), req.params.id),
  },
  {
    method: 'DELETE', path: '/v1/phone-numbers/{id}', summary: 'Unbind a phone number', access: 'numbers:write', status: 204,
    handler: async ({ req, p, cp }) => cp.agents.deleteNumber(p, readScope(p), req.params.id),
  },
  {
    method: 'POST', path: '/v1/sip-trunks', summary: 'Create a SIP trunk (the password is never echoed)', access: 'trunks:write', body: S.sipTrunkCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const { tenantId, ...t } = body<NewTrunk & { tenantId?: string }>(req, S.sipTrunkCreate);
      return cp.trunks.create(p, writeTenant(p, tenantId), t);
    },
  },
  {
    method: 'GET', path: '/v1/sip-trunks', summary: 'List SIP trunks', access: 'trunks:write', status: 200, list: true,
    handler: async ({ p, cp }) => ({ items: await cp.trunks.list(readScope(p)), nextCursor: null }),
  },
  {
    method: 'GET', path: '/v1/sip-trunks/{id}', summary: 'Get a SIP trunk', access: 'trunks:write', status: 200,
    handler: async ({ req, p, cp }) => cp.trunks.get(readScope(p), req.params.id),
  },
  {
    method: 'PATCH', path: '/v1/sip-trunks/{id}', summary: 'Change a SIP trunk (seen by every node at once)', access: 'trunks:write', body: S.sipTrunkPatch, status: 200,
    handler: async ({ req, p, cp }) => cp.trunks.update(p, readScope(p), req.params.id, body<TrunkPatch>(req, S.sipTrunkPatch)),
  },
  {
    method: 'DELETE', path: '/v1/sip-trunks/{id}', summary: 'Delete a SIP trunk', access: 'trunks:write', status: 204,
    handler: async ({ req, p, cp }) => cp.trunks.delete(p, readScope(p), req.params.id),
  },
  {
    method: 'GET', path: '/v1/calls', summary: 'List calls, newest first (?direction=inbound|outbound)', access: 'calls:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.calls.list(readScope(p), limitParam(req.query), cursor(req), directionParam(req.query)),
  },
  {
    method: 'GET', path: '/v1/calls/{id}', summary: 'A call with its turns (per-stage latencies) and redacted transcript', access: 'calls:read', status: 200,
    handler: async ({ req, p, cp }) => withRecording(cp, await cp.calls.detail(readScope(p), req.params.id)),
  },
  {
    method: 'GET', path: '/v1/audit-log', summary: 'The append-only audit log, newest first', access: 'audit:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => {
      const { listAudit } = await import('../store/audit.js');
      return listAudit(cp.db.pool, readScope(p), limitParam(req.query), cursor(req));
    },
  },
  ...OUTBOUND_ROUTES,
  ...WEBHOOK_ROUTES,
  ...CAMPAIGN_ROUTES,
  ...MEMORY_ROUTES,
  ...RECORDING_ROUTES,
  ...USAGE_ROUTES,
];

// Every body schema is compiled once, when the API module loads (a bad schema fails startup, not a request).
for (const r of ROUTES) if (r.body) compile(r.body);

export function checkAccess(spec: RouteSpec, p: Principal): void {
  if (spec.access === 'admin') requireAdmin(p);
  else requireScope(p, spec.access);
}
