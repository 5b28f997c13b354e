// WORKERS=2: `aybiza serve` (the compiled CLI) with two media worker threads
// on one port. Twilio calls land on both workers (the kernel spreads the
// connections), one /metrics shows them all, MAX_CONCURRENT_CALLS counts
// across workers, a worker that dies has its calls stored as ended and is
// started again while the process serves on, new calls are steered to the
// less-loaded worker (before and after restarts), one set of provider
// emulators serves every worker, and SIGTERM drains every worker.
// On the embedded database (its one session shared by every worker's
// connection: src/store/pglite-server.ts) and on a real PostgreSQL.
import fs from 'node:fs';
import twilio from 'twilio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { freePort } from '../helpers/app.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';
import { freshDatabase, realPg } from '../helpers/databases.js';

const TOKEN = 'workers-test-token';
const ADMIN_KEY = 'ayb_workers_test_admin_key_0123456789abcdef';
const DEMO = '+15555550100';
const MAX_CALLS = 30;

function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(name.length, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

const DATABASES = [
  { name: 'embedded database', url: async () => undefined, skip: false },
  { name: 'PostgreSQL', url: freshDatabase, skip: !realPg },
];

for (const { name, url, skip } of DATABASES) describe.skipIf(skip)(`WORKERS=2 on the ${name}`, () => {
  let srv: Spawned;
  let base: string;
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  const perWorker = async () => series(await metrics(), 'aybiza_worker_calls_active');
  /** Dials n calls, each once the one before is counted on a worker; checks the per-worker counts, then hangs up. */
  const dialOneByOne = async (n: number, check: (perWorker: Map<string, number>) => void) => {
    const callers: TwilioCaller[] = [];
    const total = async () => [...(await perWorker()).values()].reduce((a, b) => a + b, 0);
    try {
      for (let i = 1; i <= n; i++) {
        const c = caller();
        callers.push(c);
        expect((await c.dial()).outcome).toBe('connected');
        await until(`call ${i} counted`, async () => (await total()) === i);
      }
      check(await perWorker());
    } finally {
      await Promise.all(callers.map((c) => c.hangup()));
    }
    await until('no calls', async () => (await total()) === 0);
  };
  const steeringOff = () => srv.logs.filter((l) => l.includes('connection steering off') || l.includes('aybiza_reuseport.node missing'));
  const caller = () => new TwilioCaller({ baseUrl: base, authToken: TOKEN, to: DEMO, skipAnalysis: true });
  const dialAll = async (n: number) => {
    const callers = Array.from({ length: n }, caller);
    const outcomes = await Promise.all(callers.map((c) => c.dial().then((d) => d.outcome)));
    return { callers, outcomes };
  };

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const databaseUrl = await url();
    srv = await spawnServer({
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), PORT: String(port), PUBLIC_URL: base, WORKERS: '2', EMULATORS: 'on', TWILIO_AUTH_TOKEN: TOKEN, ADMIN_API_KEY: ADMIN_KEY,
      MAX_CONCURRENT_CALLS: String(MAX_CALLS), AYBIZA_WORKER_FAULTS: '1', DRAIN_TIMEOUT_S: '5',
    }, 150_000);
  }, 180_000);
  afterAll(async () => {
    await srv?.stop('SIGKILL');
  });

  it('answers /healthz and /readyz from every worker and logs one listening line for the process', async () => {
    // Connection: close makes every request a new connection, which the kernel may give either worker.
    for (let i = 0; i < 6; i++) {
      expect((await fetch(`${base}/readyz`, { headers: { connection: 'close' } })).status).toBe(200);
    }
    const lines = srv.logs.map((l) => { try { return JSON.parse(l) as { msg?: string; worker?: number }; } catch { return {}; } });
    expect(lines.filter((l) => l.msg === 'listening')).toHaveLength(1);
    expect(new Set(lines.filter((l) => l.msg === 'worker listening').map((l) => l.worker))).toEqual(new Set([0, 1]));
  });

  it('spreads Twilio calls over both workers, counts them in one /metrics, and holds MAX_CONCURRENT_CALLS across workers', async () => {
    const { callers, outcomes } = await dialAll(MAX_CALLS);
    expect(outcomes.every((o) => o === 'connected')).toBe(true);
    const per = await until('every call counted on a worker', async () => {
      const m = await perWorker();
      return (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0) === MAX_CALLS ? m : null;
    });
    // 30 connections all on one worker: probability 2^-29 by the hash alone, less with steering.
    expect(per.get('{worker="0"}')).toBeGreaterThan(0);
    expect(per.get('{worker="1"}')).toBeGreaterThan(0);
    const text = await metrics();
    // Every worker's series merged: one aybiza_calls_active for the process, one build_info.
    expect(series(text, 'aybiza_calls_active').get('{transport="twilio"}')).toBe(MAX_CALLS);
    expect(text).toMatch(/aybiza_build_info\{version="[^"]+",uws_native="1"\} 1\n/);
    expect(text).toContain('process_cpu_seconds_total');
    expect(series(text, 'aybiza_worker_event_loop_lag_seconds').size).toBe(6);
    // The process is full: whichever worker takes the next webhook refuses it.
    for (let i = 0; i < 4; i++) {
      const extra = caller();
      expect((await extra.webhook()).twiml).toMatch(/<Reject reason="busy"/);
    }
    await Promise.all(callers.map((c) => c.hangup()));
    await until('calls ended on both workers', async () => {
      const m = await perWorker();
      return (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0) === 0;
    });
  }, 60_000);

  it('steers new calls to the less-loaded worker: 30 calls dialled one after another split within ±3', async () => {
    // The kernel's hash alone leaves 30 calls more than 3 apart more often than not (P ≈ 0.59).
    await dialOneByOne(30, (m) => expect(Math.abs((m.get('{worker="0"}') ?? 0) - (m.get('{worker="1"}') ?? 0))).toBeLessThanOrEqual(3));
    expect(steeringOff()).toEqual([]);
  }, 120_000);

  it('counts media streams whose call has not started against their worker: 20 opened one after another split within ±2', async () => {
    // Streams that never send `start` are never reported as calls: only the
    // worker's own count of streams still starting tells the steering where
    // they went (the kernel's hash alone: |difference| > 2 about half the time).
    const wss = base.replace(/^http/, 'ws') + '/twilio/media';
    const sig = twilio.getExpectedTwilioSignature(TOKEN, wss, {});
    const sockets: WebSocket[] = [];
    const starting = async () => series(await metrics(), 'aybiza_worker_streams_starting');
    const total = (m: Map<string, number>) => (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0);
    try {
      for (let i = 0; i < 20; i++) {
        const ws = new WebSocket(wss, { headers: { 'x-twilio-signature': sig }, perMessageDeflate: false });
        sockets.push(ws);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
          ws.once('error', reject);
        });
        // The steering reads the counts every 50 ms.
        await new Promise((r) => setTimeout(r, 150));
      }
      const per = await until('20 streams counted as starting', async () => {
        const m = await starting();
        return total(m) === 20 ? m : null;
      });
      expect(Math.abs((per.get('{worker="0"}') ?? 0) - (per.get('{worker="1"}') ?? 0))).toBeLessThanOrEqual(2);
      expect(total(await perWorker())).toBe(0);
    } finally {
      for (const ws of sockets) ws.terminate();
    }
    // Closed before their start: counted no more.
    await until('no stream starting', async () => total(await starting()) === 0);
    expect(steeringOff()).toEqual([]);
  }, 60_000);

  it('runs one set of provider emulators for every worker, on a thread of its own, and both workers converse through it', async () => {
    const lines = srv.logs.map((l) => { try { return JSON.parse(l) as { msg?: string; url?: string; deepgram?: string; bedrock?: string }; } catch { return {}; } });
    const shared = lines.filter((l) => l.msg === 'provider emulators: one thread for every worker');
    expect(shared).toHaveLength(1);
    // Every thread that made providers (the main thread for SIP, each worker) says EMULATED, with the shared URLs.
    const speech = lines.filter((l) => l.msg?.startsWith('speech (Deepgram STT/TTS): EMULATED'));
    const llm = lines.filter((l) => l.msg?.startsWith('LLM (Bedrock): EMULATED'));
    expect(speech.length).toBeGreaterThanOrEqual(2);
    expect(new Set(speech.map((l) => l.url))).toEqual(new Set([shared[0].deepgram]));
    expect(new Set(llm.map((l) => l.url))).toEqual(new Set([shared[0].bedrock]));
    const threads = fs.readdirSync(`/proc/${srv.child.pid}/task`).map((t) => fs.readFileSync(`/proc/${srv.child.pid}/task/${t}/comm`, 'utf8').trim());
    expect(threads.filter((t) => t === 'aybiza-emu')).toHaveLength(1);
    // The agent's greeting (TTS from the shared emulator) is heard on calls that landed on each worker.
    const callers = Array.from({ length: 6 }, () => new TwilioCaller({ baseUrl: base, authToken: TOKEN, to: DEMO }));
    try {
      for (const c of callers) expect((await c.dial()).outcome).toBe('connected');
      const per = await until('6 calls counted', async () => {
        const m = await perWorker();
        return (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0) === 6 ? m : null;
      });
      expect(per.get('{worker="0"}')).toBeGreaterThan(0);
      expect(per.get('{worker="1"}')).toBeGreaterThan(0);
      await until('the greeting heard on every call', async () => callers.every((c) => c.stats.nonSilent > 10));
    } finally {
      await Promise.all(callers.map((c) => c.hangup()));
    }
    await until('no calls', async () => [...(await perWorker()).values()].every((n) => n === 0));
  }, 60_000);

  it('restarts a worker that dies, stores its calls as ended, and keeps serving', async () => {
    const { callers } = await dialAll(6);
    const before = await until('calls counted', async () => {
      const m = await perWorker();
      return (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0) === 6 ? m : null;
    });
    srv.child.kill('SIGUSR2'); // AYBIZA_WORKER_FAULTS: the busiest worker exits as a crash would
    const busiest = Math.max(before.get('{worker="0"}')!, before.get('{worker="1"}')!);
    await until('the worker restarted', async () => series(await metrics(), 'aybiza_worker_restarts_total').get('') === 1);
    expect(srv.child.exitCode).toBeNull();
    // The dead worker's callers were cut off; its calls are stored as failed ("worker exited").
    await until('dead calls closed', async () => callers.filter((c) => c.isClosed).length >= busiest);
    let seen = '';
    const list = await until('calls stored as ended', async () => {
      const res = await fetch(`${base}/v1/calls?limit=100`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      const body = (await res.json()) as { items: { externalId: string; status: string; endReason: string | null }[] };
      const ours = body.items.filter((c) => callers.some((k) => k.callSid === c.externalId));
      seen = ours.map((c) => `${c.status}/${c.endReason}`).join(', ');
      return ours.filter((c) => c.endReason === 'worker exited').length === busiest ? ours : null;
    }).catch((err: Error) => { throw new Error(`${err.message} (saw: ${seen})`); });
    expect(list.filter((c) => c.endReason === 'worker exited').every((c) => c.status === 'failed')).toBe(true);
    // The restarted worker listens again (both appear in /metrics) and new calls are taken on both workers again.
    await until('both workers listening', async () => (await perWorker()).size === 2);
    expect((await fetch(`${base}/readyz`, { headers: { connection: 'close' } })).status).toBe(200);
    await Promise.all(callers.map((c) => c.hangup()));
    await until('no calls', async () => {
      const m = await perWorker();
      return (m.get('{worker="0"}') ?? 0) + (m.get('{worker="1"}') ?? 0) === 0;
    });
    const again = await dialAll(MAX_CALLS);
    expect(again.outcomes.every((o) => o === 'connected')).toBe(true);
    await until('new calls on both workers', async () => {
      const m = await perWorker();
      return (m.get('{worker="0"}') ?? 0) > 0 && (m.get('{worker="1"}') ?? 0) > 0 && (m.get('{worker="0"}')! + m.get('{worker="1"}')!) === MAX_CALLS;
    });
    await Promise.all(again.callers.map((c) => c.hangup()));
  }, 90_000);

  it('survives a worker terminated from outside (no JavaScript runs in it to close its sockets): ends its calls and restarts it', async () => {
    const { callers } = await dialAll(4);
    await until('calls counted', async () => [...(await perWorker()).values()].reduce((a, b) => a + b, 0) === 4);
    const restartsBefore = srv.stdout.filter((l) => l.includes('"worker restarted"')).length;
    srv.child.kill('SIGUSR2'); // the second fault: the main thread terminates the busiest worker
    // Watched in the log, not over HTTP: an HTTP request that reaches the worker while its JavaScript is being
    // terminated makes uWS.js abort the process (a handler that cannot respond; see README, Scaling). Media
    // keeps flowing to it meanwhile (WebSocket messages are not subject to that check).
    await until('the worker restarted', async () => srv.stdout.filter((l) => l.includes('"worker restarted"')).length > restartsBefore);
    expect(series(await metrics(), 'aybiza_worker_restarts_total').get('')).toBe(2);
    expect(srv.child.exitCode).toBeNull();
    await until('dead calls closed', async () => callers.some((c) => c.isClosed));
    await until('both workers listening', async () => (await perWorker()).size === 2);
    await until('dead calls stored as ended', async () => {
      const res = await fetch(`${base}/v1/calls?limit=100`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      const body = (await res.json()) as { items: { externalId: string; endReason: string | null }[] };
      const dead = callers.filter((c) => c.isClosed).map((c) => c.callSid);
      return dead.every((sid) => body.items.some((c) => c.externalId === sid && c.endReason === 'worker exited'));
    });
    // Two restarts later the steering still knows which socket is whose (else it turns itself off and says so).
    expect(steeringOff()).toEqual([]);
    // The terminated worker's listening socket is closed, not left accepting connections nobody serves.
    for (let i = 0; i < 6; i++) expect((await fetch(`${base}/readyz`, { headers: { connection: 'close' } })).status).toBe(200);
    await Promise.all(callers.map((c) => c.hangup()));
    await until('no calls', async () => [...(await perWorker()).values()].reduce((a, b) => a + b, 0) === 0);
    // Steering after two restarts: had it lost track of which socket is whose, it would send every call to the busier worker.
    await dialOneByOne(10, (m) => expect(Math.abs((m.get('{worker="0"}') ?? 0) - (m.get('{worker="1"}') ?? 0))).toBeLessThanOrEqual(4));
  }, 90_000);

  it('drains every worker on SIGTERM and exits 0', async () => {
    const c = caller();
    expect((await c.dial()).outcome).toBe('connected');
    await until('call counted', async () => [...(await perWorker()).values()].reduce((a, b) => a + b, 0) === 1);
    srv.child.kill('SIGTERM');
    // Draining: readyz is 503 on every worker while the call goes on.
    await until('readyz 503', async () => (await fetch(`${base}/readyz`, { headers: { connection: 'close' } })).status === 503, 5000);
    await c.hangup();
    expect(await srv.exit).toBe(0);
  }, 60_000);
});
