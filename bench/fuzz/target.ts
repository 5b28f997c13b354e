// The fuzzed target: the provider emulators and `aybiza serve` as their own
// processes (the server with the production heap flags, as `npm run load`
// starts it; TOOLS_ALLOW_PRIVATE_NETWORKS unset, as on the internet), the
// tenants the fuzzer works on, and what is measured of the server from
// outside (RSS, the metrics it exposes). The outbound SIP boundary dials a
// hostile callee on loopback, which that server rightly refuses: it gets a
// second server of its own that allows private networks (startUacServer).
import crypto from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';
import { firstJsonLine, freePort, freeSipPort } from '../../src/commands/child.js';
import { FUZZ_ACCOUNT_SID } from './twilio-rest.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Target {
  base: string;
  port: number;
  sipPort: number;
  /** SIP over TLS (a self-signed certificate made for the run); 0 when openssl could not make one. */
  sipTlsPort: number;
  rtpMin: number;
  rtpMax: number;
  server: ChildProcess;
  logFile: string;
  /** How the server ended, or null while it runs. */
  exited(): string | null;
  /** The emulators' Deepgram URL (the Flux emulator is fuzzed there too). */
  deepgramUrl: string;
  /** The Twilio REST emulator (fuzzed too), accepting FUZZ_ACCOUNT_SID with the run's Twilio token. */
  twilioRestUrl: string;
  bedrockUrl: string;
  /** The embedded database's socket server (postgres://postgres:<password>@… on loopback); null on an external database. */
  embeddedDbUrl: string | null;
}

export interface TargetOptions {
  dataDir: string;
  adminKey: string;
  twilioToken: string;
  /** Every process started is added here, for the caller to stop. */
  children: ChildProcess[];
  log(line: string): void;
  /** Unset: the embedded database (PGlite in dataDir) and in-process state. */
  databaseUrl?: string;
  redisUrl?: string;
}

/** Starts the emulators and the server; resolves once /readyz answers 200. */
export async function startTarget(o: TargetOptions): Promise<Target> {
  // The providers: the emulators as their own process (as `npm run load` does).
  // Phrases without "goodbye" or a tool's name: the healthy calls must last.
  const emu = spawn(process.execPath, [CLI, 'emulators'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LOG_LEVEL: 'warn', TWILIO_ACCOUNT_SID: FUZZ_ACCOUNT_SID, TWILIO_AUTH_TOKEN: o.twilioToken, EMULATOR_PHRASES: 'What are your opening hours|Is there parking nearby|Do you have a table by the window' },
  });
  o.children.push(emu);
  try {
    os.setPriority(emu.pid!, 10);
  } catch {
    /* not permitted */
  }
  const urls = await firstJsonLine(emu, (m) => typeof m.deepgramUrl === 'string', 'emulators');
  // At info, the production default: the startup lines name the embedded database's loopback socket server (pg_wire is fuzzed there).
  const server = await startServer(o, urls, { LOG_LEVEL: 'info' });
  const embeddedDbUrl = o.databaseUrl ? null : await embeddedSocket(server.logFile);
  return { ...server, embeddedDbUrl, deepgramUrl: String(urls.deepgramUrl), twilioRestUrl: String(urls.twilioRestUrl), bedrockUrl: String(urls.bedrockUrl) };
}

export type Server = Omit<Target, 'deepgramUrl' | 'twilioRestUrl' | 'bedrockUrl' | 'embeddedDbUrl'>;

/**
 * A second server, on the same emulators, with its own embedded database:
 * TOOLS_ALLOW_PRIVATE_NETWORKS lets it dial trunks on loopback (the fuzzed
 * callee), which the main target must keep refusing as on the internet.
 */
