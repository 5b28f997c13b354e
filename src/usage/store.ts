// Usage and cost on the call row (migration 13: calls.usage and one
// micro-dollar column per component) and the per-tenant report behind
// GET /v1/usage. Two writers, in either order: the session at hang-up (its
// telephony, STT, TTS and conversation LLM lines, once per call) and the
// post-call analysis (its LLM line, under the analysis job's claim). Each
// adds its own lines and LLM cost, so neither overwrites the other.
import type pg from 'pg';
import { usageCost, usageUnits } from '../metrics/index.js';
import { tenantClause } from '../store/page.js';
import { costOf, priceCall, priceLlm, type ComponentMicros } from './cost.js';
import type { PriceTable } from './prices.js';
import type { CallUsageRecord, MeteredCall } from './types.js';
import { COST_COMPONENTS } from './types.js';

type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

function count(parts: Partial<ComponentMicros>): void {
  for (const c of COST_COMPONENTS) {
    const m = parts[c];
    if (m !== undefined && m > 0n) usageCost.inc({ component: c }, Number(m) / 1e6);
  }
}

function countUnits(u: Partial<CallUsageRecord>): void {
  let telephony = 0;
  for (const t of u.telephony ?? []) if (t.charge === 'voice') telephony += t.seconds;
  if (telephony) usageUnits.inc({ unit: 'telephony_seconds' }, telephony);
  for (const s of u.stt ?? []) usageUnits.inc({ unit: 'stt_seconds' }, s.seconds);
  for (const t of u.tts ?? []) usageUnits.inc({ unit: 'tts_characters' }, t.characters);
  for (const l of u.llm ?? []) {
    if (l.inputTokens) usageUnits.inc({ unit: 'llm_input_tokens' }, l.inputTokens);
    if (l.outputTokens) usageUnits.inc({ unit: 'llm_output_tokens' }, l.outputTokens);
  }
}

/**
 * The session's usage at hang-up, priced. Written once per call (a second
 * report for the same call changes nothing); lines the analysis stored
 * first are kept.
 */
export async function recordCallUsage(db: Queryable, callId: string, metered: MeteredCall, prices: PriceTable): Promise<boolean> {
  const { usage, micros } = priceCall(prices, metered);
  const r = await db.query(
    `update calls set
        usage = jsonb_set($2::jsonb, '{llm}', ($2::jsonb -> 'llm') || coalesce(usage -> 'llm', '[]'::jsonb)),
        cost_telephony_micros = $3, cost_stt_micros = $4, cost_tts_micros = $5,
        cost_llm_micros = coalesce(cost_llm_micros, 0) + $6
      where id = $1 and (usage is null or usage -> 'telephony' is null)`,
    [callId, JSON.stringify(usage), String(micros.telephony), String(micros.stt), String(micros.tts), String(micros.llm)],
  );
  if (!r.rowCount) return false;
  count(micros);
  countUnits(usage);
  return true;
}

/** The post-call analysis's tokens, added to the call's LLM cost (inside the analysis's own transaction). */
export async function recordAnalysisUsage(db: Queryable, callId: string, u: { model: string; inputTokens: number; outputTokens: number; requests: number }, prices: PriceTable): Promise<void> {
  if (u.requests === 0) return;
  const { line, cost } = priceLlm(prices, u, 'analysis');
  const r = await db.query(
    `update calls set
        usage = jsonb_set(coalesce(usage, '{}'::jsonb), '{llm}', coalesce(usage -> 'llm', '[]'::jsonb) || $2::jsonb),
        cost_llm_micros = coalesce(cost_llm_micros, 0) + $3
      where id = $1`,
    [callId, JSON.stringify([line]), String(cost)],
  );
  if (!r.rowCount) return;
  count({ llm: cost });
  countUnits({ llm: [line] });
}

export type GroupBy = 'day' | 'agent';

export interface UsageItem {
  key: string | null;
  calls: number;
  total: string;
  components: Record<(typeof COST_COMPONENTS)[number], string>;
}

const KEY: Record<GroupBy, string> = {
  day: `to_char(started_at at time zone 'UTC', 'YYYY-MM-DD')`,
  agent: 'agent_id',
};

/** Calls started in [from, to), grouped by UTC day or agent: how many, and their cost by component. tenantId null: every tenant (platform admin). */
export async function usageReport(db: Queryable, tenantId: string | null, from: Date, to: Date, groupBy: GroupBy): Promise<UsageItem[]> {
  const params: unknown[] = [from.toISOString(), to.toISOString()];
  const r = await db.query<Record<string, string | null>>(
    `select ${KEY[groupBy]} as key, count(*)::text as calls,
            coalesce(sum(cost_telephony_micros), 0)::text as telephony, coalesce(sum(cost_stt_micros), 0)::text as stt,
            coalesce(sum(cost_tts_micros), 0)::text as tts, coalesce(sum(cost_llm_micros), 0)::text as llm
       from calls
      where started_at >= $1 and started_at < $2 and ${tenantClause(tenantId, params)}
      group by 1 order by 1 nulls last
      limit 1000`,
    params,
  );
  return r.rows.map((row) => {
    const cost = costOf(Object.fromEntries(COST_COMPONENTS.map((c) => [c, BigInt(row[c] ?? '0')])) as ComponentMicros);
    return { key: row.key, calls: Number(row.calls), total: cost.total, components: cost.components };
  });
}
