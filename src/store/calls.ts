// Calls, their turns and transcripts. The call path writes through the
// CallStore interface; the API reads pages and details. Transcript text is
// redacted before it is stored.
import type { Database } from './db.js';
import { iso, isoOrNull, newId } from './ids.js';
import { NotFoundError } from './errors.js';
import { pageOf, tenantClause } from './page.js';
import { redactPii } from './redact.js';
import type { CallQuality } from '../media/quality.js';
import type { CallAnalysis, CallDetail, CallRecord, CallStore, NewCall, Page, Transport, TurnRecord } from './types.js';
import { WriteBehind, type RecordingBeginRow } from './write-behind.js';
import { reportInternalError } from '../guard.js';
import { DEFAULT_PRICES, type PriceTable } from '../usage/prices.js';
import { recordAnalysisUsage, recordCallUsage } from '../usage/store.js';
import { callCost } from '../usage/cost.js';
import type { CallUsageRecord, MeteredCall } from '../usage/types.js';

/** Told when a call starts and when it ends (webhooks subscribe: src/webhooks/store.ts). Must not block: it is never awaited. */
export type CallLifecycleSink = (type: 'call.started' | 'call.ended', call: CallRecord) => void;

const ENDED = new Set(['completed', 'failed', 'busy', 'no-answer', 'canceled', 'rejected', 'ended']);

function toCall(r: Record<string, unknown>): CallRecord {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    agentId: (r.agent_id as string | null) ?? null,
    agentVersion: (r.agent_version as number | null) ?? null,
    transport: r.transport as Transport,
    externalId: r.external_id as string,
    from: (r.from_number as string | null) ?? null,
    to: (r.to_number as string | null) ?? null,
    status: r.status as string,
    startedAt: iso(r.started_at),
    answeredAt: isoOrNull(r.answered_at),
    endedAt: isoOrNull(r.ended_at),
    endReason: (r.end_reason as string | null) ?? null,
    mediaStats: (r.media_stats as Record<string, unknown> | null) ?? null,
    quality: (r.quality as CallQuality | null) ?? null,
    direction: (r.direction as CallRecord['direction'] | undefined) ?? 'inbound',
    answeredBy: (r.answered_by as CallRecord['answeredBy'] | undefined) ?? null,
    ...outboundFields(r),
  };
}

/** An outbound call's dial variables, metadata and campaign (src/outbound); nothing for inbound calls. */
function outboundFields(r: Record<string, unknown>): Partial<CallRecord> {
  if (r.direction !== 'outbound') return {};
  const dial = (r.dial as { variables?: Record<string, string>; metadata?: Record<string, unknown> } | null) ?? {};
  return { variables: dial.variables ?? {}, metadata: dial.metadata ?? {}, campaignId: (r.campaign_id as string | null) ?? null, contactId: (r.contact_id as string | null) ?? null };
}

export class Calls implements CallStore {
  /** Turns and transcript segments go in batches (see write-behind.ts). */
  private readonly writes: WriteBehind;

  /** Set by the control plane to the webhook outbox; each call is announced started and ended (repeats are harmless: one event per call and type). */
  lifecycle: CallLifecycleSink | null = null;

  /** Prices usage at hang-up and after the analysis (PRICES_FILE over the defaults; set by the app). */
  prices: PriceTable = DEFAULT_PRICES;

  constructor(private readonly db: Database) {
    this.writes = new WriteBehind(db.pool);
  }

  async recordUsage(callId: string, usage: MeteredCall): Promise<void> {
    await recordCallUsage(this.db.pool, callId, usage, this.prices);
  }

  /** The post-call analysis's tokens onto the call's cost, in the analysis's transaction. */
  recordAnalysisUsage(callId: string, usage: { model: string; inputTokens: number; outputTokens: number; requests: number }, db: Parameters<typeof recordAnalysisUsage>[0]): Promise<void> {
    return recordAnalysisUsage(db, callId, usage, this.prices);
  }

  /** Tells the lifecycle sink; nothing it does can fail the call. Outbound call rows (src/outbound/records.ts) announce through here too. */
  announce(type: 'call.started' | 'call.ended', call: CallRecord): void {
    try {
      this.lifecycle?.(type, call);
    } catch (err) {
      reportInternalError('store', err);
    }
  }

  /** Writes the queued turns and transcript segments now (shutdown, tests). */
  drain(): Promise<void> {
    return this.writes.drain();
  }

