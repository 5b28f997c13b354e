// The campaign dialer: a component started on every node that works through
// running campaigns' contacts in PostgreSQL. Cluster-wide rules hold because
// every decision is taken in one transaction on the campaign row:
// - claim: the campaign row is taken FOR UPDATE SKIP LOCKED (a node that finds
//   it taken moves on; the holder is claiming), then one due contact FOR
//   UPDATE SKIP LOCKED, so no contact is claimed twice;
// - concurrency: contacts in_progress are counted under that lock, on every
//   node's claims at once; the tenant's maxConcurrentCalls the same way over
//   all its campaigns, plus the live call slots (inbound calls count too);
// - rate: next_dial_at moves 1/callsPerSecond past each claim, in the
//   claiming transaction, from one clock_timestamp() read under the lock (the
//   database's clock, so node clocks don't matter): claims are at least
//   1/callsPerSecond apart, and any second holds at most callsPerSecond + 1;
// - window: checked on the callee's wall clock (campaign-window.ts) before
//   each claim; a call started inside the window may run past its end;
// - DNC: checked in the claim (the contact becomes skipped_dnc, no dial, no
//   pace spent), and again by the dialer's guards (a number added meanwhile).
// An attempt ends when its call's row reaches a final status: at once when
// the dialer announces it (to every node), and within pollMs by polling the
// rows (an announcement lost with a node that died).
// Crash safety: a claim carries a lease renewed by its node, and any node
// recovers an expired one (campaign-leases.ts).
import type pg from 'pg';
import type { Database } from '../store/db.js';
import type { ControlPlane } from '../store/index.js';
import type { SharedState } from '../store/state.js';
import type { CallRecord } from '../store/types.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import type { Component } from '../server/server.js';
import { isOpen } from './campaign-window.js';
import { toCampaign, type Campaign, type CampaignSettings, type ContactStatus } from './campaign-store.js';
import { DialRefused } from './guards.js';
import { OutboundDialer } from './dialer.js';
import { ClaimLeases, LATEST_ATTEMPT } from './campaign-leases.js';
import type { DialRequest } from './types.js';

/** Places one call (OutboundDialer.dial): resolves once the call is handed to the carrier; DialRefused if a guard refuses. */
export type Dial = (tenantId: string, req: DialRequest) => Promise<CallRecord>;

export interface CampaignRunnerOptions {
  db: Database;
  state: SharedState;
  dial: Dial;
  /** Subscribes to calls reaching a final status (the dialer's onFinal; returns the unsubscribe); optional: the rows are polled anyway. */
  onCallEnded?: (listener: (call: CallRecord) => void) => (() => void) | void;
  /** Whether this node can place calls over `via` (a node without SIP, or without a Twilio account, leaves those campaigns to others). */
  canDial?: (via: Campaign['via']) => boolean;
  /** Identity on leases and attempts (default: the shared state's node id). */
  nodeId?: string;
  /** Longest sleep between passes (default 500 ms). */
  pollMs?: number;
  /** How long a claim outlives its node's last renewal (default 30 s). */
  leaseMs?: number;
  /** A call neither ended nor hosted by any live node this long after it started is failed as lost (default 3 min). */
  lostCallMs?: number;
  /** Ends calls lost with their node (Calls.endLost: the rows, and their call.ended events). */
  endLost: (callIds: string[]) => Promise<unknown>;
  /** Written in the transaction that completes a campaign: the `campaign.completed` webhook event (issue 18). */
  completedEvent?: (c: Campaign, q: pg.PoolClient) => Promise<unknown>;
}

/** What the loop found for one campaign. */
type ClaimResult =
  | { kind: 'claimed'; attempt: Attempt }
  | { kind: 'skipped' } // a DNC contact settled without a dial: look again at once
  | { kind: 'wait'; ms: number } // the pace allows the next claim in ms
  | { kind: 'locked' } // another node holds the campaign row: it is claiming now
  | { kind: 'blocked'; idle: boolean }; // full, or nothing due (idle: nothing in progress either)