export async function startUacServer(o: TargetOptions, t: Target): Promise<Server> {
  const dataDir = path.join(o.dataDir, 'uac');
  fs.mkdirSync(dataDir, { recursive: true });
  const s = await startServer({ ...o, dataDir, databaseUrl: undefined, redisUrl: undefined }, { deepgramUrl: t.deepgramUrl, bedrockUrl: t.bedrockUrl },
    { TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', WORKERS: '1', MAX_CONCURRENT_CALLS: '64' });
  // Like the emulators, it yields the CPU to the main target, whose pacing is measured (this box has two cores).
  try {
    os.setPriority(s.server.pid!, 10);
  } catch {
    /* not permitted */
  }
  return s;
}

async function startServer(o: TargetOptions, urls: Record<string, unknown>, extra: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const sipPort = await freeSipPort();
  const tlsFiles = selfSigned(o.dataDir);
  const sipTlsPort = tlsFiles ? await freeSipPort() : 0;
  const rtpMin = 2 * (15000 + Math.floor(Math.random() * 7000));
  const rtpMax = rtpMin + 400;
  const base = `http://127.0.0.1:${port}`;
  const env: Record<string, string | undefined> = {
    ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: base, SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1',
    RTP_PORT_MIN: String(rtpMin), RTP_PORT_MAX: String(rtpMax), LOG_LEVEL: 'warn', DATA_DIR: o.dataDir, TWILIO_AUTH_TOKEN: o.twilioToken, ADMIN_API_KEY: o.adminKey,
    DEEPGRAM_URL: String(urls.deepgramUrl), DEEPGRAM_API_KEY: 'fuzz', BEDROCK_ENDPOINT: String(urls.bedrockUrl),
    AWS_ACCESS_KEY_ID: 'fuzz', AWS_SECRET_ACCESS_KEY: 'fuzz', AWS_REGION: 'us-east-1', MAX_CONCURRENT_CALLS: '32', API_RATE_LIMIT: '1000', NODE_ENV: 'development',
    // A small per-source SIP budget, so the SIP fuzzer's stranger (127.0.0.2, in no trunk) meets it; 127.0.0.1 is a trunk's.
    SIP_SOURCE_LIMIT_KBPS: '4',
    ...(tlsFiles ? { SIP_TLS_PORT: String(sipTlsPort), SIP_TLS_CERT: tlsFiles.cert, SIP_TLS_KEY: tlsFiles.key } : {}),
  };
  // The fuzzed server runs as it would on the internet: private networks stay refused to tools.
  delete env.TOOLS_ALLOW_PRIVATE_NETWORKS;
  // Never the caller's own database or Redis by accident: the embedded ones unless named here.
  env.DATABASE_URL = o.databaseUrl;
  env.REDIS_URL = o.redisUrl;
  // The test knob for the embedded database's password: pg_wire connects to its socket from this process.
  env.AYBIZA_EMBEDDED_DB_PASSWORD = EMBEDDED_DB_PASSWORD;
  Object.assign(env, extra);
  const logFile = path.join(o.dataDir, 'server.log');
  const logFd = fs.openSync(logFile, 'a');
  const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI, 'serve'], { stdio: ['ignore', logFd, logFd], env });
  o.children.push(server);
  let serverExit: string | null = null;
  server.once('exit', (code, sig) => (serverExit = `exit code ${code}, signal ${sig}`));
  o.log(`server pid ${server.pid}, log in ${logFile}`);
  const t0 = Date.now();
  for (;;) {
    if (serverExit) throw new Error(`server ${serverExit} before it was ready; see ${logFile}`);
    if (Date.now() - t0 > 120_000) throw new Error(`server not ready after 120 s; see ${logFile}`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      /* starting */
    }
    await sleep(200);
  }
  return { base, port, sipPort, sipTlsPort, rtpMin, rtpMax, server, logFile, exited: () => serverExit };
}

/** A self-signed certificate for the SIP TLS listener (openssl, once per data directory); null without openssl. */
function selfSigned(dir: string): { cert: string; key: string } | null {
  const cert = path.join(dir, 'sip-tls.crt');
  const key = path.join(dir, 'sip-tls.key');
  if (fs.existsSync(cert)) return { cert, key };
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { stdio: 'ignore' });
    return { cert, key };
  } catch {
    return null;
  }
}

/** A fresh one per fuzz run, given to the servers as AYBIZA_EMBEDDED_DB_PASSWORD (a server makes a random one of its own otherwise). */
const EMBEDDED_DB_PASSWORD = crypto.randomBytes(24).toString('base64url');

