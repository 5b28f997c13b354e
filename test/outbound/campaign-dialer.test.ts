// The campaign dialer on two nodes: two ControlPlane + OutboundDialer +
// CampaignRunner stacks in this process on one real PostgreSQL and one Redis
// (as two servers would share them). The carrier is an in-test one registered
// on each node's real dialer (guards, call rows and the cluster-wide final
// announcement are the product's): it "rings" and ends each call after a few
// hundred ms, busy for chosen numbers. The Twilio and SIP carriers have tests
// of their own; this one is about the queue.
// Concurrency and rate are checked on the timestamps the database recorded
// (claimed_at / ended_at of every attempt), not on timing in this process.
import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/store/index.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { campaignRunnerFor, type CampaignRunnerOptions } from '../../src/outbound/campaigns.js';
import type { CampaignSettings } from '../../src/outbound/campaign-store.js';
import type { Carrier, OutboundFinal, PlaceRequest } from '../../src/outbound/types.js';
import { freshDatabase, realPg, realRedis, redisPrefix } from '../helpers/databases.js';
import { ADMIN } from '../helpers/app.js';
import { tempDir } from '../helpers/spawn-server.js';

interface Placed {
  node: string;
  callId: string;
  to: string;
  contactId: string | undefined;
}

/** Places nothing: reports ringing, then answered (or busy), then the end, on timers. */
class ScriptedCarrier implements Carrier {
  readonly via = 'twilio' as const;
  private readonly timers = new Set<NodeJS.Timeout>();
  constructor(
    private readonly node: string,
    private readonly log: Placed[],
    private readonly outcome: (to: string, nth: number) => OutboundFinal,
  ) {}

  async place({ call, request, events }: PlaceRequest): Promise<void> {
    this.log.push({ node: this.node, callId: call.id, to: request.to, contactId: request.contactId });
    const nth = this.log.filter((p) => p.to === request.to).length;
    const final = this.outcome(request.to, nth);
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        fn();
      }, ms);
      this.timers.add(t);
    };
    later(20, () => events.status('ringing'));
    if (final === 'completed') later(60, () => events.status('in-progress'));
    later(250 + Math.floor(Math.random() * 400), () => events.status(final));
  }

  async hangup(): Promise<void> {}

  close(): void {
    for (const t of this.timers) clearTimeout(t);
  }
}

const describeReal = realPg && realRedis ? describe : describe.skip;