interface Attempt {
  campaign: Campaign;
  contactId: string;
  to: string;
  variables: Record<string, string>;
  attempt: number;
}

/** A call's final status → the contact's outcome. A canceled call (hung up by the API before an answer) is a failure not retried. */
const OUTCOME: Record<string, ContactStatus> = { completed: 'completed', busy: 'busy', 'no-answer': 'no_answer', failed: 'failed', canceled: 'failed' };
const DEFAULT_RETRY_ON = ['busy', 'no-answer'];
const MAX_BACKOFF_S = 86_400;

export type CampaignCompletedListener = (c: Campaign) => void;

export class CampaignRunner implements Component {
  readonly name = 'campaigns';
  readonly nodeId: string;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly completed: CampaignCompletedListener[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private loopDone: Promise<void> | null = null;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private lastHousekeeping = 0;
  private readonly leases: ClaimLeases;
  private readonly unsubscribe: (() => void) | null;

  constructor(private readonly o: CampaignRunnerOptions) {
    this.nodeId = o.nodeId ?? o.state.nodeId;
    this.pollMs = o.pollMs ?? 500;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.leases = new ClaimLeases({
      db: o.db, state: o.state, nodeId: this.nodeId, leaseMs: this.leaseMs, lostCallMs: o.lostCallMs ?? 180_000,
      endLost: o.endLost,
      settle: (contactId, callId, status, reason) => this.settle(contactId, callId, status, reason),
    });
    this.unsubscribe = o.onCallEnded?.(guard('timer', (call: CallRecord) => {
      if (!call.contactId || this.stopped) return;
      this.track(this.settle(call.contactId, call.id, call.status));
    })) ?? null;
  }

  /**
   * Called after a campaign completes, on exactly one node of the cluster:
   * the one whose update moved it to completed (a running campaign with
   * nothing pending or in progress). The webhook event is completedEvent.
   */
  onCompleted(fn: CampaignCompletedListener): void {
    this.completed.push(fn);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.loopDone = this.loop();
  }

  /** Stops claiming; attempts already dialled run on (their calls end on their own and settle from the rows). */
  async drain(): Promise<void> {
    await this.stop();
  }

  async close(): Promise<void> {
    await this.stop();
    this.unsubscribe?.();
  }

  private async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loopDone;
    await Promise.allSettled([...this.inflight]);
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private track(p: Promise<void>): void {
    const t = p.catch((err) => reportInternalError('timer', err, { component: 'campaigns' })).finally(() => {
      this.inflight.delete(t);
      this.wake();
    });
    this.inflight.add(t);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let wait = this.pollMs;
      try {
        wait = await this.pass();
      } catch (err) {
        // The database away for a moment: say so once a minute (the guard's rule), try again after a pause.
        reportInternalError('timer', err, { component: 'campaigns' });
        wait = this.pollMs * 2;
      }
      if (this.stopped) break;
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => resolve(), wait);
          this.wakeUp = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wakeUp = null;
      }
    }
  }

  /** One look at every running campaign; returns how long to sleep. */
  private async pass(): Promise<number> {
    if (Date.now() - this.lastHousekeeping >= Math.min(this.pollMs, this.leaseMs / 3)) {
      this.lastHousekeeping = Date.now();
      await this.leases.housekeeping();
    }
    const rows = (await this.o.db.pool.query(`select * from campaigns where status = 'running' order by next_dial_at limit 200`)).rows;
    let wait = this.pollMs;
    const now = new Date();
    for (const row of rows) {
      if (this.stopped) return 0;
      const c = toCampaign(row);
      if (!isOpen(c.window, now) || (this.o.canDial && !this.o.canDial(c.via))) continue;
      const r = await this.claim(c);
      if (r.kind === 'claimed') {
        this.track(this.run(r.attempt));
        wait = Math.min(wait, 1000 / c.callsPerSecond);
      } else if (r.kind === 'skipped') wait = 0;
      else if (r.kind === 'wait') wait = Math.min(wait, r.ms);
      else if (r.kind === 'locked') wait = Math.min(wait, 1000 / c.callsPerSecond);
    }
    return Math.max(0, wait);
  }

  /** Claims one due contact of the campaign if its concurrency, the tenant's limit and the pace allow. */
  private async claim(c: Campaign): Promise<ClaimResult> {
    const r = await this.o.db.tx(async (q): Promise<ClaimResult> => {
      // The locks first, the counts after, in statements of their own: each
      // statement's snapshot is then taken holding the locks, so it sees every
      // claim the previous holder committed.
      const locked = (
        await q.query(
          `select t.max_concurrent_calls from campaigns c join tenants t on t.id = c.tenant_id where c.id = $1 and c.status = 'running' for update of c skip locked`,
          [c.id],
        )
      ).rows[0];
      if (!locked) return { kind: 'locked' };
      const tenantLimit = locked.max_concurrent_calls as number | null;
      // Claims for the tenant's other campaigns hold other campaign rows: one tenant lock orders them all.
      if (tenantLimit !== null) await q.query(`select pg_advisory_xact_lock(hashtext('aybiza:campaign-tenant:' || $1))`, [c.tenantId]);
      // One instant for the whole claim, read under the locks in the same
      // statement (the same snapshot) as the counts: the pace, the lease and
      // the attempt's claimed_at all count from it, and every end it counted
      // was committed before it.
      const cr = (
        await q.query(
          `select n.at::text as at, greatest(0, extract(epoch from (c.next_dial_at - n.at)) * 1000)::float8 as wait_ms,
                  (select count(*) from campaign_contacts where campaign_id = c.id and status = 'in_progress')::int as in_flight,
                  case when $2 then (select count(*) from campaign_contacts cc join campaigns o on o.id = cc.campaign_id
                                      where o.tenant_id = c.tenant_id and cc.status = 'in_progress')::int else 0 end as tenant_in_flight
             from (select clock_timestamp() as at) n, campaigns c
            where c.id = $1`,
          [c.id, tenantLimit !== null],
        )
      ).rows[0];
      if (cr.wait_ms > 0) return { kind: 'wait', ms: Math.ceil(cr.wait_ms) };
      if (cr.in_flight >= c.concurrency) return { kind: 'blocked', idle: false };
      if (tenantLimit !== null && !(await this.tenantHasRoom(c.tenantId, cr.tenant_in_flight, tenantLimit))) return { kind: 'blocked', idle: false };
      const contact = (
        await q.query(
          `select id, to_number, variables, attempts,
                  exists (select 1 from dnc_numbers d where d.tenant_id = $2 and d.number = cc.to_number) as dnc
             from campaign_contacts cc
            where campaign_id = $1 and status = 'pending' and next_attempt_at <= $3::timestamptz
            order by next_attempt_at, id limit 1 for update skip locked`,
          [c.id, c.tenantId, cr.at],
        )
      ).rows[0];
      if (!contact) return { kind: 'blocked', idle: cr.in_flight === 0 };
      if (contact.dnc) {
        // Kept and counted, never dialled, and no dial's worth of pace spent on it.
        await q.query(`update campaign_contacts set status = 'skipped_dnc', last_outcome = 'dnc', updated_at = now() where id = $1`, [contact.id]);
        return { kind: 'skipped' };
      }
      const attempt = (contact.attempts as number) + 1;
      await q.query(
        `update campaign_contacts set status = 'in_progress', attempts = $2, call_id = null, lease_node = $3,
                lease_until = $5::timestamptz + make_interval(secs => $4), updated_at = now()
          where id = $1`,
        [contact.id, attempt, this.nodeId, this.leaseMs / 1000, cr.at],
      );
      await q.query(`update campaigns set next_dial_at = $2::timestamptz + make_interval(secs => 1.0 / calls_per_second) where id = $1`, [c.id, cr.at]);
      await q.query(
        `insert into campaign_attempts (campaign_id, contact_id, attempt, node, claimed_at) values ($1, $2, $3, $4, $5::timestamptz)`,
        [c.id, contact.id, attempt, this.nodeId, cr.at],
      );
      return { kind: 'claimed', attempt: { campaign: c, contactId: contact.id, to: contact.to_number, variables: contact.variables ?? {}, attempt } };
    });
    if (r.kind === 'blocked' && r.idle) await this.maybeComplete(c.id);
    return r;
  }

  /**
   * The tenant's maxConcurrentCalls: its campaign attempts in progress (from
   * the claim, ringing included, counted in the claim) and its live call slots
   * (connected calls of every kind, on every node) must each leave room. A
   * call holding a slot is counted in both, so this errs towards dialling
   * less, never more.
   */
  private async tenantHasRoom(tenantId: string, campaignAttempts: number, limit: number): Promise<boolean> {
    return campaignAttempts < limit && (await this.o.state.activeCalls(tenantId)) < limit;
  }

  /** Dials a claimed contact and records its call; a refusal or failure settles the attempt at once. */
  private async run(a: Attempt): Promise<void> {
    const c = a.campaign;
    const req: DialRequest = {
      agentId: c.agentId, to: a.to, from: c.from, via: c.via, ...(c.trunkId ? { trunkId: c.trunkId } : {}),
      ...(c.amd ? { amd: c.amd } : {}), ...(c.voicemail ? { voicemail: c.voicemail } : {}),
      variables: a.variables, campaignId: c.id, contactId: a.contactId,
    };
    let call: CallRecord;
    try {
      call = await this.o.dial(c.tenantId, req);
    } catch (err) {
      await this.dialFailed(a, err);
      return;
    }
    const r = (
      await this.o.db.pool.query(
        `update campaign_contacts cc set call_id = $3, updated_at = now() where id = $1 and attempts = $2 and status = 'in_progress' and lease_node = $4
         returning (select status from calls where id = $3 and ended_at is not null) as ended_status`,
        [a.contactId, a.attempt, call.id, this.nodeId],
      )
    ).rows[0];
    if (r) await this.o.db.pool.query(`update campaign_attempts set call_id = $2 where ${LATEST_ATTEMPT}`, [a.contactId, call.id]);
    // Ended before we recorded it (a carrier that fails at once): its listener found no contact waiting for it.
    if (r?.ended_status) await this.settle(a.contactId, call.id, r.ended_status as string);
  }

  private async dialFailed(a: Attempt, err: unknown): Promise<void> {
    if (err instanceof DialRefused) {
      if (err.code === 'dnc') return this.release(a, 'skipped_dnc', 'dnc');
      if (err.code === 'destination_not_allowed') return this.release(a, 'failed', 'destination_not_allowed');
      // The tenant's dials for the day are used up: the contact waits, and the campaign until the next UTC day.
      await this.release(a, 'pending', 'daily_cap');
      await this.o.db.pool.query(
        `update campaigns set next_dial_at = greatest(next_dial_at, (date_trunc('day', now() at time zone 'utc') + interval '1 day') at time zone 'utc') where id = $1`,
        [a.campaign.id],
      );
      return;
    }
    log.warn('campaign dial failed', { campaignId: a.campaign.id, contactId: a.contactId, err: (err as Error).message });
    await this.settle(a.contactId, null, 'failed', (err as Error).message);
  }

  /** Ends an attempt the guards refused: nothing was dialled, so it is not counted; the contact gets `status`. */
  private async release(a: Attempt, status: ContactStatus, outcome: string): Promise<void> {
    await this.o.db.tx(async (q) => {
      const u = await q.query(
        `update campaign_contacts set status = $3, last_outcome = $4, attempts = attempts - 1, lease_node = null, lease_until = null, updated_at = now()
          where id = $1 and attempts = $2 and status = 'in_progress' and lease_node = $5`,
        [a.contactId, a.attempt, status, outcome, this.nodeId],
      );
      if (u.rowCount) await q.query(`update campaign_attempts set ended_at = now(), outcome = $2 where ${LATEST_ATTEMPT}`, [a.contactId, outcome]);
    });
    await this.maybeComplete(a.campaign.id);
  }

  /**
   * An attempt's call ended with `callStatus`: the contact's outcome, or back
   * to pending after the backoff when the campaign retries that outcome and
   * attempts remain. Only the attempt that dialled `callId` is settled (null:
   * no call was placed), so a late or repeated report changes nothing.
   */
  async settle(contactId: string, callId: string | null, callStatus: string, reason?: string): Promise<void> {
    const campaignId = await this.o.db.tx(async (q) => {
      const row = (
        await q.query(
          `select cc.attempts, cc.campaign_id, c.settings, c.status as campaign_status from campaign_contacts cc join campaigns c on c.id = cc.campaign_id
            where cc.id = $1 and cc.status = 'in_progress' and cc.call_id is not distinct from $2 for update of cc`,
          [contactId, callId],
        )
      ).rows[0];
      if (!row) return null;
      const outcome = OUTCOME[callStatus] ?? 'failed';
      const retry = (row.settings as CampaignSettings).retry;
      const again = callStatus !== 'canceled' && (retry.on ?? DEFAULT_RETRY_ON).includes(callStatus) && row.attempts < retry.maxAttempts && row.campaign_status !== 'canceled';
      const backoffS = Math.min(MAX_BACKOFF_S, retry.backoffS * 2 ** (row.attempts - 1));
      await q.query(
        `update campaign_contacts set status = $2, last_outcome = $3, lease_node = null, lease_until = null, updated_at = now(),
                next_attempt_at = case when $2 = 'pending' then now() + make_interval(secs => $4) else next_attempt_at end
          where id = $1`,
        [contactId, again ? 'pending' : outcome, callStatus, backoffS],
      );
      await q.query(`update campaign_attempts set ended_at = now(), outcome = $2 where ${LATEST_ATTEMPT}`, [contactId, reason ? `${callStatus}: ${reason.slice(0, 200)}` : callStatus]);
      return row.campaign_id as string;
    });
    if (campaignId) await this.maybeComplete(campaignId);
  }

  /**
   * A running campaign with nothing pending or in progress is completed, by
   * exactly one node: the one whose update moved it. Its completedEvent hook
   * runs in that same transaction (the event exists if and only if the
   * completion was committed); the onCompleted listeners after the commit.
   */
  private async maybeComplete(campaignId: string): Promise<void> {
    const c = await this.o.db.tx(async (q) => {
      const row = (
        await q.query(
          `update campaigns c set status = 'completed', completed_at = now(), updated_at = now()
            where id = $1 and status = 'running'
              and not exists (select 1 from campaign_contacts where campaign_id = c.id and status in ('pending', 'in_progress'))
            returning *`,
          [campaignId],
        )
      ).rows[0];
      if (!row) return null;
      const counts = (await q.query('select status, count(*)::int as n from campaign_contacts where campaign_id = $1 group by status', [campaignId])).rows;
      const done = toCampaign(row);
      for (const r of counts) {
        done.counts[r.status as ContactStatus] = r.n;
        done.counts.total += r.n;
      }
      await this.o.completedEvent?.(done, q);
      return done;
    });
    if (!c) return;
    log.info('campaign completed', { campaignId, counts: c.counts });
    for (const fn of this.completed) guard('timer', fn)(c);
  }

}

/** The campaign dialer of a node: its control plane's outbound dialer, and `campaign.completed` into the webhook outbox. */
export function campaignRunnerFor(cp: ControlPlane, opts: Partial<CampaignRunnerOptions> = {}): CampaignRunner {
  const dialer = OutboundDialer.for(cp);
  return new CampaignRunner({
    db: cp.db, state: cp.state,
    dial: (tenantId, req) => dialer.dial(tenantId, req),
    onCallEnded: (fn) => dialer.onFinal(fn),
    canDial: (via) => dialer.carrier(via) !== undefined,
    endLost: (ids) => cp.calls.endLost(ids),
    completedEvent: (c, q) =>
      cp.webhooks.enqueueEvent(c.tenantId, 'campaign.completed', { id: c.id, name: c.name ?? null, agentId: c.agentId, status: c.status, counts: c.counts, completedAt: c.completedAt }, { key: c.id, db: q }),
    ...opts,
  });
}
