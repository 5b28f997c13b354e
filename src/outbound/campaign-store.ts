// Campaigns and their contacts in PostgreSQL (migration 8): creation, the
// contact list, the start/pause/cancel lifecycle and the counts per outcome.
// The dialer loop that works through the contacts is campaigns.ts; both meet
// only in the tables, so any node may serve the API and any node may dial.
import type { Database } from '../store/db.js';
import { audit } from '../store/audit.js';
import { ConflictError, InvalidError, NotFoundError } from '../store/errors.js';
import { iso, isoOrNull, newId } from '../store/ids.js';
import { pageOf, tenantClause } from '../store/page.js';
import type { Page, Principal } from '../store/types.js';
import type { AmdMode, OutboundVia } from './types.js';
import type { CallWindow } from './campaign-window.js';
import { MAX_CONTACTS_PER_CAMPAIGN } from './campaign-schemas.js';

export type CampaignStatus = 'draft' | 'running' | 'paused' | 'completed' | 'canceled';
export type RetryOutcome = 'busy' | 'no-answer' | 'failed';
/** A contact's state: waiting (also between retries), being dialled, or its final outcome. */
export type ContactStatus = 'pending' | 'in_progress' | 'completed' | 'busy' | 'no_answer' | 'failed' | 'skipped_dnc';
export const CONTACT_STATUSES: readonly ContactStatus[] = ['pending', 'in_progress', 'completed', 'busy', 'no_answer', 'failed', 'skipped_dnc'];

export interface CampaignSettings {
  name?: string;
  agentId: string;
  from: string;
  via: OutboundVia;
  trunkId?: string;
  concurrency: number;
  callsPerSecond: number;
  window: CallWindow;
  retry: { maxAttempts: number; backoffS: number; on?: RetryOutcome[] };
  amd?: AmdMode;
  voicemail?: { message: string };
}

export type CampaignCounts = { total: number } & Record<ContactStatus, number>;

export interface Campaign extends CampaignSettings {
  id: string;
  tenantId: string;
  status: CampaignStatus;
  counts: CampaignCounts;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

export interface NewContact {
  to: string;
  variables?: Record<string, string>;
}

export type CampaignAction = 'start' | 'pause' | 'cancel';

/** Which states each action leaves from; the same state again is a no-op, anything else a 409. */
const TRANSITIONS: Record<CampaignAction, { to: CampaignStatus; from: CampaignStatus[] }> = {
  start: { to: 'running', from: ['draft', 'paused'] },
  pause: { to: 'paused', from: ['running'] },
  cancel: { to: 'canceled', from: ['draft', 'running', 'paused'] },
};

function emptyCounts(): CampaignCounts {
  return { total: 0, pending: 0, in_progress: 0, completed: 0, busy: 0, no_answer: 0, failed: 0, skipped_dnc: 0 };
}

export function toCampaign(r: Record<string, unknown>, counts: CampaignCounts = emptyCounts()): Campaign {
  const s = r.settings as Omit<CampaignSettings, 'agentId' | 'concurrency' | 'callsPerSecond'>;
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    status: r.status as CampaignStatus,
    ...s,
    agentId: r.agent_id as string,
    concurrency: r.concurrency as number,
    callsPerSecond: Number(r.calls_per_second),
    counts,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    completedAt: isoOrNull(r.completed_at),
  };
}

export class CampaignStore {
  constructor(private readonly db: Database) {}

  async create(who: Principal, tenantId: string, s: CampaignSettings): Promise<Campaign> {
    return this.db.tx(async (c) => {
      const agent = await c.query('select 1 from agents where id = $1 and tenant_id = $2', [s.agentId, tenantId]);
      if (!agent.rowCount) throw new NotFoundError('agent');
      if (s.trunkId) {
        const trunk = await c.query('select 1 from sip_trunks where id = $1 and tenant_id = $2', [s.trunkId, tenantId]);
        if (!trunk.rowCount) throw new NotFoundError('sip trunk');
      }
      const { agentId, concurrency, callsPerSecond, ...settings } = s;
      const r = (
        await c.query(
          `insert into campaigns (id, tenant_id, agent_id, settings, concurrency, calls_per_second)
           values ($1, $2, $3, $4, $5, $6) returning *`,
          [newId('cmp'), tenantId, agentId, JSON.stringify(settings), concurrency, callsPerSecond],
        )
      ).rows[0];
      const out = toCampaign(r);
      await audit(c, who, tenantId, 'campaign.create', 'campaign', out.id, undefined, out);
      return out;
    });
  }

