// GET /v1/usage: a tenant's call costs over a bounded period, grouped by UTC
// day or by agent, as a route spec mounted with the others (src/api/
// routes.ts), so it is in the OpenAPI document and the HTTP fuzzer reaches
// it. The query is validated whole: ISO 8601 instants (a date alone is its
// 00:00 UTC), from before to, at most MAX_RANGE_DAYS apart, groupBy day or
// agent, nothing else.
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { RouteSpec } from '../api/routes.js';
import { readScope, writeTenant } from '../api/auth.js';
import type { Principal } from '../store/types.js';
import { usageReport, type GroupBy } from './store.js';

export const MAX_RANGE_DAYS = 366;
const QUERY_KEYS = new Set(['from', 'to', 'groupBy', 'tenantId']);
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function bad(message: string): HttpError {
  countBadInput('api', 'invalid_query');
  return new HttpError(400, 'invalid_query', message);
}

/** An ISO 8601 date or date-time with a zone; calendar-checked (2026-02-30 is refused, not rolled over). */
export function parseInstant(name: string, raw: string | null): Date {
  if (raw === null) throw bad(`${name}: is required (ISO 8601, e.g. 2026-12-01 or 2026-12-01T00:00:00Z)`);
  const m = ISO.exec(raw);
  if (!m) throw bad(`${name}: must be an ISO 8601 date (2026-12-01) or date-time with a zone (2026-12-01T09:30:00Z, …+01:00)`);
  const [y, mo, d, h = '0', mi = '0', s = '0'] = m.slice(1, 7).map((v) => v ?? undefined) as string[];
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  const t = new Date(Date.UTC(...fields));
  const same = t.getUTCFullYear() === fields[0] && t.getUTCMonth() === fields[1] && t.getUTCDate() === fields[2] && t.getUTCHours() === fields[3] && t.getUTCMinutes() === fields[4] && t.getUTCSeconds() === fields[5];
  if (!same || fields[0] < 1970) throw bad(`${name}: ${raw} is not a valid instant`);
  const zone = m[8];
  let ms = t.getTime() + (m[7] ? Math.floor(Number(m[7]) * 1000) : 0);
  if (zone && zone !== 'Z') {
    const [zh, zm] = zone.slice(1).split(':').map(Number);
    if (zh > 23 || zm > 59) throw bad(`${name}: ${raw} has an invalid zone offset`);
    ms -= (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm) * 60_000;
  }
  return new Date(ms);
}

export interface UsageQuery {
  from: Date;
  to: Date;
  groupBy: GroupBy;
  tenantId: string | null;
}

export function usageQuery(q: URLSearchParams, p: Principal): UsageQuery {
  for (const k of q.keys()) if (!QUERY_KEYS.has(k)) throw bad(`${k.slice(0, 40)}: unknown query parameter (from, to, groupBy${p.platformAdmin ? ', tenantId' : ''})`);
  for (const k of QUERY_KEYS) if (q.getAll(k).length > 1) throw bad(`${k}: given more than once`);
  const from = parseInstant('from', q.get('from'));
  const to = parseInstant('to', q.get('to'));
  if (to.getTime() <= from.getTime()) throw bad('to: must be after from');
  if (to.getTime() - from.getTime() > MAX_RANGE_DAYS * 86_400_000) throw bad(`to: the range is at most ${MAX_RANGE_DAYS} days`);
  const groupBy = q.get('groupBy') ?? 'day';
  if (groupBy !== 'day' && groupBy !== 'agent') throw bad('groupBy: must be day or agent');
  // A platform admin sees every tenant, or names one; a tenant key only its own.
  const asked = q.get('tenantId');
  if (asked !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(asked)) throw bad('tenantId: is not an id');
  const tenantId = asked === null ? readScope(p) : writeTenant(p, asked);
  return { from, to, groupBy, tenantId };
}

export const USAGE_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/usage',
    summary: 'Cost of the calls started in [from, to) (ISO 8601, at most 366 days), grouped by UTC day or agent: {items: [{key, calls, total, components: {telephony, stt, tts, llm}}]}, amounts in USD as decimal strings',
    access: 'calls:read', status: 200,
    query: [
      { name: 'from', required: true, description: 'start, inclusive: ISO 8601 date (00:00 UTC) or date-time with a zone', schema: { type: 'string' } },
      { name: 'to', required: true, description: 'end, exclusive', schema: { type: 'string' } },
      { name: 'groupBy', required: false, description: 'day (UTC, the default) or agent', schema: { type: 'string', enum: ['day', 'agent'] } },
      { name: 'tenantId', required: false, description: 'platform-admin keys: one tenant (default: all)', schema: { type: 'string' } },
    ],
    handler: async ({ req, p, cp }) => {
      const q = usageQuery(req.query, p);
      const items = await usageReport(cp.db.pool, q.tenantId, q.from, q.to, q.groupBy);
      return { from: q.from.toISOString(), to: q.to.toISOString(), groupBy: q.groupBy, currency: 'USD', items };
    },
  },
];
