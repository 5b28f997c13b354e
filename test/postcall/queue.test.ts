// The post-call analysis queue on a real PostgreSQL, with the Bedrock
// emulator through the real SDK: a job enqueued when a call ends survives a
// restart (queued by one control plane that stops before processing it,
// analysed by the next); only calls with a turn and an agent with analysis
// or memory are queued, once; a service error is retried with backoff; a job
// claimed by a node that died is taken again when its lease ends; memory is
// kept hashed (the raw number is nowhere in the table) and expires.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ControlPlane } from '../../src/store/index.js';
import type { AgentConfig, CallAnalysis, Principal } from '../../src/store/types.js';
import { BedrockEmulator } from '../../src/providers/emulators/bedrock.js';
import { AnalysisQueue } from '../../src/postcall/queue.js';
import { analysisResults } from '../../src/metrics/index.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';
import { sleep } from '../helpers/calls.js';

const ADMIN: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };
const KEY = crypto.randomBytes(32);
const CALLER = '+14155550142';
const AGENT: AgentConfig = {
  name: 'Bookings', prompt: 'You take bookings.', greeting: 'Hello, bookings.',
  analysis: { outcomes: ['booked', 'other'], schema: { type: 'object', required: ['partySize'], properties: { partySize: { type: 'integer' } } } },
  memory: { enabled: true, retentionDays: 30 },
};