  async get(tenantId: string | null, id: string): Promise<Campaign> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from campaigns where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('campaign');
    return toCampaign(r, (await this.counts([id])).get(id));
  }

  async list(tenantId: string | null, limit: number, cursor?: string): Promise<Page<Campaign>> {
    const page = await pageOf(this.db.pool, 'campaigns', 'created_at', tenantId, limit, cursor, (r) => r);
    const counts = await this.counts(page.items.map((r) => r.id as string));
    return { items: page.items.map((r) => toCampaign(r, counts.get(r.id as string))), nextCursor: page.nextCursor };
  }

  /** Contacts per status, for each campaign asked (one grouped query). */
  async counts(ids: string[]): Promise<Map<string, CampaignCounts>> {
    const out = new Map<string, CampaignCounts>();
    if (ids.length === 0) return out;
    const rows = (
      await this.db.pool.query<{ campaign_id: string; status: ContactStatus; n: string }>(
        'select campaign_id, status, count(*) as n from campaign_contacts where campaign_id = any($1) group by campaign_id, status',
        [ids],
      )
    ).rows;
    for (const id of ids) out.set(id, emptyCounts());
    for (const r of rows) {
      const c = out.get(r.campaign_id)!;
      c[r.status] = Number(r.n);
      c.total += Number(r.n);
    }
    return out;
  }

  /**
   * Adds contacts; a number already in the campaign (or twice in the list) is
   * dropped. Refused (409) once the campaign is completed or canceled, and
   * (422) past MAX_CONTACTS_PER_CAMPAIGN.
   */
  async addContacts(who: Principal, tenantId: string | null, id: string, contacts: NewContact[]): Promise<{ added: number; duplicates: number; total: number }> {
    return this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const row = (await c.query(`select * from campaigns where id = $1 and ${tenantClause(tenantId, params)} for update`, params)).rows[0];
      if (!row) throw new NotFoundError('campaign');
      if (row.status === 'completed' || row.status === 'canceled') throw new ConflictError(`campaign is ${row.status}: contacts can no longer be added`);
      const seen = new Set<string>();
      const unique = contacts.filter((x) => !seen.has(x.to) && seen.add(x.to));
      const before = Number((await c.query('select count(*) as n from campaign_contacts where campaign_id = $1', [id])).rows[0].n);
      if (unique.length > 0) {
        await c.query(
          `insert into campaign_contacts (id, campaign_id, to_number, variables)
           select x.id, $2, x.number, x.variables from unnest($1::text[], $3::text[], $4::jsonb[]) as x(id, number, variables)
           on conflict (campaign_id, to_number) do nothing`,
          [unique.map(() => newId('cct')), id, unique.map((x) => x.to), unique.map((x) => JSON.stringify(x.variables ?? {}))],
        );
      }
      const total = Number((await c.query('select count(*) as n from campaign_contacts where campaign_id = $1', [id])).rows[0].n);
      if (total > MAX_CONTACTS_PER_CAMPAIGN) throw new InvalidError('contacts', `a campaign holds at most ${MAX_CONTACTS_PER_CAMPAIGN} contacts (it would hold ${total})`);
      const added = total - before;
      // The numbers themselves are personal data: the log records how many, not which.
      await audit(c, who, row.tenant_id as string, 'campaign.contacts.add', 'campaign', id, undefined, { added, duplicates: contacts.length - added });
      return { added, duplicates: contacts.length - added, total };
    });
  }

  /** start | pause | cancel; audited. Starting resets the pacing clock (a paused campaign does not burst on resume). */
  async transition(who: Principal, tenantId: string | null, id: string, action: CampaignAction): Promise<Campaign> {
    const t = TRANSITIONS[action];
    const out = await this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const row = (await c.query(`select * from campaigns where id = $1 and ${tenantClause(tenantId, params)} for update`, params)).rows[0];
      if (!row) throw new NotFoundError('campaign');
      if (row.status === t.to) return toCampaign(row);
      if (!t.from.includes(row.status as CampaignStatus)) throw new ConflictError(`a ${row.status} campaign cannot ${action}`);
      const r = (
        await c.query(
          `update campaigns set status = $2, updated_at = now(),
                  next_dial_at = case when $2 = 'running' then now() else next_dial_at end
            where id = $1 returning *`,
          [id, t.to],
        )
      ).rows[0];
      await audit(c, who, row.tenant_id as string, `campaign.${action}`, 'campaign', id, { status: row.status }, { status: t.to });
      return toCampaign(r);
    });
    return { ...out, counts: (await this.counts([id])).get(id)! };
  }
}
