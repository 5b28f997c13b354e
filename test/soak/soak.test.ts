// Soak (issue 13 item 15): 1,000 short calls against a spawned `aybiza serve`
// (500 Twilio, 500 SIP through SIPp), including failed setups and hang-ups
// mid-reply, run concurrently; afterwards the server holds what it held when
// idle: sockets, fds, timers, native objects, RTP ports, clock members and
// STT streams. The server reports them over an IPC channel from a probe
// preloaded with --import (test/soak/probe.mjs); nothing is exposed on the
// network. The provider emulators run in this process, so the server's
// sockets are only its own.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';
import { CLI, tempDir } from '../helpers/spawn-server.js';
import { freePort } from '../helpers/app.js';
import { freeSipPort, SCENARIOS } from '../sip/helpers.js';

// SOAK_SCALE (default 1) shrinks the run while working on it; the suite runs it whole.
const SCALE = Number(process.env.SOAK_SCALE ?? 1);
const TWILIO_CALLS = Math.round(500 * SCALE);
const SIP_CALLS = Math.round(500 * SCALE);
const TWILIO_CONCURRENCY = 24;
const PROBE = path.resolve(__dirname, 'probe.mjs');
const AUTH = 'soak-auth-token';
const ADMIN = 'soak-admin-key';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hasSipp = (() => {
  try {
    return fs.readdirSync('/usr/bin').includes('sipp');
  } catch {
    return false;
  }
})();

interface Stats {
  resources: Record<string, number>;
  /** Open fds other than the embedded database's own files. */
  fds: number;
  sockets: number;
  dbFiles: number;
  native: Record<string, number>;
  clock: number;
  sttStreams: number;
  rtpPorts: number;
  heapUsed: number;
}

/** What must be back where it was when idle. */
function held(s: Stats): Record<string, number> {
  return {
    fds: s.fds, sockets: s.sockets, tcp: s.resources.TCPSocketWrap ?? 0, udp: s.resources.UDPWrap ?? 0, timers: s.resources.Timeout ?? 0,
    ...Object.fromEntries(Object.entries(s.native).map(([k, v]) => [`native.${k}`, v])),
    clock: s.clock, sttStreams: s.sttStreams, rtpPorts: s.rtpPorts,
  };
}

class Server {
  child!: ChildProcess;
  logs: string[] = [];
  private seq = 0;