describe.skipIf(!realPg)('post-call analysis queue on real PostgreSQL', () => {
  let url: string;
  let emu: BedrockEmulator;
  let client: BedrockRuntimeClient;
  const planes: ControlPlane[] = [];
  const queues: AnalysisQueue[] = [];

  const open = async () => {
    const cp = await ControlPlane.open({ dataDir: tempDir('pc-'), databaseUrl: url, sipRealm: 'aybiza', encryptionKey: KEY });
    planes.push(cp);
    return cp;
  };
  const queue = async (cp: ControlPlane) => {
    const q = new AnalysisQueue(cp, { client, defaultModel: 'default-model', pollMs: 20, schedule: { firstRetryMs: 100, factor: 2, maxDelayMs: 400, giveUpAfterMs: 5000 } });
    queues.push(q);
    await q.start();
    return q;
  };
  /** An ended call of `agent` with one turn (the call store's own path: turns, then the status that ends it). */
  const endedCall = async (cp: ControlPlane, tenantId: string, agentId: string, turns = 1) => {
    const call = await cp.calls.createCall({ tenantId, agentId, agentVersion: 1, transport: 'sip', externalId: crypto.randomUUID(), from: CALLER, to: '+14155550100' });
    for (let i = 1; i <= turns; i++) await cp.calls.addTurn(call.id, { seq: i, userText: 'I would like to book a table for four.', assistantText: 'Booked for four.', interrupted: false, latencies: {} });
    await cp.calls.updateCallStatus(call.id, 'completed');
    await cp.analysisJobs.drain();
    return call;
  };
  /** Each test runs its own queue: one left running would take the next test's jobs (as another node would). */
  const stopQueues = async () => {
    for (const q of queues.splice(0)) await q.close();
  };
  const analysisOf = async (cp: ControlPlane, callId: string) =>
    (await cp.db.pool.query<{ analysis: CallAnalysis | null }>('select analysis from calls where id = $1', [callId])).rows[0].analysis;
  const job = async (cp: ControlPlane, callId: string) => (await cp.db.pool.query('select * from analysis_jobs where call_id = $1', [callId])).rows[0];

  beforeAll(async () => {
    url = await freshDatabase();
    emu = new BedrockEmulator({ ttftMs: 1, tokensPerSecond: 1000 });
    client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: await emu.listenOn(), credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1, requestHandler: new NodeHttpHandler() });
  });
  afterAll(async () => {
    for (const q of queues) await q.close();
    for (const cp of planes) await cp.close();
    client?.destroy();
    await emu?.close();
  });

  it('a job queued before a restart is analysed after it; memory is stored hashed and the webhook event emitted', async () => {
    const first = await open();
    const t = await first.tenants.create(ADMIN, 'Restart', null);
    const a = await first.agents.create(ADMIN, t.id, AGENT);
    await first.webhooks.create(ADMIN, t.id, { url: 'https://hooks.example.com/aybiza', events: ['call.analyzed'] });
    const call = await endedCall(first, t.id, a.id);
    expect(await job(first, call.id)).toMatchObject({ status: 'pending', attempts: 0 });
    // The node stops before any queue ran.
    await first.close();
    planes.splice(planes.indexOf(first), 1);

    const second = await open();
    await queue(second);
    let analysis: CallAnalysis | null = null;
    const t0 = Date.now();
    while (!(analysis = await analysisOf(second, call.id)) && Date.now() - t0 < 10_000) await sleep(50);
    expect(analysis).toMatchObject({
      summary: 'The caller said: I would like to book a table for four.', outcome: 'booked', sentiment: { label: 'neutral', score: 0 },
      qualityScore: 70, data: { partySize: 4 }, usage: { model: 'default-model', requests: 1 },
    });
    expect(await job(second, call.id)).toMatchObject({ status: 'done', attempts: 1, claim_token: null });
    // call.analyzed, once per call, with the analysis.
    const ev = (await second.db.pool.query(`select body from webhook_events where type = 'call.analyzed'`)).rows;
    expect(ev).toHaveLength(1);
    expect(JSON.parse(ev[0].body).data).toMatchObject({ callId: call.id, analysis: { outcome: 'booked' } });
    // Memory: the summary under a hash, the number nowhere in the table.
    const rows = (await second.db.pool.query('select * from call_memories where call_id = $1', [call.id])).rows;
    expect(rows).toHaveLength(1);
    expect(rows[0].summary).toBe('The caller said: I would like to book a table for four.');
    const dump = JSON.stringify((await second.db.pool.query('select * from call_memories')).rows);
    expect(dump).not.toContain(CALLER);
    expect(dump).not.toContain(CALLER.slice(1));
    expect(rows[0].number_hash).toBe(await second.memory.hash(t.id, CALLER));
    expect(await second.memory.list(t.id, CALLER)).toEqual([expect.objectContaining({ callId: call.id })]);
    // The HMAC key is sealed, not stored in the clear.
    const key = (await second.db.pool.query(`select value from shared_secrets where name = 'memory_number_hmac'`)).rows[0].value;
    expect(key).toMatch(/^enc:v1:/);
    await stopQueues();
  });

  it('queues only ended calls with a turn whose agent has analysis or memory, once', async () => {
    const cp = await open();
    const t = await cp.tenants.create(ADMIN, 'Filter', null);
    const plain = await cp.agents.create(ADMIN, t.id, { name: 'Plain', prompt: 'p' });
    const memoryOnly = await cp.agents.create(ADMIN, t.id, { name: 'Mem', prompt: 'p', memory: { enabled: true } });
    const off = await cp.agents.create(ADMIN, t.id, { name: 'Off', prompt: 'p', memory: { enabled: false } });
    const analysed = await cp.agents.create(ADMIN, t.id, AGENT);
    expect(await job(cp, (await endedCall(cp, t.id, plain.id)).id)).toBeUndefined();
    expect(await job(cp, (await endedCall(cp, t.id, off.id)).id)).toBeUndefined();
    expect(await job(cp, (await endedCall(cp, t.id, analysed.id, 0)).id)).toBeUndefined(); // no turn
    const mem = await endedCall(cp, t.id, memoryOnly.id);
    expect(await job(cp, mem.id)).toMatchObject({ status: 'pending' });
    expect(await cp.analysisJobs.enqueue(mem.id)).toBe(false); // a repeated end adds nothing
  });

  it('a service error is retried with backoff; a job leased by a dead node is taken again when the lease ends', async () => {
    const cp = await open();
    const t = await cp.tenants.create(ADMIN, 'Retry', null);
    const a = await cp.agents.create(ADMIN, t.id, AGENT);
    const failedBefore = (await analysisResults.get()).values.find((v) => v.labels.result === 'failed')?.value ?? 0;
    emu.faults.throttleNext = 1;
    const call = await endedCall(cp, t.id, a.id);
    // A second call whose job a dead node claimed: leased (token set), the lease already over.
    const orphan = await endedCall(cp, t.id, a.id);
    await cp.db.pool.query(`update analysis_jobs set attempts = 1, claim_token = 'dead-node', next_attempt_at = now() - interval '1 second' where call_id = $1`, [orphan.id]);
    // Jobs the earlier tests left pending in this database would be claimed too and could take the one throttled answer.
    await cp.db.pool.query('delete from analysis_jobs where call_id <> all($1)', [[call.id, orphan.id]]);
    const q = await queue(cp);
    const t0 = Date.now();
    while ((!(await analysisOf(cp, call.id)) || !(await analysisOf(cp, orphan.id))) && Date.now() - t0 < 10_000) await sleep(50);
    const jobs = [await job(cp, call.id), await job(cp, orphan.id)];
    expect(jobs.map((j) => j.status)).toEqual(['done', 'done']);
    // One attempt each, the orphan's earlier claim, and the throttled request's retry (whichever job it hit).
    expect(jobs[0].attempts + jobs[1].attempts).toBe(1 + 2 + 1);
    expect(jobs.filter((j) => /ThrottlingException/.test(j.last_error ?? ''))).toHaveLength(1);
    expect(q.stats.failed).toBeGreaterThanOrEqual(1);
    expect((await analysisResults.get()).values.find((v) => v.labels.result === 'failed')?.value).toBeGreaterThan(failedBefore);
    // The memory of both calls, newest first.
    expect((await cp.memory.list(t.id, CALLER)).map((m) => m.callId)).toEqual(expect.arrayContaining([call.id, orphan.id]));
    await stopQueues();
  });

  it('expired summaries are not recalled and are swept', async () => {
    const cp = await open();
    const t = await cp.tenants.create(ADMIN, 'Expiry', null);
    const a = await cp.agents.create(ADMIN, t.id, AGENT);
    const call = await cp.calls.createCall({ tenantId: t.id, agentId: a.id, agentVersion: 1, transport: 'sip', externalId: crypto.randomUUID(), from: '+14155550199', to: null });
    await cp.memory.remember(call, 'Called about card 4111 1111 1111 1111, wants a callback.', 1);
    expect((await cp.memory.list(t.id, '+14155550199'))[0].summary).toBe('Called about card [card], wants a callback.');
    expect(await cp.memory.recall(call)).toContain('Called about card [card]');
    await cp.db.pool.query(`update call_memories set expires_at = now() - interval '1 second' where call_id = $1`, [call.id]);
    expect(await cp.memory.list(t.id, '+14155550199')).toEqual([]);
    expect(await cp.memory.recall(call)).toBe('');
    expect(await cp.memory.sweep()).toBeGreaterThanOrEqual(1);
    expect((await cp.db.pool.query('select 1 from call_memories where call_id = $1', [call.id])).rowCount).toBe(0);
  });
});
