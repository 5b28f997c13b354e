// The outbound part of the admin API: place and hang up one call, the
// do-not-call list, a tenant's outbound settings. Mounted by spreading
// OUTBOUND_ROUTES into the route table (src/api/routes.ts), so the same
// authentication, scopes, validation and OpenAPI rendering apply.
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { RouteSpec } from '../api/routes.js';
import { readScope, writeTenant } from '../api/auth.js';
import { body, compile, limitParam } from '../api/validate.js';
import type { TenantPatch } from '../store/tenants.js';
import { DialRefused, OutboundDialer } from './dialer.js';
import { DncList } from './dnc.js';
import { KNOWN_COUNTRIES } from './countries.js';
import { variablesProblem } from './variables.js';
import * as S from './schemas.js';
import type { DialRequest } from './types.js';

function invalid(field: string, message: string): HttpError {
  countBadInput('api', 'invalid_field');
  return new HttpError(422, 'invalid_field', `${field}: ${message}`);
}

/** Countries the prefix table cannot name could never be dialled: say so at once. */
export function checkCountries(outbound: TenantPatch['outbound']): void {
  const unknown = outbound?.allowedCountries?.filter((c) => !KNOWN_COUNTRIES.has(c)) ?? [];
  if (unknown.length) throw invalid('outbound.allowedCountries', `${unknown.slice(0, 5).join(', ')}: not a country outbound calls can reach (known: ${[...KNOWN_COUNTRIES].sort().join(' ')})`);
}

function checkDial(b: DialRequest): void {
  const problem = b.variables && variablesProblem(b.variables);
  if (problem) throw invalid('variables', problem);
  if (b.metadata && JSON.stringify(b.metadata).length > S.MAX_METADATA_CHARS) throw invalid('metadata', `must be at most ${S.MAX_METADATA_CHARS} characters as JSON`);
  if (b.voicemail && (b.amd ?? 'off') === 'off') throw invalid('voicemail', 'needs amd (detect or detect_message_end): the message is left only on a machine');
  if (b.via === 'sip' && !b.trunkId) throw invalid('trunkId', 'is required with via "sip"');
}

/** GET /v1/calls?direction=inbound|outbound: the calls list's filter (the route itself lives in src/api/routes.ts). */
export function directionParam(q: URLSearchParams): 'inbound' | 'outbound' | undefined {
  const d = q.get('direction');
  if (d === null) return undefined;
  if (d === 'inbound' || d === 'outbound') return d;
  countBadInput('api', 'invalid_query');
  throw new HttpError(400, 'invalid_query', 'direction: must be inbound or outbound');
}

const cursor = (q: URLSearchParams) => q.get('cursor') ?? undefined;

export const OUTBOUND_ROUTES: RouteSpec[] = [
  {
    method: 'POST', path: '/v1/calls', summary: 'Place an outbound call (guards: allowed countries, do-not-call, daily cap → 422 destination_not_allowed | dnc | daily_cap, nothing dialled)',
    access: 'calls:write', body: S.callCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const { tenantId, ...dial } = body<DialRequest & { tenantId?: string }>(req, S.callCreate);
      checkDial(dial);
      try {
        return await OutboundDialer.for(cp).dial(writeTenant(p, tenantId), dial, p);
      } catch (err) {
        if (err instanceof DialRefused) throw new HttpError(422, err.code, err.message);
        throw err;
      }
    },
  },
  {
    method: 'POST', path: '/v1/calls/{id}/hangup', summary: 'End an outbound call whatever its state (cancels it while ringing); idempotent', access: 'calls:write', status: 200,
    handler: async ({ req, p, cp }) => OutboundDialer.for(cp).hangup(readScope(p), req.params.id, p),
  },
  {
    method: 'POST', path: '/v1/dnc', summary: 'Add numbers to the tenant\'s do-not-call list', access: 'calls:write', body: S.dncAdd, status: 201,
    handler: async ({ req, p, cp }) => {
      const b = body<{ numbers: string[]; tenantId?: string }>(req, S.dncAdd);
      return new DncList(cp).add(p, writeTenant(p, b.tenantId), b.numbers);
    },
  },
  {
    method: 'GET', path: '/v1/dnc', summary: 'The do-not-call list, newest first', access: 'calls:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => new DncList(cp).list(readScope(p), limitParam(req.query), cursor(req.query)),
  },
  {
    method: 'DELETE', path: '/v1/dnc/{number}', summary: 'Remove a number from the do-not-call list (E.164, + percent-encoded as %2B)', access: 'calls:write', status: 204,
    handler: async ({ req, p, cp }) => {
      if (!/^\+[1-9]\d{6,14}$/.test(req.params.number)) throw invalid('number', 'must be an E.164 number');
      return new DncList(cp).remove(p, readScope(p), req.params.number);
    },
  },
  {
    method: 'PATCH', path: '/v1/tenants/{id}', summary: 'Change a tenant: name, maxConcurrentCalls, outbound {allowedCountries, dailyCap} (platform admin)', access: 'admin', body: S.tenantPatch, status: 200,
    handler: async ({ req, p, cp }) => {
      const patch = body<TenantPatch>(req, S.tenantPatch);
      checkCountries(patch.outbound);
      const t = await cp.tenants.update(p, req.params.id, patch);
      // The call path caches the tenant's concurrent-call limit with its numbers.
      if (patch.maxConcurrentCalls !== undefined) await cp.resolver.invalidate();
      return t;
    },
  },
];

for (const r of OUTBOUND_ROUTES) if (r.body) compile(r.body);
