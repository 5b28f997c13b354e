// The webhook outbox on a real PostgreSQL: call lifecycle events delivered,
// signed, to a loopback receiver (TOOLS_ALLOW_PRIVATE_NETWORKS, as the
// tools tests do) exactly once per event id despite injected 500s, retries
// on an injected schedule in milliseconds, given up and recorded; a receiver
// whose name resolves to a private address refused at delivery; two outbox
// workers on one database never send one event at the same time.
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/store/index.js';
import type { Page, Principal } from '../../src/store/types.js';
import type { DeliveryAttempt } from '../../src/webhooks/store.js';
import { WebhookOutbox, type OutboxOptions } from '../../src/webhooks/outbox.js';
import { verifyWebhook, type WebhookEvent } from '../../src/webhooks/verify.js';
import type { RetrySchedule } from '../../src/webhooks/retry.js';
import { webhookDeliveries } from '../../src/metrics/index.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';
import { sleep, waitFor } from '../helpers/calls.js';

const ADMIN: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };
const FAST: RetrySchedule = { firstRetryMs: 20, factor: 2, maxDelayMs: 200, giveUpAfterMs: 1000 };
const DEV = { allowPrivateNetworks: true };
const KEY = crypto.randomBytes(32);

/** A receiver: verifies every request, answers with what `answer` says, remembers what it got. */
class Receiver {
  readonly received: { event: WebhookEvent; status: number; eventIdHeader: string }[] = [];
  readonly unverified: string[] = [];
  /** Requests for one event id in flight at the same time, at most. */
  maxOverlap = 0;
  private readonly inFlight = new Map<string, number>();
  private server!: http.Server;
  port = 0;

  constructor(private readonly secret: () => string, private readonly answer: (event: WebhookEvent, nth: number) => number, private readonly delayMs = 0) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const raw = Buffer.concat(chunks);
        let event: WebhookEvent;
        try {
          event = verifyWebhook(raw, req.headers['aybiza-signature'], this.secret());
        } catch (err) {
          this.unverified.push((err as Error).message);
          return res.writeHead(400).end();
        }
        const n = (this.inFlight.get(event.id) ?? 0) + 1;
        this.inFlight.set(event.id, n);
        this.maxOverlap = Math.max(this.maxOverlap, n);
        if (this.delayMs) await sleep(this.delayMs);
        this.inFlight.set(event.id, this.inFlight.get(event.id)! - 1);
        const nth = this.received.filter((r) => r.event.id === event.id).length + 1;
        const status = this.answer(event, nth);
        this.received.push({ event, status, eventIdHeader: String(req.headers['aybiza-event-id']) });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'try again');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Event ids answered 200, with how many times each. */
  delivered(): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.received) if (r.status === 200) m.set(r.event.id, (m.get(r.event.id) ?? 0) + 1);
    return m;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** The webhook's attempts once `done` holds of them (polled; the outbox runs on its own). */
async function attemptsUntil(cp: ControlPlane, tenantId: string, hookId: string, done: (items: DeliveryAttempt[]) => boolean): Promise<Page<DeliveryAttempt>> {
  const t0 = Date.now();
  for (;;) {
    const page = await cp.webhooks.attempts(tenantId, hookId, 50);
    if (done(page.items)) return page;
    if (Date.now() - t0 > 10_000) throw new Error(`attempts never got there: ${JSON.stringify(page.items.map((a) => a.outcome))}`);
    await sleep(50);
  }
}

async function results(): Promise<Record<string, number>> {
  const m = await webhookDeliveries.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.result), v.value]));
}