describeReal('campaign dialer, two nodes on one PostgreSQL', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const f of cleanups.reverse()) await f();
  });

  async function cluster() {
    const url = await freshDatabase();
    const prefix = redisPrefix();
    const key = crypto.randomBytes(32);
    const log: Placed[] = [];
    const nodes = [];
    for (const name of ['node-a', 'node-b']) {
      const cp = await ControlPlane.open({ dataDir: tempDir(`${name}-`), databaseUrl: url, redisUrl: realRedis, redisPrefix: prefix, sipRealm: 'aybiza', encryptionKey: key });
      cleanups.push(() => cp.close());
      nodes.push({ name, cp });
    }
    return { nodes, log };
  }

  /** One node's outbound stack: the real dialer with the scripted carrier, and a campaign runner. */
  function node(n: { name: string; cp: ControlPlane }, log: Placed[], outcome: (to: string, nth: number) => OutboundFinal, opts: Partial<CampaignRunnerOptions> = {}) {
    const carrier = new ScriptedCarrier(n.name, log, outcome);
    OutboundDialer.for(n.cp).register(carrier);
    // The runner as the server builds it (src/app.ts), with this test's node name and pace of polling.
    const runner = campaignRunnerFor(n.cp, { nodeId: n.name, ...opts });
    cleanups.push(async () => {
      await runner.close();
      carrier.close();
    });
    return runner;
  }

  async function waitFor<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 90_000): Promise<T> {
    const deadline = Date.now() + ms;
    let v = await read();
    while (!done(v) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      v = await read();
    }
    return v;
  }

  it('dials 200 contacts exactly once each (busy ones retried), skips DNC numbers, within concurrency and rate', async () => {
    const { nodes, log } = await cluster();
    const cp = nodes[0].cp;
    const t = await cp.tenants.create(ADMIN, 'Campaigns', null, { allowedCountries: ['US'], dailyCap: 10_000 });
    const agent = await cp.agents.create(ADMIN, t.id, { name: 'Reminder', prompt: 'Remind {{name}} of the appointment.' });
    const numbers = Array.from({ length: 200 }, (_, i) => `+1415555${String(1000 + i)}`);
    const dnc = new Set(numbers.filter((_, i) => i % 20 === 7)); // 10
    const busyOnce = new Set(numbers.filter((_, i) => i % 20 === 3)); // 10: busy, then answered
    const busyAlways = new Set(numbers.filter((_, i) => i % 40 === 11)); // 5: busy on every attempt
    await cp.db.pool.query('insert into dnc_numbers (tenant_id, number) select $1, unnest($2::text[])', [t.id, [...dnc]]);
    const outcome = (to: string, nth: number): OutboundFinal => (busyAlways.has(to) || (busyOnce.has(to) && nth === 1) ? 'busy' : 'completed');

    const runners = nodes.map((n) => node(n, log, outcome, { pollMs: 200 }));
    const completed: string[] = [];
    for (const r of runners) r.onCompleted((c) => completed.push(c.id));

    const settings: CampaignSettings = {
      agentId: agent.id, from: '+14155550100', via: 'twilio', concurrency: 8, callsPerSecond: 20,
      window: { timezone: 'UTC', days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '00:00', end: '24:00' },
      retry: { maxAttempts: 3, backoffS: 1, on: ['busy', 'no-answer'] },
    };
    const hook = await cp.webhooks.create(ADMIN, t.id, { url: 'https://hooks.example.com/aybiza', events: ['campaign.completed'] });
    const c = await cp.campaigns.create(ADMIN, t.id, settings);
    // A duplicate within the upload is dropped.
    const added = await cp.campaigns.addContacts(ADMIN, t.id, c.id, [...numbers, numbers[0]].map((to, i) => ({ to, variables: { name: `Person ${i}` } })));
    expect(added).toEqual({ added: 200, duplicates: 1, total: 200 });
    await cp.campaigns.transition(ADMIN, t.id, c.id, 'start');
    for (const r of runners) await r.start();

    const state = await waitFor(() => nodes[1].cp.campaigns.get(t.id, c.id), (x) => x.status === 'completed');
    expect(state.status).toBe('completed');
    expect(state.counts).toEqual({
      total: 200, pending: 0, in_progress: 0, skipped_dnc: 10, busy: 5, no_answer: 0, failed: 0, completed: 185,
    });
    // Fired once, on one node; the campaign.completed event written once into the webhook outbox, with the counts.
    expect(completed).toEqual([c.id]);
    const events = (await cp.db.pool.query(`select e.body from webhook_events e join webhook_deliveries d on d.event_id = e.id where d.webhook_id = $1 and e.type = 'campaign.completed'`, [hook.id])).rows;
    expect(events.length).toBe(1);
    expect(JSON.parse(events[0].body)).toMatchObject({ type: 'campaign.completed', data: { id: c.id, status: 'completed', counts: state.counts } });

    // Every dial, from the carriers' own log: DNC never, the others once, busy ones retried up to maxAttempts.
    const dials = new Map<string, number>();
    for (const p of log) dials.set(p.to, (dials.get(p.to) ?? 0) + 1);
    for (const n of numbers) {
      const expected = dnc.has(n) ? 0 : busyAlways.has(n) ? 3 : busyOnce.has(n) ? 2 : 1;
      expect(dials.get(n) ?? 0, n).toBe(expected);
    }
    // Both nodes dialled.
    expect(new Set(log.map((p) => p.node))).toEqual(new Set(['node-a', 'node-b']));

    // The database's record of every attempt: one per dial, with its call, and no two attempts of a contact at once.
    const attempts = (
      await cp.db.pool.query(
        `select contact_id, attempt, node, call_id, extract(epoch from claimed_at)::float8 as s, extract(epoch from ended_at)::float8 as e, outcome
           from campaign_attempts where campaign_id = $1 order by claimed_at`,
        [c.id],
      )
    ).rows as { contact_id: string; attempt: number; call_id: string | null; s: number; e: number | null; outcome: string }[];
    expect(attempts.length).toBe(log.length);
    expect(attempts.every((a) => a.call_id !== null && a.e !== null)).toBe(true);
    expect(new Set(attempts.map((a) => a.call_id)).size).toBe(attempts.length);
    // Retries waited for their backoff (1 s, then 2 s) after the previous attempt ended.
    const byContact = new Map<string, typeof attempts>();
    for (const a of attempts) byContact.set(a.contact_id, [...(byContact.get(a.contact_id) ?? []), a]);
    for (const list of byContact.values()) {
      for (let i = 1; i < list.length; i++) expect(list[i].s - list[i - 1].e!).toBeGreaterThanOrEqual(2 ** (i - 1) - 0.001);
    }

    // Concurrency: the most attempts open at one instant (claim to end), over every node.
    const edges = attempts.flatMap((a) => [[a.s, 1], [a.e!, -1]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let open = 0;
    let maxOpen = 0;
    for (const [, d] of edges) maxOpen = Math.max(maxOpen, (open += d));
    expect(maxOpen).toBeLessThanOrEqual(settings.concurrency);
    expect(maxOpen).toBeGreaterThan(1); // the limit was approached, not trivially met

    // Rate: claims are spaced at least 1/callsPerSecond apart on the database's clock,
    // so any 1 s window holds at most callsPerSecond + 1 (the window may start on a claim and end on one).
    const starts = attempts.map((a) => a.s);
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThanOrEqual(1 / settings.callsPerSecond - 1e-6);
    let j = 0;
    let maxPerSecond = 0;
    for (let i = 0; i < starts.length; i++) {
      while (starts[i] - starts[j] >= 1) j++;
      maxPerSecond = Math.max(maxPerSecond, i - j + 1);
    }
    expect(maxPerSecond).toBeLessThanOrEqual(settings.callsPerSecond + 1);
    const perNode = Object.fromEntries(['node-a', 'node-b'].map((n) => [n, log.filter((p) => p.node === n).length]));
    console.log(`campaign: ${log.length} dials, most at once ${maxOpen} (limit ${settings.concurrency}), most in 1 s ${maxPerSecond} (limit ${settings.callsPerSecond} + 1), per node ${JSON.stringify(perNode)}`);

    // The calls themselves: outbound rows tied to their campaign and contact.
    const calls = (await cp.db.pool.query(`select count(*)::int as n from calls where campaign_id = $1 and direction = 'outbound' and ended_at is not null`, [c.id])).rows[0].n;
    expect(calls).toBe(log.length);
  }, 120_000);
  async function tenantWithAgent(cp: ControlPlane) {
    const t = await cp.tenants.create(ADMIN, 'Campaigns', null, { allowedCountries: ['US'], dailyCap: 10_000 });
    const agent = await cp.agents.create(ADMIN, t.id, { name: 'Reminder', prompt: 'Remind {{name}}.' });
    return { t, agent };
  }
  const ALL_DAYS: CampaignSettings['window']['days'] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

  it("recovers the claims of a node that died: unplaced ones dialled again uncounted, ended calls settled, lost calls failed", async () => {
    const { nodes, log } = await cluster();
    const cp = nodes[0].cp;
    const { t, agent } = await tenantWithAgent(cp);
    const c = await cp.campaigns.create(ADMIN, t.id, {
      agentId: agent.id, from: '+14155550100', via: 'twilio', concurrency: 5, callsPerSecond: 50,
      window: { timezone: 'UTC', days: ALL_DAYS, start: '00:00', end: '24:00' }, retry: { maxAttempts: 2, backoffS: 1, on: ['busy'] },
    });
    const [unplaced, ended, lost, unrecorded] = ['+14155552001', '+14155552002', '+14155552003', '+14155552004'];
    await cp.campaigns.addContacts(ADMIN, t.id, c.id, [unplaced, ended, lost, unrecorded].map((to) => ({ to })));
    await cp.campaigns.transition(ADMIN, t.id, c.id, 'start');
    const ids = Object.fromEntries((await cp.db.pool.query('select to_number, id from campaign_contacts where campaign_id = $1', [c.id])).rows.map((r) => [r.to_number, r.id]));
    // What a node that died left behind: four claims whose lease ran out a while ago.
    await cp.db.pool.query(
      `update campaign_contacts set status = 'in_progress', attempts = 1, lease_node = 'dead-node', lease_until = now() - interval '5 seconds' where campaign_id = $1`,
      [c.id],
    );
    await cp.db.pool.query(
      `insert into campaign_attempts (campaign_id, contact_id, attempt, node, claimed_at) select $1, id, 1, 'dead-node', now() - interval '1 minute' from campaign_contacts where campaign_id = $1`,
      [c.id],
    );
    const dead = new OutboundDialer(cp);
    const placedCall = async (to: string) => (await dead.records.create(t.id, agent.id, 1, { agentId: agent.id, to, from: '+14155550100', via: 'twilio', campaignId: c.id, contactId: ids[to] })).id;
    // ended: its call was recorded and reached completed (no node was left to settle it).
    const endedCall = await placedCall(ended);
    await dead.records.advance(endedCall, 'completed');
    await cp.db.pool.query('update campaign_contacts set call_id = $2 where id = $1', [ids[ended], endedCall]);
    // lost: answered ten minutes ago on the dead node, never ended, hosted nowhere.
    const lostCall = await placedCall(lost);
    await dead.records.advance(lostCall, 'in-progress');
    await cp.db.pool.query(`update calls set started_at = now() - interval '10 minutes' where id = $1`, [lostCall]);
    await cp.db.pool.query('update campaign_contacts set call_id = $2 where id = $1', [ids[lost], lostCall]);
    // unrecorded: the dialer placed it (busy) but the node died before recording the call on the contact.
    const busyCall = await placedCall(unrecorded);
    await dead.records.advance(busyCall, 'busy');

    const runner = node(nodes[1], log, () => 'completed', { pollMs: 100, leaseMs: 1000, lostCallMs: 60_000 });
    await runner.start();
    const state = await waitFor(() => cp.campaigns.get(t.id, c.id), (x) => x.status === 'completed', 30_000);
    expect(state.counts).toMatchObject({ total: 4, completed: 3, failed: 1, pending: 0, in_progress: 0 });
    // Dialled again: the unplaced one (its dead attempt uncounted) and the busy one (its retry); the others never.
    expect(log.map((p) => p.to).sort()).toEqual([unplaced, unrecorded].sort());
    const contacts = Object.fromEntries((await cp.db.pool.query('select to_number, status, attempts, last_outcome from campaign_contacts where campaign_id = $1', [c.id])).rows.map((r) => [r.to_number, r]));
    expect(contacts[unplaced]).toMatchObject({ status: 'completed', attempts: 1 });
    expect(contacts[ended]).toMatchObject({ status: 'completed', attempts: 1 });
    expect(contacts[lost]).toMatchObject({ status: 'failed', attempts: 1, last_outcome: 'failed' });
    expect(contacts[unrecorded]).toMatchObject({ status: 'completed', attempts: 2 });
    expect((await cp.calls.detail(null, lostCall)).endReason).toBe('node lost');
  }, 60_000);

  it('dials nothing outside the window, nor while paused or canceled', async () => {
    const { nodes, log } = await cluster();
    const cp = nodes[0].cp;
    const { t, agent } = await tenantWithAgent(cp);
    // A one-hour window twelve hours from now (UTC), every day: closed now.
    const h = (new Date().getUTCHours() + 12) % 24;
    const hh = (x: number) => `${String(x).padStart(2, '0')}:00`;
    const settings: CampaignSettings = {
      agentId: agent.id, from: '+14155550100', via: 'twilio', concurrency: 5, callsPerSecond: 50,
      window: { timezone: 'UTC', days: ALL_DAYS, start: hh(h), end: hh(h + 1) }, retry: { maxAttempts: 1, backoffS: 1 },
    };
    const closed = await cp.campaigns.create(ADMIN, t.id, settings);
    const paused = await cp.campaigns.create(ADMIN, t.id, { ...settings, window: { ...settings.window, start: '00:00', end: '24:00' } });
    for (const x of [closed, paused]) {
      await cp.campaigns.addContacts(ADMIN, t.id, x.id, [{ to: '+14155553001' }, { to: '+14155553002' }]);
      await cp.campaigns.transition(ADMIN, t.id, x.id, 'start');
    }
    await cp.campaigns.transition(ADMIN, t.id, paused.id, 'pause');
    const runner = node(nodes[0], log, () => 'completed', { pollMs: 100 });
    await runner.start();
    await new Promise((r) => setTimeout(r, 1500));
    expect(log).toEqual([]);
    expect((await cp.campaigns.get(t.id, closed.id)).counts.pending).toBe(2);
    // Resumed: dialled to the end.
    await cp.campaigns.transition(ADMIN, t.id, paused.id, 'start');
    const done = await waitFor(() => cp.campaigns.get(t.id, paused.id), (x) => x.status === 'completed', 20_000);
    expect(done.counts.completed).toBe(2);
    // Canceled: stays canceled with its contacts pending; no more contacts, no restart.
    await cp.campaigns.transition(ADMIN, t.id, closed.id, 'cancel');
    await expect(cp.campaigns.addContacts(ADMIN, t.id, closed.id, [{ to: '+14155553003' }])).rejects.toThrow(/canceled/);
    await expect(cp.campaigns.transition(ADMIN, t.id, closed.id, 'start')).rejects.toThrow(/cannot start/);
    expect(log.map((p) => p.to).sort()).toEqual(['+14155553001', '+14155553002']);
  }, 60_000);
  it('guard refusals: a country not allowed fails the contact, a number put on the DNC list meanwhile is skipped, the daily cap holds the campaign until the next UTC day', async () => {
    const { nodes, log } = await cluster();
    const cp = nodes[0].cp;
    const t = await cp.tenants.create(ADMIN, 'Capped', null, { allowedCountries: ['US'], dailyCap: 3 });
    const agent = await cp.agents.create(ADMIN, t.id, { name: 'Reminder', prompt: 'Remind.' });
    const c = await cp.campaigns.create(ADMIN, t.id, {
      agentId: agent.id, from: '+14155550100', via: 'twilio', concurrency: 2, callsPerSecond: 50,
      window: { timezone: 'UTC', days: ALL_DAYS, start: '00:00', end: '24:00' }, retry: { maxAttempts: 2, backoffS: 1, on: ['busy', 'failed'] },
    });
    const foreign = '+447700900123';
    const late = '+14155554000'; // put on the DNC list between the claim and the dial
    const us = ['+14155554001', '+14155554002', '+14155554003', '+14155554004'];
    // Contacts are dialled in the order they were added: the refusals come before the cap is reached.
    await cp.campaigns.addContacts(ADMIN, t.id, c.id, [foreign, late].map((to) => ({ to })));
    await cp.campaigns.addContacts(ADMIN, t.id, c.id, us.map((to) => ({ to })));
    await cp.campaigns.transition(ADMIN, t.id, c.id, 'start');
    const dialer = OutboundDialer.for(nodes[0].cp);
    const runner = node(nodes[0], log, () => 'completed', {
      pollMs: 100,
      dial: async (tenantId, req) => {
        if (req.to === late) await cp.db.pool.query('insert into dnc_numbers (tenant_id, number) values ($1, $2)', [tenantId, late]);
        return dialer.dial(tenantId, req);
      },
    });
    await runner.start();
    const state = await waitFor(() => cp.campaigns.get(t.id, c.id), (x) => x.counts.completed === 3 && x.counts.in_progress === 0 && x.counts.failed + x.counts.skipped_dnc === 2, 20_000);
    expect(state.counts).toMatchObject({ total: 6, completed: 3, failed: 1, skipped_dnc: 1, pending: 1, in_progress: 0 });
    expect(state.status).toBe('running');
    const rows = Object.fromEntries((await cp.db.pool.query('select to_number, status, attempts, last_outcome from campaign_contacts where campaign_id = $1', [c.id])).rows.map((r) => [r.to_number, r]));
    // Refused dials are not attempts: nothing was dialled, and a refusal is final, never retried.
    expect(rows[foreign]).toMatchObject({ status: 'failed', attempts: 0, last_outcome: 'destination_not_allowed' });
    expect(rows[late]).toMatchObject({ status: 'skipped_dnc', attempts: 0, last_outcome: 'dnc' });
    expect(us.map((n) => rows[n]).filter((r) => r.status === 'pending')).toEqual([expect.objectContaining({ attempts: 0, last_outcome: 'daily_cap' })]);
    const next = (await cp.db.pool.query(`select next_dial_at = (date_trunc('day', now() at time zone 'utc') + interval '1 day') at time zone 'utc' as tomorrow from campaigns where id = $1`, [c.id])).rows[0];
    expect(next.tomorrow).toBe(true);
    expect(log.map((p) => p.to).sort()).toEqual(us.filter((n) => rows[n].status === 'completed').sort());
  }, 60_000);
  it("holds the tenant's maxConcurrentCalls across its campaigns and both nodes (waiting, not failing)", async () => {
    const { nodes, log } = await cluster();
    const cp = nodes[0].cp;
    const t = await cp.tenants.create(ADMIN, 'Limited', 2, { allowedCountries: ['US'], dailyCap: 1000 });
    const agent = await cp.agents.create(ADMIN, t.id, { name: 'Reminder', prompt: 'Remind.' });
    const ids: string[] = [];
    for (let k = 0; k < 2; k++) {
      const c = await cp.campaigns.create(ADMIN, t.id, {
        agentId: agent.id, from: '+14155550100', via: 'twilio', concurrency: 5, callsPerSecond: 50,
        window: { timezone: 'UTC', days: ALL_DAYS, start: '00:00', end: '24:00' }, retry: { maxAttempts: 1, backoffS: 1 },
      });
      await cp.campaigns.addContacts(ADMIN, t.id, c.id, Array.from({ length: 8 }, (_, i) => ({ to: `+1415555${5000 + k * 100 + i}` })));
      await cp.campaigns.transition(ADMIN, t.id, c.id, 'start');
      ids.push(c.id);
    }
    for (const n of nodes) await node(n, log, () => 'completed', { pollMs: 100 }).start();
    for (const id of ids) expect((await waitFor(() => cp.campaigns.get(t.id, id), (x) => x.status === 'completed', 40_000)).counts.completed).toBe(8);
    const attempts = (
      await cp.db.pool.query(`select extract(epoch from claimed_at)::float8 as s, extract(epoch from ended_at)::float8 as e from campaign_attempts where campaign_id = any($1)`, [ids])
    ).rows as { s: number; e: number }[];
    expect(attempts.length).toBe(16);
    const edges = attempts.flatMap((a) => [[a.s, 1], [a.e, -1]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let open = 0;
    let maxOpen = 0;
    for (const [, d] of edges) maxOpen = Math.max(maxOpen, (open += d));
    expect(maxOpen).toBe(2);
  }, 60_000);
});