  async start(env: Record<string, string>, base: string): Promise<void> {
    this.child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--expose-gc', '--import', PROBE, CLI, 'serve'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (d: Buffer) => {
      if (this.logs.length < 2000) this.logs.push(d.toString());
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    const t0 = Date.now();
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`server exited with ${this.child.exitCode}:\n${this.logs.join('')}`);
      if (await fetch(base + '/readyz').then((r) => r.ok, () => false)) return;
      if (Date.now() - t0 > 60_000) throw new Error(`server did not start:\n${this.logs.join('')}`);
      await sleep(200);
    }
  }

  stats(): Promise<Stats> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no stats from the server')), 10_000);
      const on = (m: { type?: string; id?: number } & Stats) => {
        if (m?.type !== 'stats' || m.id !== id) return;
        clearTimeout(timer);
        this.child.off('message', on);
        resolve(m);
      };
      this.child.on('message', on);
      this.child.send({ type: 'stats', id });
    });
  }

  async stop(): Promise<void> {
    if (this.child?.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

async function api(base: string, p: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(base + p, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}

/** Runs SIPp (many calls of one scenario); resolves with its exit code. */
function sipp(sipPort: number, scenario: string, service: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const dir = tempDir('soak-sipp-');
  return new Promise((resolve) => {
    void (async () => {
      const local = await freeSipPort();
      const media = await freeSipPort();
      const child = spawn('sipp', [
        `127.0.0.1:${sipPort}`, '-sf', path.join(SCENARIOS, scenario), '-s', service, '-i', '127.0.0.1', '-p', String(local),
        '-mi', '127.0.0.1', '-mp', String(media), '-key', 'rtp_port', '9', '-nostdin', '-timeout', '300s', '-timeout_error', ...args,
      ], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
      child.on('exit', (code) => resolve({ code, out }));
    })();
  });
}

const SPEECH = synthesize('I would like to book a table');

/** One short Twilio call of kind `i % 10`: failed setups, hang-ups mid-greeting and mid-reply. */
async function twilioCall(base: string, number: string, i: number): Promise<string> {
  const kind = i % 10;
  const c = new TwilioCaller({ baseUrl: base, authToken: AUTH, to: kind === 0 ? '+15550000000' : number });
  if (kind === 0) return (await c.dial()).outcome; // unknown number: <Say> + <Hangup/>
  if (kind === 1) {
    await c.webhook(); // Twilio never opens the stream (the caller gave up)
    return 'abandoned';
  }
  if (kind === 2) {
    const { twiml } = await c.webhook();
    const url = /<Stream[^>]*url="([^"]+)"/.exec(twiml)?.[1];
    await c.connect(url!.replace(/&amp;/g, '&'), { token: 'forged' }); // refused at start
    await Promise.race([c.waitClosed(), sleep(5000)]);
    return 'bad_token';
  }
  const { outcome } = await c.dial();
  if (outcome !== 'connected') return outcome;
  const waitFrames = async (n: number, ms: number) => {
    const t0 = Date.now();
    while (c.stats.frames < n && Date.now() - t0 < ms && !c.isClosed) await sleep(20);
  };
  if (kind === 3) {
    await c.hangup(0); // hangs up at once, racing the session's start
  } else if (kind <= 6) {
    await waitFrames(5 + kind * 3, 5000); // mid-greeting
    await c.hangup(0);
  } else {
    await waitFrames(1, 5000);
    c.speak(SPEECH);
    await sleep(SPEECH.length / 8 + 300);
    const heard = c.stats.frames;
    await waitFrames(heard + 15, 6000); // mid-reply
    await c.hangup(0);
  }
  return 'connected';
}

describe.skipIf(!hasSipp)('soak: 1,000 short calls leave the server as idle as before', () => {
  const server = new Server();
  let emu: Emulators | null = null;
  afterAll(async () => {
    await server.stop();
    await emu?.close();
  });

  it('sockets, fds, timers, native objects, RTP ports, clock members and STT streams return to idle', async () => {
    emu = await startEmulators({
      deepgram: { sttFinalDelayMs: 50, ttsFirstByteMs: 20, ttsRealtimeFactor: 0.02 },
      // The server's keep-alive pool to Bedrock drains soon after the load, as against the real endpoint (later).
      bedrock: { ttftMs: 40, tokensPerSecond: 400, keepAliveTimeoutMs: 1000 },
    });
    const port = await freePort();
    const sipPort = await freeSipPort();
    const rtpMin = 40000 + 2 * Math.floor(Math.random() * 5000);
    const base = `http://127.0.0.1:${port}`;
    await server.start({
      PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: base, DATA_DIR: tempDir('soak-'), LOG_LEVEL: 'warn',
      TWILIO_AUTH_TOKEN: AUTH, ADMIN_API_KEY: ADMIN, EMULATORS: 'auto', DEEPGRAM_URL: emu.deepgramUrl, DEEPGRAM_API_KEY: 'soak',
      BEDROCK_ENDPOINT: emu.bedrockUrl, AWS_REGION: 'us-east-1',
      SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', RTP_PORT_MIN: String(rtpMin), RTP_PORT_MAX: String(rtpMin + 1000),
      EMULATOR_PHRASES: 'I would like to book a table.',
      // The probe (probe.mjs) counts what the main thread holds: the calls must run there, not in media workers.
      WORKERS: '1',
    }, base);
    const tenant = await api(base, '/v1/tenants', { name: 'soak' });
    const agent = await api(base, '/v1/agents', { tenantId: tenant.id, name: 'soak', prompt: 'You are a receptionist.', greeting: 'Hello, thanks for calling. How can I help you today?' });
    const number = '+1555' + String(Math.floor(1_000_000 + Math.random() * 8_999_999));
    await api(base, '/v1/phone-numbers', { number, agentId: agent.id });
    await api(base, '/v1/sip-trunks', { tenantId: tenant.id, name: 'loopback', allowedCidrs: ['127.0.0.1/32'] });

    // Idle: the fresh server once it is ready (warm TTS pool, Bedrock connection, database), steady for 2 s.
    const settle = async (done: (now: Record<string, number>, stableMs: number) => boolean, ms: number): Promise<{ now: Record<string, number>; s: Stats }> => {
      const t0 = Date.now();
      let last = '';
      let stableSince = Date.now();
      for (;;) {
        const s = await server.stats();
        const now = held(s);
        if (JSON.stringify(now) !== last) [last, stableSince] = [JSON.stringify(now), Date.now()];
        if (done(now, Date.now() - stableSince) || Date.now() - t0 > ms) return { now, s };
        await sleep(500);
      }
    };
    const idle = (await settle((_, stableMs) => stableMs >= 2000, 30_000)).now;
    expect(idle.rtpPorts).toBe(0);
    expect(idle.clock).toBe(0);
    expect(idle.sttStreams).toBe(0);

    // The load: Twilio callers here, SIPp beside them.
    const t0 = Date.now();
    const outcomes: Record<string, number> = {};
    let next = 0;
    const twilio = Promise.all(Array.from({ length: TWILIO_CONCURRENCY }, async () => {
      while (next < TWILIO_CALLS) {
        const i = next++;
        const o = await twilioCall(base, number, i).catch((err: Error) => `error: ${err.message.slice(0, 60)}`);
        outcomes[o] = (outcomes[o] ?? 0) + 1;
      }
    }));
    const tenth = Math.round(SIP_CALLS / 10);
    const answered = SIP_CALLS - 2 * tenth;
    const sip = Promise.all([
      sipp(sipPort, 'uac_call.xml', number, ['-m', String(answered - tenth), '-r', '10', '-l', '30', '-d', '800']), // BYE mid-greeting
      sipp(sipPort, 'uac_call.xml', number, ['-m', String(tenth), '-r', '5', '-l', '10', '-d', '0']), // BYE right after the ACK
      sipp(sipPort, 'uac_expect_404.xml', '+15550000000', ['-m', String(tenth), '-r', '5']), // unknown number
      sipp(sipPort, 'uac_expect_488.xml', number, ['-m', String(tenth), '-r', '5']), // no common codec
    ]);
    // Peaks during the load: the probe does see calls' resources.
    const peak: Record<string, number> = {};
    let loading = true;
    const sampler = (async () => {
      while (loading) {
        const now = held(await server.stats());
        for (const [k, v] of Object.entries(now)) peak[k] = Math.max(peak[k] ?? 0, v);
        await sleep(1000);
      }
    })();
    const [, sipResults] = await Promise.all([twilio, sip]);
    loading = false;
    await sampler;
    const loadS = (Date.now() - t0) / 1000;

    const metrics = await (await fetch(base + '/metrics')).text();
    const total = (transport: string) => metrics.split('\n').filter((l) => l.startsWith('aybiza_calls_total{') && l.includes(`transport="${transport}"`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    // SIP transactions keep their timers for 32 s after they complete (RFC 3261 Timers D, J, K), and
    // keep-alive connections close when idle: wait for the server to be back at (or below) idle.
    const back = (now: Record<string, number>) => Object.keys(idle).every((k) => (now[k] ?? 0) <= idle[k]);
    const after = await settle(back, 60_000);
    console.log(JSON.stringify({ loadS, outcomes, sip: sipResults.map((r) => r.code), callsTotal: { twilio: total('twilio'), sip: total('sip') }, peak, idle, after: after.now, heapUsedMiB: +(after.s.heapUsed / 2 ** 20).toFixed(1), dbFiles: after.s.dbFiles }));

    // The calls really ran (not refused wholesale)...
    expect(outcomes.connected ?? 0).toBeGreaterThanOrEqual(TWILIO_CALLS * 0.7 * 0.95);
    expect(total('sip')).toBeGreaterThanOrEqual(answered * 0.95);
    expect(peak['native.MediaChannel']).toBeGreaterThan(0);
    expect(peak.rtpPorts).toBeGreaterThan(0);
    expect(peak.sttStreams).toBeGreaterThan(0);
    // ... and left nothing behind: nothing per call survives, nothing grew.
    expect({ rtpPorts: after.now.rtpPorts, clock: after.now.clock, sttStreams: after.now.sttStreams }).toEqual({ rtpPorts: 0, clock: 0, sttStreams: 0 });
    for (const k of Object.keys(after.now).filter((k) => k.startsWith('native.'))) expect(after.now[k], k).toBe(idle[k] ?? 0);
    const grown = Object.fromEntries(Object.keys(idle).filter((k) => (after.now[k] ?? 0) > idle[k]).map((k) => [k, { idle: idle[k], after: after.now[k] }]));
    expect(grown).toEqual({});
  }, 600_000);
});
