// The pieces of a real cluster on loopback for cluster.test.ts: Aybiza nodes
// (`aybiza serve` processes sharing one PostgreSQL database and one Redis),
// Kamailio started from deploy/kamailio/kamailio.cfg with a generated
// dispatcher list, and Prometheus started from deploy/prometheus's
// file-discovery config. Every port is picked at random; every process is
// stopped and every file removed by the returned stop functions.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, freeSipPort } from '../../src/commands/child.js';
import { spawnServer, tempDir, type Spawned } from '../helpers/spawn-server.js';

export const DEPLOY = path.resolve(__dirname, '../../deploy');
/** Debian installs it in /usr/sbin, which a non-root PATH may lack. */
export const KAMAILIO = fs.existsSync('/usr/sbin/kamailio') ? '/usr/sbin/kamailio' : 'kamailio';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it holds (or throws after `ms`). */
export async function eventually<T>(cond: () => Promise<T | false | null | undefined> | T | false | null | undefined, ms: number, what: string, everyMs = 200): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export interface Node extends Spawned {
  name: string;
  sipPort: number;
  /** Node's HTTP API as the platform admin. */
  api<T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }>;
  metrics(): Promise<string>;
}

/** Starts one `aybiza serve` with its own HTTP, SIP and RTP ports and the cluster's shared environment. */
export async function startNode(name: string, shared: Record<string, string>, sipPort?: number): Promise<Node> {
  const sip = sipPort ?? (await freeSipPort());
  // Each node its own 200-port slice of the RTP range (random, so parallel test files rarely meet).
  const rtpMin = 20000 + 2 * Math.floor(Math.random() * 10000);
  // An explicit HTTP port: with WORKERS > 1 every worker listens on it.
  const port = await freePort();
  const s = await spawnServer({ ...shared, PORT: String(port), SIP_PORT: String(sip), RTP_PORT_MIN: String(rtpMin), RTP_PORT_MAX: String(rtpMin + 200) });
  const api = async <T,>(method: string, route: string, body?: unknown) => {
    const res = await fetch(s.base + route, {
      method, headers: { authorization: `Bearer ${shared.ADMIN_API_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
  };
  return { ...s, name, sipPort: sip, api, metrics: async () => (await fetch(s.base + '/metrics')).text() };
}

/** The environment every node of the cluster shares (one database, one Redis, one set of secrets). */
export function sharedEnv(databaseUrl: string, redisUrl: string): Record<string, string> {
  return {
    // A prefix of its own: other tests running at the same time share the Redis server.
    DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, REDIS_PREFIX: `c${crypto.randomBytes(4).toString('hex')}:`,
    // One public URL for the pool, as behind a load balancer: Twilio signs against it whichever node answers.
    PUBLIC_URL: 'http://voice.cluster.invalid',
    TWILIO_AUTH_TOKEN: crypto.randomBytes(16).toString('hex'),
    AYBIZA_ENCRYPTION_KEY: crypto.randomBytes(32).toString('hex'),
    ADMIN_API_KEY: `admin-${crypto.randomBytes(12).toString('hex')}`,
    SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', EMULATORS: 'on', DRAIN_TIMEOUT_S: '60',
    EMULATOR_STT_FINAL_DELAY_MS: '50', EMULATOR_LLM_TTFT_MS: '60', EMULATOR_LLM_TOKENS_PER_S: '200', EMULATOR_TTS_TTFB_MS: '30', EMULATOR_TTS_RTF: '0.05',
  };
}

/** One request relayed by Kamailio, from the `aybiza-relay` lines of deploy/kamailio/kamailio.cfg. */
export interface Relay {
  method: string;
  callId: string;
  /** The SIP port of the next hop (the node). */
  port: number;
}

export interface Kamailio {
  port: number;
  logs: string[];
  relays(): Relay[];
  stop(): Promise<void>;
}

export interface KamailioOptions {
  /** Addresses in TRUSTED_LIST (never flood-limited); default the test's callers on 127.0.0.1. */
  trusted?: string[];
  /** PIKE_DENSITY: requests per 2 s from any other address. */
  pikeDensity?: number;
}

/** Kamailio from deploy/kamailio/kamailio.cfg, in the foreground, logging to stderr, probing every second. */
export async function startKamailio(nodes: number[], o: KamailioOptions = {}): Promise<Kamailio> {
  const dir = tempDir('kamailio-');
  const list = path.join(dir, 'dispatcher.list');
  fs.writeFileSync(list, nodes.map((p) => `1 sip:127.0.0.1:${p}\n`).join(''));
  const trusted = path.join(dir, 'trusted.list');
  fs.writeFileSync(trusted, (o.trusted ?? ['127.0.0.1']).map((a, i) => `1 ${a} 32 0 carrier-${i}\n`).join(''));
  const port = await freeSipPort();
  const child = spawn(KAMAILIO, [
    '-f', path.join(DEPLOY, 'kamailio/kamailio.cfg'), '-DD', '-E', '-m', '64', '-M', '8', '-Y', dir, '-P', path.join(dir, 'kamailio.pid'),
    '-A', 'LISTEN_IP=127.0.0.1', '-A', `LISTEN_PORT=${port}`, '-A', `DISPATCHER_LIST="${list}"`, '-A', 'PING_INTERVAL=1', '-A', 'CHILDREN=2', '-A', 'LOG_LEVEL=1',
    '-A', `TRUSTED_LIST="${trusted}"`, ...(o.pikeDensity ? ['-A', `PIKE_DENSITY=${o.pikeDensity}`] : []),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const collect = (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let alive = true;
  void exited.then(() => (alive = false));
  // Up when it answers an OPTIONS addressed to itself.
  await eventually(async () => {
    if (!alive) throw new Error(`kamailio exited:\n${logs.join('\n')}`);
    return (await sipOptions(port, 500)) === 200;
  }, 20_000, 'kamailio to answer OPTIONS', 100);
  return {
    port, logs,
    relays: () => logs.flatMap((l) => {
      const m = /aybiza-relay (\S+) (\S+) -> \S*?:(\d+)(?:[;>]|$)/.exec(l);
      return m ? [{ method: m[1]!, callId: m[2]!, port: Number(m[3]) }] : [];
    }),
    async stop() {
      if (alive) child.kill('SIGTERM');
      const t = setTimeout(() => alive && child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      if (process.env.CLUSTER_LOG_DIR) fs.writeFileSync(path.join(process.env.CLUSTER_LOG_DIR, 'kamailio.log'), logs.join('\n'));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends one OPTIONS over UDP (from the loopback address `from`) to 127.0.0.1:port; resolves with the status code, or null without an answer. */
export async function sipOptions(port: number, timeoutMs = 2000, from = '127.0.0.1'): Promise<number | null> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, from, () => r()));
  const local = sock.address().port;
  const branch = `z9hG4bK${crypto.randomBytes(6).toString('hex')}`;
  const msg = [
    `OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP ${from}:${local};branch=${branch};rport`,
    `From: <sip:probe@${from}:${local}>;tag=${crypto.randomBytes(4).toString('hex')}`, `To: <sip:127.0.0.1:${port}>`,
    `Call-ID: ${crypto.randomBytes(8).toString('hex')}@${from}`, 'CSeq: 1 OPTIONS', 'Max-Forwards: 70', 'Content-Length: 0', '', '',
  ].join('\r\n');
  try {
    return await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      sock.on('message', (m) => {
        const code = /^SIP\/2\.0 (\d{3})/.exec(m.toString())?.[1];
        if (code && Number(code) >= 200) {
          clearTimeout(t);
          resolve(Number(code));
        }
      });
      sock.send(msg, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

export interface Prometheus {
  url: string;
  /** An instant query; the result vector. */
  query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  stop(): Promise<void>;
}

/**
 * Prometheus from deploy/prometheus/prometheus-file-sd.yml with the targets
 * file and the alert rules in a temp directory, scraping every second.
 */
export async function startPrometheus(targets: string[]): Promise<Prometheus> {
  const dir = tempDir('prometheus-');
  fs.writeFileSync(path.join(dir, 'aybiza-targets.json'), JSON.stringify([{ targets, labels: { cluster: 'test' } }]));
  fs.copyFileSync(path.join(DEPLOY, 'prometheus/aybiza-alerts.yml'), path.join(dir, 'aybiza-alerts.yml'));
  const config = fs.readFileSync(path.join(DEPLOY, 'prometheus/prometheus-file-sd.yml'), 'utf8')
    .replace(/\/etc\/prometheus\/aybiza-targets\.json/g, path.join(dir, 'aybiza-targets.json'))
    .replace(/scrape_interval: \S+/g, 'scrape_interval: 1s')
    .replace(/refresh_interval: \S+/g, 'refresh_interval: 1s');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const child: ChildProcess = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  child.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${url}/-/ready`)).ok, 30_000, `prometheus to be ready:\n${logs.join('')}`);
  return {
    url,
    async query(q) {
      const r = (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: never[] } };
      return r.data.result;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
