// Crash safety of the campaign dialer (campaigns.ts): every claim carries a
// lease that its node renews; a node that dies stops renewing, and any node
// recovers its claims once the lease has expired:
// - the call has a final status → the attempt settles from it;
// - no call was recorded → the dialer's row for this attempt (found by
//   contact) is adopted if one exists, else nothing was dialled and the
//   contact goes back to pending, the attempt uncounted;
// - the call has not ended → if a live node hosts it (the call registry) or
//   it may still be ringing through a carrier that reports to any node, wait;
//   otherwise nobody will ever end it: it ends as `failed` (node lost) the way
//   the lost-node sweep ends calls (Calls.endLost), and the attempt settles.
// Also here: attempts whose call ended without any node's listener settling
// them (a report handled where no runner listened) are settled from the rows.
import type { Database } from '../store/db.js';
import type { SharedState } from '../store/state.js';

/** The open (latest) attempt row of contact $1: a contact has at most one open attempt at a time. */
export const LATEST_ATTEMPT = 'id = (select max(id) from campaign_attempts where contact_id = $1)';

export interface ClaimLeasesOptions {
  db: Database;
  state: SharedState;
  nodeId: string;
  leaseMs: number;
  /** A call neither ended nor hosted this long after it started is lost. */
  lostCallMs: number;
  /** Ends calls whose node was lost (Calls.endLost: the row, and its call.ended event). */
  endLost(callIds: string[]): Promise<unknown>;
  /** Settles an attempt from its call's final status (CampaignRunner.settle). */
  settle(contactId: string, callId: string | null, callStatus: string, reason?: string): Promise<void>;
}

export class ClaimLeases {
  constructor(private readonly o: ClaimLeasesOptions) {}

  /** One round: renew ours, settle what ended, recover what expired. */
  async housekeeping(): Promise<void> {
    await this.renew();
    await this.settleEnded();
    await this.recoverExpired();
  }

  private async renew(): Promise<void> {
    await this.o.db.pool.query(
      `update campaign_contacts set lease_until = now() + make_interval(secs => $2) where lease_node = $1 and status = 'in_progress'`,
      [this.o.nodeId, this.o.leaseMs / 1000],
    );
  }

  private async settleEnded(): Promise<void> {
    const rows = (
      await this.o.db.pool.query(
        `select cc.id, cc.call_id, cl.status from campaign_contacts cc join calls cl on cl.id = cc.call_id
          where cc.status = 'in_progress' and cl.ended_at is not null limit 500`,
      )
    ).rows;
    for (const r of rows) await this.o.settle(r.id, r.call_id, r.status);
  }

  private async recoverExpired(): Promise<void> {
    const rows = (
      await this.o.db.pool.query(
        `select cc.id, cc.call_id, cc.attempts, cl.status, cl.ended_at, (cl.started_at < now() - make_interval(secs => $1)) as old
           from campaign_contacts cc left join calls cl on cl.id = cc.call_id
          where cc.status = 'in_progress' and cc.lease_until < now() limit 100`,
        [this.o.lostCallMs / 1000],
      )
    ).rows;
    for (const r of rows) {
      if (r.call_id === null) {
        await this.recoverUnrecorded(r.id, r.attempts);
      } else if (r.ended_at !== null) {
        await this.o.settle(r.id, r.call_id, r.status);
      } else if ((await this.o.state.callNode(r.call_id)) !== null || (!r.old && r.status !== 'in-progress')) {
        // Nobody renews it now: look again in one lease.
        await this.o.db.pool.query(
          `update campaign_contacts set lease_node = null, lease_until = now() + make_interval(secs => $2) where id = $1 and status = 'in_progress'`,
          [r.id, this.o.leaseMs / 1000],
        );
      } else {
        await this.o.endLost([r.call_id]);
        await this.o.settle(r.id, r.call_id, 'failed', 'node lost');
      }
    }
  }

  private async recoverUnrecorded(contactId: string, attempt: number): Promise<void> {
    const call = (
      await this.o.db.pool.query(
        `select cl.id from calls cl, campaign_attempts a
          where a.${LATEST_ATTEMPT} and cl.contact_id = $1 and cl.started_at >= a.claimed_at
          order by cl.started_at desc limit 1`,
        [contactId],
      )
    ).rows[0];
    if (call) {
      // Settled like any other from here (its end, or a lease later the rules above).
      await this.o.db.pool.query(
        `update campaign_contacts set call_id = $2, lease_node = null, lease_until = now() + make_interval(secs => $3)
          where id = $1 and status = 'in_progress' and call_id is null`,
        [contactId, call.id, this.o.leaseMs / 1000],
      );
      await this.o.db.pool.query(`update campaign_attempts set call_id = $2 where ${LATEST_ATTEMPT}`, [contactId, call.id]);
      return;
    }
    await this.o.db.tx(async (q) => {
      const u = await q.query(
        `update campaign_contacts set status = 'pending', attempts = attempts - 1, lease_node = null, lease_until = null, next_attempt_at = now(), updated_at = now()
          where id = $1 and attempts = $2 and status = 'in_progress' and call_id is null and lease_until < now()`,
        [contactId, attempt],
      );
      if (u.rowCount) await q.query(`update campaign_attempts set ended_at = now(), outcome = 'node lost before dialling' where ${LATEST_ATTEMPT}`, [contactId]);
    });
  }
}
