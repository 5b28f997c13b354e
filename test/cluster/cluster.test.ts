// Many machines, tested here (issue 15 need 2): two `aybiza serve` nodes on
// loopback sharing a real PostgreSQL database and a real Redis, Kamailio in
// front from deploy/kamailio/kamailio.cfg, SIPp callers through Kamailio,
// Twilio callers straight at the nodes, and a real Prometheus scraping both.
// The tests run in order on one cluster: each leaves it with two live nodes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { freshDatabase, realPg, realRedis } from '../helpers/databases.js';
import { sipp, type SippResult } from '../sip/helpers.js';
import { eventually, KAMAILIO, sharedEnv, sipOptions, sleep, startKamailio, startNode, startPrometheus, type Kamailio, type Node, type Relay } from './cluster.js';

// test/run.sh installs them from apt; without them (a bare `vitest run`) the cluster is skipped.
const haveTools = [KAMAILIO, 'prometheus', 'sipp'].every((cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0);

interface Tenant { id: string; number: string; agentId: string }

describe.skipIf(!realPg || !realRedis || !haveTools)('cluster: two nodes behind Kamailio', () => {
  let env: Record<string, string>;
  let a: Node;
  let b: Node;
  let k: Kamailio;
  let db: pg.Client;
  /** Trunk by source address (Kamailio's, 127.0.0.1), no call limit. */
  let open: Tenant;
  /** Digest-only trunk. */
  let digest: Tenant;
  /** maxConcurrentCalls 2. */
  let limited: Tenant;
  const running: Promise<unknown>[] = [];

  const via = (t: Tenant) => ({ sipPort: k.port, number: t.number });
  const relaysOf = (callIds: Set<string>) => k.relays().filter((r) => callIds.has(r.callId));
  /** Call-IDs of the SIPp run, from its message log (SIPp numbers calls 1-<pid>@…). */
  const callIdsOf = (r: SippResult) => new Set(sippCallIds(r));
  const nodeOf = (port: number) => (port === a.sipPort ? 'A' : port === b.sipPort ? 'B' : `?${port}`);
  const callStatus = async (id: string) => (await db.query('select status, end_reason from calls where id = $1', [id])).rows[0] as { status: string; end_reason: string | null };
  const callsByExternal = async (callIds: Set<string>) =>
    (await db.query('select id, external_id, status, end_reason from calls where external_id = any($1)', [[...callIds]])).rows as { id: string; external_id: string; status: string; end_reason: string | null }[];

  async function provision(name: string, trunk: Record<string, unknown>, maxConcurrentCalls?: number): Promise<Tenant> {
    const t = await a.api<{ id: string }>('POST', '/v1/tenants', { name, ...(maxConcurrentCalls ? { maxConcurrentCalls } : {}) });
    expect(t.status).toBe(201);
    const ag = await a.api<{ id: string }>('POST', '/v1/agents', { tenantId: t.body.id, name: `${name} agent`, prompt: 'You are a receptionist.', greeting: 'Hello, version one.' });
    expect(ag.status).toBe(201);
    const number = `+1415${String(Math.floor(1_000_000 + Math.random() * 8_999_999))}`;
    expect((await a.api('POST', '/v1/phone-numbers', { number, agentId: ag.body.id })).status).toBe(201);
    expect((await a.api('POST', '/v1/sip-trunks', { tenantId: t.body.id, name: `${name} trunk`, ...trunk })).status).toBe(201);
    return { id: t.body.id, number, agentId: ag.body.id };
  }

  beforeAll(async () => {
    const redis = new URL(realRedis!);
    redis.pathname = '/9'; // a Redis database of its own: the nodes use the default key prefix
    env = sharedEnv(await freshDatabase(), redis.toString());
    db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    // One after the other: the first applies the migrations and seeds the empty database.
    a = await startNode('A', env);
    b = await startNode('B', env);
    k = await startKamailio([a.sipPort, b.sipPort]);
    open = await provision('open', { allowedCidrs: ['127.0.0.1/32'] });
    digest = await provision('digest', { allowedCidrs: ['192.0.2.0/24'], username: 'carrier', password: 's3cret-pass' });
    limited = await provision('limited', { allowedCidrs: ['127.0.0.1/32'] }, 2);
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(running);
    if (process.env.CLUSTER_LOG_DIR) for (const n of [a, b]) if (n) fs.writeFileSync(path.join(process.env.CLUSTER_LOG_DIR, `node-${n.name}.log`), n.logs.join('\n'));
    await Promise.allSettled([a?.stop('SIGKILL'), b?.stop('SIGKILL'), k?.stop()]);
    await db?.end();
  });

  it('spreads new calls over both nodes; re-INVITEs, ACKs and BYEs reach the node that owns the call (UDP and TCP)', async () => {
    const r = await sipp(via(open), 'uac_hold.xml', { args: ['-m', '4', '-l', '4'] });
    expect(r.code, r.errors).toBe(0);
    const ids = callIdsOf(r);
    expect(ids.size).toBe(4);
    const relays = relaysOf(ids);
    const owner = new Map<string, number>();
    for (const rel of relays.filter((x) => x.method === 'INVITE')) if (!owner.has(rel.callId)) owner.set(rel.callId, rel.port);
    expect(new Set([...owner.values()].map(nodeOf))).toEqual(new Set(['A', 'B']));
    // Every request of a call (3 INVITEs, 3 ACKs, the BYE; retransmissions
    // may add lines) went to the node that answered its first INVITE.
    for (const id of ids) {
      const mine = relays.filter((x) => x.callId === id);
      const count = (m: string) => mine.filter((x) => x.method === m).length;
      expect([count('INVITE') >= 3, count('ACK') >= 3, count('BYE') >= 1], `${id}: ${JSON.stringify(mine)}`).toEqual([true, true, true]);
      expect(new Set(mine.map((x) => nodeOf(x.port))).size, `${id}: ${JSON.stringify(mine)}`).toBe(1);
    }
    const rows = await eventually(async () => {
      const rs = await callsByExternal(ids);
      return rs.length === 4 && rs.every((c) => c.status === 'completed') && rs;
    }, 15_000, 'the four calls to be completed');
    expect(rows).toHaveLength(4);

    const tcp = await sipp(via(open), 'uac_call.xml', { args: ['-t', 't1', '-d', '500'] });
    expect(tcp.code, tcp.errors).toBe(0);
  }, 90_000);

  it('answers a digest challenge issued by one node through the other', async () => {
    // Round-robin alternates nodes per INVITE, so the challenge and the retry
    // normally land on different nodes; a few tries make sure one did.
    let crossed: Relay[] | null = null;
    for (let i = 0; i < 4 && !crossed; i++) {
      const r = await sipp(via(digest), 'uac_auth_ok.xml', { args: ['-au', 'carrier', '-ap', 's3cret-pass', '-d', '300'] });
      expect(r.code, r.errors).toBe(0);
      const invites = relaysOf(callIdsOf(r)).filter((x) => x.method === 'INVITE');
      expect(invites).toHaveLength(2);
      if (invites[0]!.port !== invites[1]!.port) crossed = invites;
    }
    expect(crossed, 'challenge and answer never reached different nodes').not.toBeNull();
  }, 90_000);

  it('holds a tenant\'s maxConcurrentCalls across both nodes', async () => {
    // Two long calls take the tenant's two slots, one on each node.
    const held = sipp(via(limited), 'uac_call.xml', { args: ['-m', '2', '-l', '2', '-d', '8000'] });
    running.push(held);
    await eventually(async () => {
      const n = (await db.query(`select count(*)::int as n from calls where to_number = $1 and status = 'in-progress'`, [limited.number])).rows[0].n;
      return n === 2;
    }, 20_000, 'two calls in progress');
    const third = await sipp(via(limited), 'uac_expect_503.xml');
    expect(third.code, third.errors).toBe(0);
    // Kamailio tried the other node on the first node's 503: both refused, so the limit is the tenant's, not a node's.
    const tried = relaysOf(callIdsOf(third)).filter((x) => x.method === 'INVITE').map((x) => nodeOf(x.port));
    expect(new Set(tried)).toEqual(new Set(['A', 'B']));
    const h = await held;
    expect(h.code, h.errors).toBe(0);
  }, 90_000);

  it('uses on B the agent version deployed through A\'s API, at B\'s next call', async () => {
    // B resolves the number once, so its cache holds version 1 …
    const first = new TwilioCaller({ baseUrl: b.base, publicUrl: env.PUBLIC_URL, authToken: env.TWILIO_AUTH_TOKEN!, to: open.number });
    expect((await first.webhook()).status).toBe(200);
    // … then A gets version 2 deployed.
    expect((await a.api('PATCH', `/v1/agents/${open.agentId}`, { greeting: 'Hello, version two.' })).status).toBe(200);
    expect((await a.api('POST', `/v1/agents/${open.agentId}/deploy`, { version: 2 })).status).toBe(200);
    const next = new TwilioCaller({ baseUrl: b.base, publicUrl: env.PUBLIC_URL, authToken: env.TWILIO_AUTH_TOKEN!, to: open.number });
    expect((await next.webhook()).status).toBe(200);
    const rows = (await db.query('select external_id, agent_version from calls where external_id = any($1)', [[first.callSid, next.callSid]])).rows;
    const version = Object.fromEntries(rows.map((r) => [r.external_id, r.agent_version]));
    expect(version[first.callSid]).toBe(1);
    expect(version[next.callSid]).toBe(2);
  }, 30_000);

  it('Twilio: the webhook answered by A, the Media Stream accepted by B (the call token holds across nodes)', async () => {
    const hook = new TwilioCaller({ baseUrl: a.base, publicUrl: env.PUBLIC_URL, authToken: env.TWILIO_AUTH_TOKEN!, to: open.number });
    const { status, twiml } = await hook.webhook();
    expect(status).toBe(200);
    const url = /<Stream[^>]*url="([^"]+)"/.exec(twiml)?.[1];
    const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)?.[1];
    expect(url && token, twiml).toBeTruthy();
    const caller = new TwilioCaller({ baseUrl: b.base, publicUrl: env.PUBLIC_URL, authToken: env.TWILIO_AUTH_TOKEN!, to: open.number });
    Object.defineProperty(caller, 'callSid', { value: hook.callSid });
    await caller.connect(url!.replace(/&amp;/g, '&'), { token: token! });
    // B plays the agent's greeting.
    await eventually(() => caller.stats.nonSilent > 10, 20_000, 'the greeting from B');
    const row = (await db.query('select id, status from calls where external_id = $1', [hook.callSid])).rows[0];
    expect(row.status).toBe('in-progress');
    expect(await b.metrics()).toMatch(/^aybiza_calls_active(\{[^}]*\})? [1-9]/m);
    await caller.hangup();
    await eventually(async () => (await callStatus(row.id)).status !== 'in-progress', 15_000, 'the call to end');
  }, 60_000);

  it('a real Prometheus scraping both nodes shows aybiza_calls_active for each', async () => {
    const prom = await startPrometheus([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
    try {
      const series = await eventually(async () => {
        const r = await prom.query('aybiza_calls_active');
        return new Set(r.map((s) => s.metric.instance)).size === 2 && r;
      }, 60_000, 'aybiza_calls_active from both nodes');
      expect(new Set(series.map((s) => s.metric.instance))).toEqual(new Set([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]));
      const up = await prom.query('up{job="aybiza"}');
      expect(up.map((s) => s.value[1])).toEqual(['1', '1']);
    } finally {
      await prom.stop();
    }
  }, 90_000);

  it('SIGTERM on A: its OPTIONS turn 503, new calls go to B, A\'s calls finish normally, A exits 0', async () => {
    // Two calls in progress, one on each node (round-robin), for 6 s.
    const held = sipp(via(open), 'uac_call.xml', { args: ['-m', '2', '-l', '2', '-d', '6000'] });
    running.push(held);
    const before = new Set(k.relays().map((x) => x.callId));
    await eventually(() => {
      const invites = k.relays().filter((x) => x.method === 'INVITE' && !before.has(x.callId));
      return invites.length >= 2 && new Set(invites.map((x) => nodeOf(x.port))).size === 2;
    }, 20_000, 'one held call on each node');
    await sleep(500); // both answered
    a.child.kill('SIGTERM');
    await eventually(async () => (await sipOptions(a.sipPort)) === 503, 10_000, 'A to answer OPTIONS 503');
    // Kamailio's probe (every second) takes A out of rotation; a call that
    // still reaches A in between gets 503 there and fails over to B.
    await sleep(2500);
    const fresh = await sipp(via(open), 'uac_call.xml', { args: ['-m', '3', '-l', '3', '-d', '300'] });
    expect(fresh.code, fresh.errors).toBe(0);
    const freshIds = callIdsOf(fresh);
    expect(freshIds.size).toBe(3);
    for (const id of freshIds) {
      const invites = relaysOf(new Set([id])).filter((x) => x.method === 'INVITE');
      expect(nodeOf(invites[invites.length - 1]!.port), id).toBe('B');
    }
    const h = await held;
    expect(h.code, `held calls: ${h.errors}`).toBe(0);
    expect(await a.exit).toBe(0);
    // A comes back (same SIP port, so the dispatcher list stays as it is) for
    // the next tests, with a 1 s drain so the last test sees it hang up calls.
    a = await startNode('A', { ...env, DRAIN_TIMEOUT_S: '1' }, a.sipPort);
    await eventually(async () => (await sipOptions(a.sipPort)) === 200, 20_000, 'A back');
    await sleep(2500); // probed back into rotation
  }, 120_000);

  it('SIGKILL on B: the survivor marks B\'s calls ended and B\'s tenant slots are freed within 30 s', async () => {
    // The limited tenant's two slots: one call on each node, held for 25 s.
    const held = sipp(via(limited), 'uac_call.xml', { args: ['-m', '2', '-l', '2', '-d', '25000'], timeoutS: 60 });
    running.push(held.catch(() => {}));
    const before = new Set(k.relays().map((x) => x.callId));
    const invites = await eventually(() => {
      const inv = k.relays().filter((x) => x.method === 'INVITE' && !before.has(x.callId));
      return inv.length >= 2 && new Set(inv.map((x) => nodeOf(x.port))).size === 2 && inv;
    }, 20_000, 'one held call on each node');
    const onB = invites.find((x) => nodeOf(x.port) === 'B')!.callId;
    const rowB = await eventually(async () => (await callsByExternal(new Set([onB]))).find((c) => c.status === 'in-progress'), 10_000, 'B\'s call in progress');
    const killedAt = Date.now();
    b.child.kill('SIGKILL');
    await b.exit;
    // A new call for the tenant is admitted once B's slot is free (A's call still holds the other).
    await eventually(async () => (await sipp(via(limited), 'uac_call.xml', { args: ['-d', '200'], timeoutS: 15 })).code === 0, 30_000, 'a new call admitted', 500);
    await eventually(async () => (await callStatus(rowB.id)).status === 'failed', Math.max(1000, 30_000 - (Date.now() - killedAt)), 'B\'s call marked ended');
    expect((await callStatus(rowB.id)).end_reason).toBe('node lost');
    expect(Date.now() - killedAt).toBeLessThan(30_000);
  }, 120_000);

  it('a BYE from the node (drain timeout on SIGTERM) reaches the caller through Kamailio', async () => {
    // B is dead and out of rotation: the call goes to A, which waits 1 s for it on SIGTERM, then hangs up.
    const run = sipp(via(open), 'uac_server_bye.xml', { timeoutS: 40 });
    running.push(run);
    const before = new Set(k.relays().map((x) => x.callId));
    const invite = await eventually(() => k.relays().find((x) => x.method === 'INVITE' && !before.has(x.callId)), 20_000, 'the INVITE');
    expect(nodeOf(invite.port)).toBe('A');
    await eventually(async () => (await callsByExternal(new Set([invite.callId]))).some((c) => c.status === 'in-progress'), 10_000, 'the call in progress');
    a.child.kill('SIGTERM');
    const r = await run;
    expect(r.code, r.errors).toBe(0);
    // The node's BYE went through Kamailio (record-route) to the caller's Contact, not to a node.
    const bye = k.relays().find((x) => x.method === 'BYE' && x.callId === invite.callId);
    expect(bye, 'BYE relayed by Kamailio').toBeDefined();
    expect([a.sipPort, b.sipPort]).not.toContain(bye!.port);
    expect(await a.exit).toBe(0);
  }, 60_000);
});

/** The Call-IDs of a SIPp run, from its message trace (-trace_msg). */
function sippCallIds(r: SippResult): string[] {
  const file = fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'));
  if (!file) return [];
  return [...fs.readFileSync(path.join(r.dir, file), 'utf8').matchAll(/^Call-ID: (\S+)/gim)].map((m) => m[1]!);
}