/** postgres://postgres:<password>@127.0.0.1:port/postgres: the socket from the server's "database: embedded PostgreSQL" line, the password ours. */
async function embeddedSocket(logFile: string): Promise<string> {
  // The log is written asynchronously: the line may land a moment after /readyz answers.
  for (let i = 0; i < 25; i++) {
    for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.includes('embedded PostgreSQL')) continue;
      const socket = (JSON.parse(line) as { socket?: unknown }).socket;
      if (typeof socket === 'string' && /^127\.0\.0\.1:\d+$/.test(socket)) return `postgres://postgres:${EMBEDDED_DB_PASSWORD}@${socket}/postgres`;
    }
    await sleep(200);
  }
  throw new Error(`the server logged no embedded database socket; see ${logFile}`);
}

/**
 * The demo tenant carries the healthy calls (a loopback trunk, and a second
 * number for the fuzzer's own calls); a tenant of the fuzzer's own, with a
 * key, agent, number and trunk, is what the authenticated API fuzzing works on.
 */
export async function setupTenants(base: string, adminKey: string) {
  const tenants = (await api(base, adminKey, 'GET', '/v1/tenants?limit=200')).items as { id: string }[];
  const agents = (await api(base, adminKey, 'GET', '/v1/agents?limit=200')).items as { id: string; tenantId: string }[];
  const demoTenant = tenants[0]!.id;
  const demoAgent = agents.find((x) => x.tenantId === demoTenant)!.id;
  await api(base, adminKey, 'POST', '/v1/sip-trunks', { tenantId: demoTenant, name: 'fuzz: loopback', allowedCidrs: ['127.0.0.1/32'] });
  const fuzzNumber = '+15555550177';
  await api(base, adminKey, 'POST', '/v1/phone-numbers', { number: fuzzNumber, agentId: demoAgent });
  const ft = await api(base, adminKey, 'POST', '/v1/tenants', { name: 'fuzz' });
  const key = await api(base, adminKey, 'POST', '/v1/api-keys', { tenantId: ft.id, name: 'fuzz' });
  const tenantKey = String(key.key);
  const fa = await api(base, tenantKey, 'POST', '/v1/agents', { name: 'fuzz agent', prompt: 'You are terse.', greeting: 'Hi.' });
  const fnum = await api(base, tenantKey, 'POST', '/v1/phone-numbers', { number: '+15555550188', agentId: fa.id });
  const ftr = await api(base, tenantKey, 'POST', '/v1/sip-trunks', { name: 'fuzz trunk', allowedCidrs: ['192.0.2.0/24'], username: 'fuzz', password: 'fuzz-password-1' });
  // A draft campaign (never started: nothing is dialled) whose contact upload takes the hostile CSV (csv.ts).
  const fcmp = await api(base, tenantKey, 'POST', '/v1/campaigns', {
    agentId: fa.id, from: '+15555550188', via: 'twilio', concurrency: 1, callsPerSecond: 1,
    window: { timezone: 'UTC', days: ['mon'], start: '09:00', end: '17:00' }, retry: { maxAttempts: 1, backoffS: 60 },
  });
  return { fuzzNumber, fuzzTenant: ft, fuzzKey: key, tenantKey, fuzzAgent: fa, fuzzNumberRow: fnum, fuzzTrunk: ftr, fuzzCampaign: fcmp };
}

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

export type Metrics = ReturnType<typeof parseMetrics>;

/** Prometheus text: the number of series, distinct values per metric label, and the value of each series of `name` by its label text. */
export function parseMetrics(text: string): { series: number; labelValues: Map<string, number>; values: (name: string) => Map<string, number> } {
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const seen = new Map<string, Set<string>>();
  for (const l of lines) {
    const name = l.slice(0, l.search(/[{ ]/));
    for (const [, k, v] of l.matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      if (k === 'le' || k === 'quantile') continue;
      const key = `${name.replace(/_(bucket|sum|count)$/, '')}{${k}}`;
      (seen.get(key) ?? seen.set(key, new Set()).get(key)!).add(v!);
    }
  }
  return {
    series: lines.length,
    labelValues: new Map([...seen].map(([k, v]) => [k, v.size])),
    values: (name) => {
      const out = new Map<string, number>();
      for (const l of lines) {
        if (!l.startsWith(name + '{') && !l.startsWith(name + ' ')) continue;
        const sp = l.lastIndexOf(' ');
        out.set(l.slice(name.length, sp), Number(l.slice(sp + 1)));
      }
      return out;
    },
  };
}

export async function api(base: string, key: string, method: string, p: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(base + p, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`setup: ${method} ${p} answered ${res.status}: ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