describe.skipIf(!realPg)('webhook outbox on real PostgreSQL', () => {
  let url: string;
  const planes: ControlPlane[] = [];
  const outboxes: WebhookOutbox[] = [];
  const receivers: Receiver[] = [];

  const open = async () => {
    // Every node holds the same AYBIZA_ENCRYPTION_KEY (the webhook secrets are sealed with it).
    const cp = await ControlPlane.open({ dataDir: tempDir('whk-'), databaseUrl: url, sipRealm: 'aybiza', encryptionKey: KEY });
    planes.push(cp);
    return cp;
  };
  const outbox = async (cp: ControlPlane, opts: OutboxOptions = {}) => {
    const o = new WebhookOutbox(cp, { network: DEV, schedule: FAST, pollMs: 20, ...opts });
    outboxes.push(o);
    await o.start();
    return o;
  };
  const receiver = async (secret: () => string, answer: (e: WebhookEvent, nth: number) => number, delayMs = 0) => {
    const r = new Receiver(secret, answer, delayMs);
    receivers.push(r);
    await r.start();
    return r;
  };

  beforeAll(async () => {
    url = await freshDatabase();
  });
  afterAll(async () => {
    for (const o of outboxes) await o.close();
    for (const cp of planes) await cp.close();
    for (const r of receivers) await r.stop();
  });

  it('delivers call.started, call.ended and campaign.completed signed, once per event id despite injected 500s', async () => {
    const cp = await open();
    const t = await cp.tenants.create(ADMIN, 'Hooks', null);
    const other = await cp.tenants.create(ADMIN, 'Other', null);
    let secret = '';
    // Every event fails twice (500, then 503) before it is taken.
    const rx = await receiver(() => secret, (_e, nth) => (nth === 1 ? 500 : nth === 2 ? 503 : 200));
    const hook = await cp.webhooks.create(ADMIN, t.id, { url: `http://127.0.0.1:${rx.port}/hooks`, events: ['call.started', 'call.ended', 'campaign.completed'] });
    secret = hook.secret;
    expect(secret).toMatch(/^whsec_/);
    // Another tenant's events never reach this webhook.
    await cp.calls.createCall({ tenantId: other.id, agentId: null, agentVersion: null, transport: 'sip', externalId: 'x-other', from: null, to: null });
    const before = await results();
    await outbox(cp);

    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await cp.calls.createCall({ tenantId: t.id, agentId: null, agentVersion: null, transport: 'twilio', externalId: `CAwh${i}`, from: '+15550000001', to: '+15550000002' });
      ids.push(c.id);
      // A repeated voice webhook and repeated status callbacks: still one event each.
      await cp.calls.createCall({ tenantId: t.id, agentId: null, agentVersion: null, transport: 'twilio', externalId: `CAwh${i}`, from: '+15550000001', to: '+15550000002' });
      await cp.calls.updateCallStatus(c.id, 'in-progress');
      await cp.calls.updateCallStatus(c.id, 'completed', 'caller hung up');
      await cp.calls.updateCallStatus(c.id, 'completed', 'again');
    }
    // A call of a node that died, ended by the lost-node sweep.
    const lost = await cp.calls.createCall({ tenantId: t.id, agentId: null, agentVersion: null, transport: 'sip', externalId: 'lost-1', from: null, to: null });
    expect(await cp.calls.endLost([lost.id])).toBe(1);
    const campaignEvent = await cp.webhooks.enqueueEvent(t.id, 'campaign.completed', { campaignId: 'cmp_1' }, { key: 'cmp_1' });
    // The same key again: already stored, nothing new.
    expect(campaignEvent).toMatch(/^evt_/);
    expect(await cp.webhooks.enqueueEvent(t.id, 'campaign.completed', { campaignId: 'cmp_1' }, { key: 'cmp_1' })).toBeNull();
    // Nobody subscribed to call.analyzed: nothing is stored.
    expect(await cp.webhooks.enqueueEvent(t.id, 'call.analyzed', { callId: ids[0] })).toBeNull();

    const expected = 4 * 2 + 2 + 1;
    await waitFor(() => rx.delivered().size === expected, 15_000, 'every event delivered');
    await sleep(300); // any duplicate would arrive by now
    expect(rx.unverified).toEqual([]);
    const delivered = rx.delivered();
    expect([...delivered.values()].every((n) => n === 1)).toBe(true);
    expect(delivered.size).toBe(expected);
    // Three requests per event, the same id (body and header) on each.
    for (const id of delivered.keys()) expect(rx.received.filter((r) => r.event.id === id).map((r) => r.status)).toEqual([500, 503, 200]);
    expect(rx.received.every((r) => r.eventIdHeader === r.event.id)).toBe(true);

    const events = rx.received.filter((r) => r.status === 200).map((r) => r.event);
    for (const id of ids) {
      expect(events.filter((e) => e.data.callId === id).map((e) => e.type).sort()).toEqual(['call.ended', 'call.started']);
      const ended = events.find((e) => e.data.callId === id && e.type === 'call.ended')!;
      expect(ended.data).toMatchObject({ status: 'completed', endReason: 'caller hung up', transport: 'twilio', from: '+15550000001', direction: 'inbound' });
      expect(Date.parse(ended.createdAt)).not.toBeNaN();
    }
    expect(events.find((e) => e.data.callId === lost.id && e.type === 'call.ended')?.data).toMatchObject({ status: 'failed', endReason: 'node lost' });
    expect(events.find((e) => e.type === 'campaign.completed')).toMatchObject({ id: campaignEvent, data: { campaignId: 'cmp_1' } });

    // The attempts, newest first, with the delivery's state.
    const page = await cp.webhooks.attempts(t.id, hook.id, 200);
    expect(page.items).toHaveLength(expected * 3);
    const forOne = page.items.filter((a) => a.eventId === campaignEvent);
    expect(forOne.map((a) => [a.attempt, a.outcome, a.httpStatus])).toEqual([[3, 'delivered', 200], [2, 'failed', 503], [1, 'failed', 500]]);
    expect(forOne.every((a) => a.deliveryStatus === 'delivered' && a.nextAttemptAt === null && a.type === 'campaign.completed')).toBe(true);
    expect(forOne[1].error).toBe('HTTP 503');
    const small = await cp.webhooks.attempts(t.id, hook.id, 5);
    expect(small.nextCursor).not.toBeNull();
    expect((await cp.webhooks.attempts(t.id, hook.id, 200, small.nextCursor!)).items).toHaveLength(expected * 3 - 5);
    await expect(cp.webhooks.attempts(other.id, hook.id, 10)).rejects.toThrow(/not found/);
    const after = await results();
    expect((after.delivered ?? 0) - (before.delivered ?? 0)).toBe(expected);
    expect((after.failed ?? 0) - (before.failed ?? 0)).toBe(expected * 2);
  });

  it('gives up after the schedule, and records it', async () => {
    const cp = planes[0];
    const t = await cp.tenants.create(ADMIN, 'Down', null);
    const rx = await receiver(() => hook.secret, () => 500);
    const hook = await cp.webhooks.create(ADMIN, t.id, { url: `http://127.0.0.1:${rx.port}/`, events: ['call.ended'], secret: 'my-own-secret-0123456789' });
    expect(hook.secret).toBe('my-own-secret-0123456789');
    const id = await cp.webhooks.enqueueEvent(t.id, 'call.ended', { callId: 'call_x' });
    const attempts = await attemptsUntil(cp, t.id, hook.id, (items) => items[0]?.outcome === 'gave_up');
    // FAST: waits 20, 40, 80, 160, 200, 200, 200, then 100 to land on 1000 ms: 9 attempts.
    expect(attempts.items.map((a) => a.outcome)).toEqual(['gave_up', ...Array(8).fill('failed')]);
    expect(attempts.items.every((a) => a.eventId === id && a.deliveryStatus === 'failed')).toBe(true);
    await sleep(300);
    expect(rx.received).toHaveLength(9);
  });

  it('refuses a receiver whose name resolves to a private address, and never connects to it', async () => {
    const cp = planes[0];
    const t = await cp.tenants.create(ADMIN, 'Rebind', null);
    const rx = await receiver(() => hook.secret, () => 200);
    // hooks.example resolves to loopback: checked after DNS, with the default policy (no TOOLS_ALLOW_PRIVATE_NETWORKS).
    const strict = await open();
    await outbox(strict, { network: { allowPrivateNetworks: false, lookup: async () => [{ address: '127.0.0.1', family: 4 }] } });
    // The outbox on `cp` (loopback allowed) must not take this one: stopped for this test.
    await outboxes[0].drain();
    const hook = await cp.webhooks.create(ADMIN, t.id, { url: `http://hooks.example:${rx.port}/`, events: ['call.started'] });
    await cp.calls.createCall({ tenantId: t.id, agentId: null, agentVersion: null, transport: 'sip', externalId: 'rebind', from: null, to: null });
    const attempts = await attemptsUntil(cp, t.id, hook.id, (items) => items.length >= 2);
    expect(attempts.items.map((a) => [a.outcome, a.httpStatus, a.error])).toEqual(attempts.items.map(() => ['refused', null, 'refused: the webhook URL refers to a loopback address']));
    expect(attempts.items[0].error).toBe('refused: the webhook URL refers to a loopback address');
    expect(attempts.items[0].deliveryStatus).toBe('pending');
    expect(rx.received).toHaveLength(0);
    await cp.webhooks.delete(ADMIN, t.id, hook.id);
    await outboxes[outboxes.length - 1].close();
    await outboxes[0].start();
  });

  it('keeps events across a restart, and re-sends one whose node died mid-delivery once its lease ends', async () => {
    const first = await open();
    const t = await first.tenants.create(ADMIN, 'Restart', null);
    let secret = '';
    const rx = await receiver(() => secret, () => 200);
    const hook = await first.webhooks.create(ADMIN, t.id, { url: `http://127.0.0.1:${rx.port}/`, events: ['call.ended', 'campaign.completed'] });
    secret = hook.secret;
    // Stored while no outbox runs, then the node goes away.
    for (const o of outboxes) await o.drain();
    const queued = await first.webhooks.enqueueEvent(t.id, 'campaign.completed', { campaignId: 'cmp_restart' });
    // A node claimed this one and died: its lease has run out.
    const orphan = await first.webhooks.enqueueEvent(t.id, 'call.ended', { callId: 'call_orphan' });
    await first.db.pool.query(`update webhook_deliveries set attempts = 1, claim_token = 'dead-node', next_attempt_at = now() - interval '1 second' where event_id = $1`, [orphan]);
    await first.close();
    planes.splice(planes.indexOf(first), 1);
    expect(rx.received).toHaveLength(0);

    const second = await open();
    const restarted = await outbox(second);
    await waitFor(() => rx.delivered().size === 2, 10_000, 'both delivered after the restart');
    expect([...rx.delivered().keys()].sort()).toEqual([queued, orphan].sort());
    const attempts = await second.webhooks.attempts(t.id, hook.id, 10);
    expect(attempts.items.find((a) => a.eventId === orphan)).toMatchObject({ attempt: 2, outcome: 'delivered' });
    await restarted.close();
    await outboxes[0].start();
  });

  it('two outbox workers on one database never send one event twice, nor at the same time', async () => {
    const a = planes[0];
    const b = await open();
    const t = await a.tenants.create(ADMIN, 'Two nodes', null);
    let secret = '';
    // Slow answers keep requests in flight while the other worker claims.
    const rx = await receiver(() => secret, () => 200, 30);
    secret = (await a.webhooks.create(ADMIN, t.id, { url: `http://127.0.0.1:${rx.port}/`, events: ['campaign.completed'] })).secret;
    const ob = await outbox(b, { concurrency: 4 });
    const oa = outboxes[0];
    const before = oa.stats.delivered;
    const n = 60;
    for (let i = 0; i < n; i++) await (i % 2 ? a : b).webhooks.enqueueEvent(t.id, 'campaign.completed', { campaignId: `c${i}` });
    await waitFor(() => rx.delivered().size === n, 20_000, 'all delivered');
    await sleep(300);
    expect(rx.received).toHaveLength(n);
    expect([...rx.delivered().values()].every((x) => x === 1)).toBe(true);
    expect(rx.maxOverlap).toBe(1);
    // Both took a share.
    expect(oa.stats.delivered - before).toBeGreaterThan(0);
    expect(ob.stats.delivered).toBeGreaterThan(0);
    expect(oa.stats.delivered - before + ob.stats.delivered).toBe(n);
    const rows = (await a.db.pool.query(`select status, attempts, claim_token from webhook_deliveries d join webhook_events e on e.id = d.event_id where e.tenant_id = $1`, [t.id])).rows;
    expect(rows.every((r) => r.status === 'delivered' && r.attempts === 1 && r.claim_token === null)).toBe(true);
  });
});