  /**
   * A new call row. A SIP Call-ID is chosen by the caller and may repeat (or
   * be reused on purpose): every new dialog is a call of its own, and
   * in-dialog requests find their call through the SIP dialog layer, never
   * by Call-ID. A Twilio CallSid is issued once per call by Twilio (and the
   * webhook is signed): a repeated voice webhook for it returns the same row.
   */
  async createCall(c: NewCall): Promise<CallRecord> {
    const params = [newId('call'), c.tenantId, c.agentId, c.agentVersion, c.transport, c.externalId, c.from, c.to, c.status ?? 'ringing'];
    const insert = `insert into calls (id, tenant_id, agent_id, agent_version, transport, external_id, from_number, to_number, status)
         values ($1,$2,$3,$4,$5,$6,$7,$8,$9)`;
    const r = (
      await this.db.pool.query(
        c.transport === 'twilio'
          ? `${insert} on conflict (external_id) where transport = 'twilio' do update set external_id = excluded.external_id returning *`
          : `${insert} returning *`,
        params,
      )
    ).rows[0];
    const call = toCall(r);
    this.announce('call.started', call);
    return call;
  }

  /** The newest call with this external id (a Twilio CallSid names one call; a SIP Call-ID may name several). */
  async findCall(transport: Transport, externalId: string): Promise<CallRecord | null> {
    const r = (
      await this.db.pool.query('select * from calls where transport = $1 and external_id = $2 order by started_at desc, id desc limit 1', [transport, externalId])
    ).rows[0];
    return r ? toCall(r) : null;
  }

  async byId(callId: string): Promise<CallRecord | null> {
    const r = (await this.db.pool.query('select * from calls where id = $1', [callId])).rows[0];
    return r ? toCall(r) : null;
  }

  async updateCallStatus(callId: string, status: string, endReason?: string): Promise<void> {
    // A call reported ended has its turns and transcript stored.
    if (ENDED.has(status)) await this.writes.drain();
    // An ended call stays ended: late or repeated callbacks change nothing.
    const r = await this.db.pool.query(
      `update calls set status = $2,
              answered_at = case when $2 in ('in-progress', 'answered') then coalesce(answered_at, now()) else answered_at end,
              ended_at = case when $3 then coalesce(ended_at, now()) else ended_at end,
              end_reason = case when $3 then coalesce(end_reason, $4) else end_reason end
        where id = $1 and ended_at is null returning *`,
      [callId, status, ENDED.has(status), endReason ?? status],
    );
    if (ENDED.has(status) && r.rows[0]) this.announce('call.ended', toCall(r.rows[0]));
  }

  /** Ends the calls of a node that died (the lost-node sweep, src/store/index.ts); returns how many were still open. */
  async endLost(callIds: string[]): Promise<number> {
    const r = await this.db.pool.query(
      `update calls set status = 'failed', ended_at = now(), end_reason = 'node lost' where id = any($1) and ended_at is null returning *`,
      [callIds],
    );
    for (const row of r.rows) this.announce('call.ended', toCall(row));
    return r.rows.length;
  }

  addTurn(callId: string, t: TurnRecord): Promise<void> {
    return this.writes.addTurn({
      callId, seq: t.seq, userText: redactPii(t.userText), assistantText: redactPii(t.assistantText), interrupted: t.interrupted,
      latencies: JSON.stringify(t.latencies),
    });
  }

  /** The row of a recording that starts now (batched with the turns; drained before the call's end is stored). */
  beginRecording(row: RecordingBeginRow): Promise<void> {
    return this.writes.addRecording(row);
  }

  addTranscript(callId: string, speaker: 'caller' | 'agent', text: string): Promise<void> {
    return this.writes.addTranscript({ callId, speaker, text: redactPii(text), at: new Date() });
  }

  async setMediaStats(callId: string, stats: Record<string, unknown>): Promise<void> {
    await this.db.pool.query('update calls set media_stats = $2 where id = $1', [callId, JSON.stringify(stats)]);
  }

  async setQuality(callId: string, quality: CallQuality): Promise<void> {
    await this.db.pool.query('update calls set quality = $2 where id = $1', [callId, JSON.stringify(quality)]);
  }

  list(tenantId: string | null, limit: number, cursor?: string, direction?: 'inbound' | 'outbound'): Promise<Page<CallRecord>> {
    return pageOf(this.db.pool, 'calls', 'started_at', tenantId, limit, cursor, toCall, direction && { column: 'direction', value: direction });
  }

  async detail(tenantId: string | null, id: string): Promise<CallDetail> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from calls where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('call');
    const turns = (await this.db.pool.query('select * from turns where call_id = $1 order by seq', [id])).rows.map((t) => ({
      seq: t.seq,
      userText: t.user_text,
      assistantText: t.assistant_text,
      interrupted: t.interrupted,
      latencies: t.latencies,
      createdAt: iso(t.created_at),
    }));
    const transcript = (await this.db.pool.query('select * from transcript_segments where call_id = $1 order by id', [id])).rows.map((s) => ({
      speaker: s.speaker,
      text: s.text,
      at: iso(s.at),
    }));
    return { ...toCall(r), turns, transcript, analysis: (r.analysis as CallAnalysis | null) ?? null, cost: callCost(r), usage: (r.usage as CallUsageRecord | null) ?? null };
  }
}
