// Outbound call rows: created `queued` by the dialer, advanced by carrier
// events in the order of OutboundStatus only (a late `ringing` after
// `in-progress` changes nothing), ended once. The row is the truth every
// node reads: the final status, answeredBy and the dial as asked.
import type { Database } from '../store/db.js';
import { newId } from '../store/ids.js';
import { Calls } from '../store/calls.js';
import type { CallRecord } from '../store/types.js';
import { OUTBOUND_FINAL, type AnsweredBy, type DialRequest, type OutboundStatus } from './types.js';

/** external_id until the carrier names the call (Twilio's CallSid arrives with the create answer). */
export const PENDING_PREFIX = 'pending:';

const PROGRESS = ['queued', 'dialing', 'ringing', 'in-progress'];

export const isFinal = (s: string): s is (typeof OUTBOUND_FINAL)[number] => (OUTBOUND_FINAL as readonly string[]).includes(s);

/** What any node needs to rebuild the call: stored in calls.dial. */
export interface StoredDial {
  via: DialRequest['via'];
  trunkId?: string;
  amd: NonNullable<DialRequest['amd']>;
  voicemail?: { message: string };
  variables: Record<string, string>;
  metadata: Record<string, unknown>;
  /** Set once, by whoever first ends the call: its final status is then announced exactly once. */
  notified?: boolean;
}

export class OutboundRecords {
  private readonly calls: Calls;

  constructor(private readonly db: Database, calls?: Calls) {
    this.calls = calls ?? new Calls(db);
  }

  async create(tenantId: string, agentId: string, agentVersion: number, req: DialRequest): Promise<CallRecord> {
    const id = newId('call');
    const dial: StoredDial = {
      via: req.via, ...(req.trunkId ? { trunkId: req.trunkId } : {}), amd: req.amd ?? 'off',
      ...(req.voicemail ? { voicemail: req.voicemail } : {}), variables: req.variables ?? {}, metadata: req.metadata ?? {},
    };
    await this.db.pool.query(
      `insert into calls (id, tenant_id, agent_id, agent_version, transport, external_id, from_number, to_number, status, direction, dial, campaign_id, contact_id)
       values ($1,$2,$3,$4,$5,$6,$7,$8,'queued','outbound',$9,$10,$11)`,
      [id, tenantId, agentId, agentVersion, req.via, PENDING_PREFIX + id, req.from, req.to, JSON.stringify(dial), req.campaignId ?? null, req.contactId ?? null],
    );
    return (await this.get(id))!;
  }

  async get(callId: string): Promise<CallRecord | null> {
    return this.calls.byId(callId);
  }

  async dial(callId: string): Promise<StoredDial | null> {
    const r = (await this.db.pool.query(`select dial from calls where id = $1 and direction = 'outbound'`, [callId])).rows[0];
    return (r?.dial as StoredDial | undefined) ?? null;
  }

  /** Names the call with the carrier's id (a CallSid); only a pending row changes. */
  async setExternalId(callId: string, externalId: string): Promise<boolean> {
    const r = await this.db.pool.query(`update calls set external_id = $2 where id = $1 and external_id = $3`, [callId, externalId, PENDING_PREFIX + callId]);
    return r.rowCount === 1;
  }

  /**
   * Moves a live call forward (never back). A final status ends the call
   * (the first end time and reason stay) and returns the row when this
   * caller is the first to report the end, so the outcome is announced once.
   */
  async advance(callId: string, status: OutboundStatus, endReason?: string): Promise<{ ended: CallRecord | null }> {
    if (!isFinal(status)) {
      await this.db.pool.query(
        `update calls set status = $2, answered_at = case when $2 = 'in-progress' then coalesce(answered_at, now()) else answered_at end
          where id = $1 and ended_at is null and coalesce(array_position($3::text[], status), 0) < array_position($3::text[], $2)`,
        [callId, status, PROGRESS],
      );
      return { ended: null };
    }
    const r = await this.db.pool.query(
      `update calls set status = case when ended_at is null then $2 else status end,
              ended_at = coalesce(ended_at, now()), end_reason = coalesce(end_reason, $3),
              dial = coalesce(dial, '{}'::jsonb) || '{"notified": true}'::jsonb
        where id = $1 and direction = 'outbound' and not coalesce((dial->>'notified')::boolean, false)
        returning id`,
      [callId, status, endReason ?? status],
    );
    return { ended: r.rowCount === 1 ? await this.get(callId) : null };
  }

  async setAnsweredBy(callId: string, result: AnsweredBy): Promise<void> {
    await this.db.pool.query(`update calls set answered_by = $2 where id = $1 and direction = 'outbound'`, [callId, result]);
  }
}
