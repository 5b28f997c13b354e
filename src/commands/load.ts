// `npm run load -- --calls N --seconds S [--warmup W] [--runs R] [--baseline off|beside|unrecorded] [--profile]
//                 [--stt MODEL] [--record dual|mixed] [--workers N] [--url URL --public-url URL --to NUMBER]`
// N concurrent simulated Twilio calls with a speech/silence pattern. Without
// --url it starts the provider emulators (at lower CPU priority) and the
// server as their own processes (so only the server's CPU is charged to the
// calls). Unless --baseline off, each run also measures the naive Media
// Streams server of bench/naive/ as its own process, driven by the same
// callers with the same ramp, seconds and CPU accounting (the two alternate
// which goes first; with --baseline beside both are driven at the same time,
// the measured windows aligned, so the ratio does not carry the machine's
// drift between runs). Each run prints (stderr) a side-by-side table: CPU per
// call-second and the ratio, calls per core, the callers' gap p50/p99/max
// inside spoken segments, late and dropped frames, and for ours the server's
// late frames by stall, its pauses by reason and the TTS flush-limit
// warnings; the median e2e of the stored turns and the callers' median
// voice-to-voice; with --runs R, each figure's min–max over the runs.
// The emulators the load starts transcribe LOAD_PHRASES, which never say
// goodbye (with the emulators' default phrases our agent ended each call on
// its fourth utterance while the naive server kept its calls), and CPU is
// divided by the call-seconds the calls were really up in the window.
// --warmup W (default 0): the calls run W seconds before the measured window
// opens, for every server alike (a fresh process spends its first seconds
// compiling its hot code).
// --stt MODEL: the demo agent's speech-to-text model on our server
// (flux-general-en for Deepgram Flux; default the agent's, nova-3).
// --workers N: WORKERS for our server (default: its own, the CPUs available);
// with more than one, the calls per worker with every call up are printed.
// --record dual|mixed: the demo agent records every call (src/recordings),
// to compare the server's CPU per call-second with recording on and off.
// --baseline unrecorded (with --record): instead of the naive server, a
// second copy of our server (own emulators) without recording, driven at the
// same time by the same number of callers with the measured windows aligned:
// both see the same machine, so the ratio does not carry the run-to-run
// drift of the machine (±10 % between runs here). LOAD_AA=1 leaves the
// recording off on both (an A/A check of this mode's fairness); with
// LOAD_BASELINE_CLI=<another build's dist/src/cli.js> the right-hand server
// runs that build: a before/after comparison of two builds on the same
// machine at the same time.
// stdout: the whole report as JSON (every run, both servers).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DEMO_NUMBER } from '../store/seed.js';
import { emulatorSettings } from '../config.js';
import { describeEmulatorSettings } from '../providers/emulators/profiles.js';
import { parseArgs, numberArg } from './args.js';
import { setLogSink } from '../log.js';
import { SERVER_NODE_FLAGS } from '../server/node-flags.js';
import { firstJsonLine, freePort } from './child.js';
import { formatSelfTime, readMainThreadProfile, topSelfTime } from './profile.js';
import { driveCallers, hangupAll, type CallerFigures, type Target } from './load-drive.js';
import {
  comparisonRows, formatRunTable, formatSpreadTable, gcTime, median, playoutCounters, spreadOf,
  type GcTime, type OurFigures, type PlayoutCounters, type Row, type SideFigures,
} from './load-report.js';

const DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(DIST, 'src', 'cli.js');
const NAIVE = path.join(DIST, 'bench', 'naive', 'main.js');
const ADMIN_KEY = 'load-admin-key';
// The provider delays the load's emulators are configured with (EMULATOR_PROFILE
// and the EMULATOR_* variables, read as `aybiza emulators` reads them), so each
// turn can be compared with them (with a jittered profile: the centre values).
const STT_ENDPOINTING_MS = 300; // the demo agent's STT setting (the default)
const FLUSH_LIMIT_WARNING = 'Flush limit exceeded';
/** What the load's STT emulator transcribes, in turn: the default phrases without the goodbye. */
export const LOAD_PHRASES = 'Hello, I would like to book a table for two.|Tomorrow at seven in the evening.|Yes, that is right.';

interface Emulated {
  sttFinalMs: number;
  llmTtftMs: number;
  ttsTtfbMs: number;
}

interface TurnRow {
  latencies: Partial<Record<'eou' | 'llm_ttft' | 'first_sentence' | 'tts_ttfb' | 'e2e' | 'server', number>>;
}

/** Every stored turn of the run's calls, read back through the admin API. */
async function storedTurns(url: string): Promise<TurnRow[]> {
  const headers = { authorization: `Bearer ${ADMIN_KEY}` };
  const ids: string[] = [];
  let cursor = '';
  for (;;) {
    const res = await fetch(`${url}/v1/calls?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { headers });
    if (!res.ok) break;
    const page = (await res.json()) as { items: { id: string }[]; nextCursor?: string | null };
    ids.push(...page.items.map((c) => c.id));
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  const turns: TurnRow[] = [];
  for (let i = 0; i < ids.length; i += 10) {
    const details = await Promise.all(ids.slice(i, i + 10).map(async (id) => (await fetch(`${url}/v1/calls/${id}`, { headers })).json()));
    for (const d of details as { turns?: TurnRow[] }[]) turns.push(...(d.turns ?? []));
  }
  return turns;
}

function spread(xs: number[]): { p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN);
  return { p50: +q(0.5).toFixed(1), p99: +q(0.99).toFixed(1), max: +(s.length ? s[s.length - 1] : NaN).toFixed(1) };
}

function histogramQuantiles(metrics: string, stage: string): { p50: number; p95: number; p99: number; count: number } | null {
  const buckets: [number, number][] = [];
  let count = 0;
  for (const line of metrics.split('\n')) {
    const m = new RegExp(`^aybiza_turn_latency_seconds_bucket\\{le="([^"]+)",stage="${stage}"\\} (\\d+)`).exec(line)
      ?? new RegExp(`^aybiza_turn_latency_seconds_bucket\\{stage="${stage}",le="([^"]+)"\\} (\\d+)`).exec(line);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
    const c = new RegExp(`^aybiza_turn_latency_seconds_count\\{stage="${stage}"\\} (\\d+)`).exec(line);
    if (c) count = Number(c[1]);
  }
  if (!count) return null;
  const q = (p: number) => buckets.find(([, n]) => n >= p * count)?.[0] ?? Infinity;
  // Upper bounds of the histogram buckets holding the quantile.
  return { p50: q(0.5) * 1000, p95: q(0.95) * 1000, p99: q(0.99) * 1000, count };
}

/** SIGTERM, then SIGKILL after 10 s; resolves when the process is gone (ports and CPU free for the next measurement). */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** Counts lines containing `needle` on a stream, passing every line on to stderr. */
function countLines(stream: NodeJS.ReadableStream, needle: string, forward: boolean): { count: number } {
  const c = { count: 0 };
  readline.createInterface({ input: stream }).on('line', (line) => {
    if (line.includes(needle)) c.count++;
    if (forward) process.stderr.write(line + '\n');
  });
  return c;
}

function countInFile(file: string, needle: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split(needle).length - 1;
  } catch {
    return 0;
  }
}

async function waitReady(url: string, child: ChildProcess, what: string): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after 60 s`);
}

async function metricsText(url: string): Promise<string> {
  try {
    return await (await fetch(`${url}/metrics`)).text();
  } catch {
    return '';
  }
}

interface Options {
  calls: number;
  seconds: number;
  /** Seconds the calls run before the measured window opens (--warmup). */
  warmup: number;
  token: string;
  to: string;
  url: string;
  publicUrl: string;
  profile: boolean;
  emulated: Emulated;
  /** The demo agent's STT model on our server (--stt); empty: as seeded. */
  stt: string;
  /** WORKERS for our server (--workers); null: the server's default (the CPUs available). */
  workers: number | null;
  /** The demo agent records every call (--record dual|mixed); empty: as seeded (off). */
  record: '' | 'dual' | 'mixed';
  /** Another build's dist/src/cli.js for this server (LOAD_BASELINE_CLI on the unrecorded side); empty: LOAD_SERVER_CLI or ours. */
  cli?: string;
}

type OurReport = CallerFigures & Record<string, unknown> & { gc: GcTime; playout: PlayoutCounters; flushLimitWarnings: { emulators: number; serverLog: number } };

/** Our server's processes for one measurement: the emulators, then the server on a free port. */
interface OurProcesses {
  url: string;
  pid: number;
  serverLog: string;
  profileDir: string;
  /** Flush-limit warnings seen on the emulators' output so far. */
  emulatorWarnings(): number;
}

/** Pushes each process on `children` as it starts (the caller stops them, last first). */
async function startOurs(o: Options, children: ChildProcess[]): Promise<OurProcesses> {
  // LOAD_EMULATOR_NODE_ARGS: extra node flags for the emulators' process (as LOAD_SERVER_NODE_ARGS for the server).
  const emuArgs = process.env.LOAD_EMULATOR_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const emu = spawn(process.execPath, [...emuArgs, CLI, 'emulators'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      // EMULATOR_PROFILE and EMULATOR_* pass through: the child reads them as run() did.
      ...process.env, LOG_LEVEL: 'warn',
      // The STT emulator's default phrases end with a goodbye, which the LLM
      // emulator answers with end_call: our agent would hang every load call up
      // after its fourth utterance while the naive server keeps its calls. The
      // load's callers never say goodbye (EMULATOR_PHRASES, if set, still wins).
      EMULATOR_PHRASES: process.env.EMULATOR_PHRASES ?? LOAD_PHRASES,
    },
  });
  children.push(emu);
  // Their output is read, not inherited: a flush-limit warning is counted wherever it is logged.
  const seen = [countLines(emu.stdout!, FLUSH_LIMIT_WARNING, false), countLines(emu.stderr!, FLUSH_LIMIT_WARNING, true)];
  // The emulators stand in for remote providers: on a real node they do not
  // compete with the server for its cores, so they yield to it here.
  try {
    os.setPriority(emu.pid!, 10);
  } catch {
    /* not permitted: measure without */
  }
  const urls = await firstJsonLine(emu, (x) => typeof x.deepgramUrl === 'string', 'emulators');
  // LOAD_SERVER_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = process.env.LOAD_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-load-'));
  // A port free a moment ago can be taken before the server binds it (the other
  // server's callers and providers open hundreds of ephemeral ports meanwhile):
  // a server that could not listen is started again on another port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startServer(o, children, urls, port, dataDir, nodeArgs, seen);
    } catch (err) {
      if (attempt >= 3 || !countInFile(path.join(dataDir, 'server.log'), 'cannot listen on')) throw err;
      process.stderr.write(`load: port ${port} was taken before the server bound it; starting it again\n`);
      fs.rmSync(path.join(dataDir, 'server.log'), { force: true });
    }
  }
}

async function startServer(o: Options, children: ChildProcess[], urls: Record<string, unknown>, port: number, dataDir: string, baseArgs: string[], seen: { count: number }[]): Promise<OurProcesses> {
  const url = `http://127.0.0.1:${port}`;
  const nodeArgs = [...baseArgs];
  // --profile: a V8 CPU profile of the server's whole life, written when it exits.
  const profileDir = o.profile ? path.join(dataDir, 'profile') : '';
  if (profileDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  // The server's log goes to a file: a pipe nobody reads would fill and block its writes.
  const serverLog = path.join(dataDir, 'server.log');
  const logFd = fs.openSync(serverLog, 'a');
  // LOAD_SERVER_CLI: another build's dist/src/cli.js as the server (e.g. an older commit in a worktree), measured
  // by these callers against these emulators: a before/after comparison with one measuring tool.
  const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...nodeArgs, o.cli || process.env.LOAD_SERVER_CLI || CLI, 'serve'], {
    stdio: ['ignore', logFd, logFd],
    env: {
      ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: url, SIP_PORT: '0', LOG_LEVEL: 'warn',
      DATA_DIR: dataDir, TWILIO_AUTH_TOKEN: o.token, ADMIN_API_KEY: ADMIN_KEY,
      DEEPGRAM_URL: String(urls.deepgramUrl), DEEPGRAM_API_KEY: 'load', BEDROCK_ENDPOINT: String(urls.bedrockUrl),
      AWS_ACCESS_KEY_ID: 'load', AWS_SECRET_ACCESS_KEY: 'load', AWS_REGION: 'us-east-1',
      MAX_CONCURRENT_CALLS: String(o.calls * 2),
      ...(o.workers ? { WORKERS: String(o.workers) } : {}),
      // Reading back every call's turns is hundreds of admin requests in a few seconds.
      API_RATE_LIMIT: '100000',
    },
  });
  fs.closeSync(logFd);
  children.push(server);
  process.stderr.write(`load: server log in ${serverLog}\n`);
  await waitReady(url, server, 'server');
  await fetch(`${url}/healthz`);
  if (o.stt || o.record) await configureAgent(url, { ...(o.stt ? { stt: { model: o.stt } } : {}), ...(o.record ? { recording: { enabled: true, channels: o.record } } : {}) });
  return { url, pid: server.pid!, serverLog, profileDir, emulatorWarnings: () => seen.reduce((n, c) => n + c.count, 0) };
}

/** Changes the seeded demo agent (STT model, recording) through the admin API: a new version, deployed. */
async function configureAgent(url: string, change: Record<string, unknown>): Promise<void> {
  const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`load: ${method} ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const agents = (await call('GET', '/v1/agents?limit=1')).items as { id: string }[];
  const agent = await call('PATCH', `/v1/agents/${agents[0].id}`, change);
  await call('POST', `/v1/agents/${agents[0].id}/deploy`, { version: agent.version });
}

/** One measurement of our server: emulators + server as processes (unless --url), the callers, /metrics, stored turns. */
async function measureOurs(o: Options, windowStart?: () => Promise<void>): Promise<OurReport> {
  const children: ChildProcess[] = [];
  try {
    const p = o.url ? null : await startOurs(o, children);
    const url = p?.url ?? o.url;
    const publicUrl = p?.url ?? o.publicUrl;
    const pid = p?.pid ?? 0;
    let before = '';
    const { callers, figures } = await driveCallers({ url, publicUrl, pid, to: o.to, token: o.token }, o.calls, o.seconds, o.warmup, async () => {
      await windowStart?.();
      before = await metricsText(url);
    });
    const metrics = await metricsText(url);
    // At the window's end every call is still up (the callers hang up after it) and every start has been counted.
    const workers = workerSpread(metrics);
    if (workers) process.stderr.write(`load: calls per worker with every call up: ${workers.calls.map((n, i) => `worker ${i}: ${n}`).join(', ')} (largest deviation from the mean ${workers.maxDeviationPct} %)\n`);
    const deferred = Number(/aybiza_playout_deferred_frames_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const lateTicks = Number(/aybiza_pacing_late_ticks_total (\d+)/.exec(metrics)?.[1] ?? 0);
    const loop = (name: string) => Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) * 1000;
    const report: OurReport = {
      ...figures,
      deferredFrames: deferred, pacingLateTicks: lateTicks, workers,
      // Over the measured window, from the server's counters (0 where a metric is absent).
      playout: playoutCounters(before, metrics),
      gc: gcTime(before, metrics),
      flushLimitWarnings: { emulators: 0, serverLog: 0 },
      serverEventLoopDelayMs: { p50: +loop('p50').toFixed(1), p99: +loop('p99').toFixed(1), max: +loop('max').toFixed(1) },
      turnLatencyMs: Object.fromEntries(['eou', 'llm_ttft', 'tts_ttfb', 'e2e', 'server'].map((s) => [s, histogramQuantiles(metrics, s)])),
    };
    // Every frame the server sent must have reached its caller: after the
    // hang-ups, the server's count of frames sent equals the frames the callers received.
    const received = await hangupAll(callers);
    if (pid) {
      await new Promise((r) => setTimeout(r, 1500));
      const after = await metricsText(url);
      const sent = Number(/^aybiza_media_frames_total\{(?=[^}]*transport="twilio")(?=[^}]*direction="out")[^}]*\} (\d+)/m.exec(after)?.[1] ?? NaN);
      Object.assign(report, { framesSentByServer: sent, framesReceivedByCallers: received, droppedFrames: sent - received });
      // Exact per-turn figures (the histograms above are bucketed): our own
      // time, and e2e against what the emulators were configured to take.
      await new Promise((r) => setTimeout(r, 1000)); // the last turns are written as the calls end
      const turns = await storedTurns(url);
      Object.assign(report, { turns: turnFigures(turns, o.emulated), e2eMedianMs: +median(turns.map((t) => t.latencies.e2e).filter((v): v is number => v !== undefined)).toFixed(1) });
    }
    if (p) report.flushLimitWarnings = { emulators: p.emulatorWarnings(), serverLog: countInFile(p.serverLog, FLUSH_LIMIT_WARNING) };
    if (p?.profileDir) {
      // The profile is written as the server exits: stop it and wait.
      await stop(children[children.length - 1]);
      Object.assign(report, { profileTopSelfTime: profileTop(p.profileDir) });
    }
    return report;
  } finally {
    for (const ch of children.reverse()) await stop(ch);
  }
}

/**
 * How the calls were spread over the media workers (WORKERS > 1), from
 * aybiza_worker_calls_active{worker} in a /metrics sample taken with every
 * call up; null with one worker (no such series).
 */
export function workerSpread(metrics: string): { calls: number[]; maxDeviationPct: number } | null {
  const calls: number[] = [];
  for (const m of metrics.matchAll(/^aybiza_worker_calls_active\{worker="(\d+)"\} (\d+)$/gm)) calls[Number(m[1])] = Number(m[2]);
  if (calls.length === 0) return null;
  const filled = Array.from(calls, (n) => n ?? 0);
  const mean = filled.reduce((a, b) => a + b, 0) / filled.length;
  const maxDeviationPct = mean > 0 ? Math.max(...filled.map((n) => Math.abs(n - mean))) / mean * 100 : 0;
  return { calls: filled, maxDeviationPct: +maxDeviationPct.toFixed(1) };
}

/** The server's top 15 self-time functions from its --cpu-prof output, printed. */
function profileTop(profileDir: string): ReturnType<typeof topSelfTime> | null {
  const profile = readMainThreadProfile(profileDir);
  if (!profile) {
    process.stderr.write(`load: no CPU profile found in ${profileDir}\n`);
    return null;
  }
  const top = topSelfTime(profile, 15);
  process.stderr.write(`load: top 15 self-time functions of the server (whole run, ${profileDir}):\n${formatSelfTime(top)}\n`);
  return top;
}

function turnFigures(all: TurnRow[], emulated: Emulated): Record<string, unknown> {
  const turns = all.map((t) => t.latencies).filter((l) => l.e2e !== undefined && l.server !== undefined);
  const configured = (l: TurnRow['latencies']) =>
    STT_ENDPOINTING_MS + emulated.sttFinalMs + emulated.llmTtftMs + (l.first_sentence ?? 0) + emulated.ttsTtfbMs + (l.server ?? 0);
  return {
    count: turns.length,
    configuredMs: { sttEndpointing: STT_ENDPOINTING_MS, sttFinal: emulated.sttFinalMs, llmTtft: emulated.llmTtftMs, ttsTtfb: emulated.ttsTtfbMs },
    serverMs: spread(turns.map((l) => l.server!)),
    e2eMinusConfiguredMs: spread(turns.map((l) => l.e2e! - configured(l))),
    stageMinusConfiguredMs: {
      eou: spread(turns.filter((l) => l.eou !== undefined).map((l) => l.eou! - STT_ENDPOINTING_MS - emulated.sttFinalMs)),
      llm_ttft: spread(turns.filter((l) => l.llm_ttft !== undefined).map((l) => l.llm_ttft! - emulated.llmTtftMs)),
      tts_ttfb: spread(turns.filter((l) => l.tts_ttfb !== undefined).map((l) => l.tts_ttfb! - emulated.ttsTtfbMs)),
    },
  };
}

/** Resolves for everyone once `n` have arrived (the measured windows of concurrent measurements start together). */
function barrier(n: number, timeoutMs: number): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => (release = r));
  return () => {
    if (++arrived === n) release();
    return Promise.race([all, new Promise<void>((_, reject) => setTimeout(() => reject(new Error('load: the other measurement never reached its window')), timeoutMs).unref())]);
  };
}

/**
 * Two measurements at the same time, windows aligned. When one fails the
 * other is not left waiting at the barrier with its processes running (they
 * went on using the machine after the load had exited): it fails too, both
 * stop their processes, and the first error is thrown.
 */
export async function together<A, B>(a: (sync: () => Promise<void>) => Promise<A>, b: (sync: () => Promise<void>) => Promise<B>): Promise<[A, B]> {
  const wait = barrier(2, 180_000);
  let fail!: (err: unknown) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const sync = () => Promise.race([wait(), failed]);
  const settled = await Promise.allSettled([a(sync).catch((err) => (fail(err), Promise.reject(err))), b(sync).catch((err) => (fail(err), Promise.reject(err)))]);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return [(settled[0] as PromiseFulfilledResult<A>).value, (settled[1] as PromiseFulfilledResult<B>).value];
}

/** Our server recording every call and a copy without recording, measured at the same time (--baseline unrecorded). */
async function measureRecordedPair(o: Options): Promise<{ ours: OurReport; plain: OurReport }> {
  const [ours, plain] = await together((sync) => measureOurs(process.env.LOAD_AA === '1' ? { ...o, record: '' } : o, sync), (sync) => measureOurs({ ...o, record: '', cli: process.env.LOAD_BASELINE_CLI || '' }, sync));
  return { ours, plain };
}

type NaiveReport = CallerFigures & { framesSentByServer: number; framesReceivedByCallers: number; droppedFrames: number };

/** One measurement of the naive baseline (bench/naive/) as its own process, same callers, ramp, seconds and CPU accounting. */
async function measureNaive(o: Options, windowStart?: () => Promise<void>): Promise<NaiveReport> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, NAIVE], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const { naiveUrl } = await firstJsonLine(child, (x) => typeof x.naiveUrl === 'string', 'naive server');
    const url = String(naiveUrl);
    const target: Target = { url, publicUrl: url, pid: child.pid!, to: o.to, token: o.token };
    const { callers, figures } = await driveCallers(target, o.calls, o.seconds, o.warmup, windowStart);
    const received = await hangupAll(callers);
    await new Promise((r) => setTimeout(r, 1500));
    const { framesSent } = (await (await fetch(`${url}/stats`)).json()) as { framesSent: number };
    return { ...figures, framesSentByServer: framesSent, framesReceivedByCallers: received, droppedFrames: framesSent - received };
  } finally {
    await stop(child);
  }
}

function ourFigures(r: OurReport): OurFigures {
  const dropped = typeof r.droppedFrames === 'number' ? r.droppedFrames : NaN;
  return {
    ...r, droppedFrames: dropped, flushLimitWarnings: r.flushLimitWarnings.emulators + r.flushLimitWarnings.serverLog,
    e2eMedianMs: typeof r.e2eMedianMs === 'number' ? r.e2eMedianMs : NaN,
  };
}

/** Each process holds a few sockets per call (callers: ~2; server: stream, STT, TTS, LLM). */
function checkFileLimit(calls: number): void {
  const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  const limit = m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
  if (limit < calls * 8) process.stderr.write(`load: open-file limit ${limit} is low for ${calls} calls (raise it: ulimit -n ${calls * 8})\n`);
}

function recordArg(v: unknown): Options['record'] {
  if (v === undefined) return '';
  if (v === 'dual' || v === 'mixed') return v;
  throw new Error('--record must be dual or mixed');
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['profile']);
  setLogSink((line) => process.stderr.write(line + '\n'));
  const baseline = a.baseline === undefined ? 'on' : String(a.baseline);
  if (!['on', 'off', 'beside', 'unrecorded'].includes(baseline)) throw new Error('--baseline must be on, off, beside or unrecorded');
  const url = a.url ? String(a.url) : '';
  const emulator = emulatorSettings(process.env);
  const o: Options = {
    calls: numberArg(a.calls, 'calls', 50, 1, 5000),
    seconds: numberArg(a.seconds, 'seconds', 30, 5, 3600),
    warmup: numberArg(a.warmup, 'warmup', 0, 0, 600),
    token: process.env.TWILIO_AUTH_TOKEN ?? 'load-test-token',
    to: String(a.to ?? DEMO_NUMBER),
    url,
    publicUrl: a['public-url'] ? String(a['public-url']) : url,
    profile: a.profile === true,
    stt: a.stt === undefined ? '' : String(a.stt),
    workers: a.workers === undefined ? null : numberArg(a.workers, 'workers', 1, 1, 256),
    record: recordArg(a.record),
    emulated: { sttFinalMs: emulator.sttFinalDelayMs, llmTtftMs: emulator.llmTtftMs, ttsTtfbMs: emulator.ttsFirstByteMs },
  };
  if (baseline === 'unrecorded' && (!o.record || url)) throw new Error('--baseline unrecorded needs --record and no --url (it starts both servers)');
  if (!url) process.stderr.write(`load: ${describeEmulatorSettings(emulator)}\n`);
  const runs = numberArg(a.runs, 'runs', 1, 1, 100);
  checkFileLimit(o.calls);
  const results: { ours: OurReport; naive: NaiveReport | null; unrecorded?: OurReport }[] = [];
  const columns: [string, string] = baseline === 'unrecorded' ? ['recording', 'unrecorded'] : ['aybiza', 'naive'];
  const tables: Row[][] = [];
  // With --url the emulators (if any) are not ours: their profile is unknown here.
  const profileLabel = (url ? 'emulator profile: not started by load (--url)' : `emulator profile ${emulator.profile}`) + (o.stt ? `, stt ${o.stt}` : '') + (o.record ? `, recording ${o.record}` : '');
  for (let i = 1; i <= runs; i++) {
    if (baseline === 'unrecorded') {
      const { ours, plain } = await measureRecordedPair(o);
      results.push({ ours, naive: null, unrecorded: plain });
      const rows = comparisonRows(ourFigures(ours), ourFigures(plain));
      tables.push(rows);
      process.stderr.write('\n' + formatRunTable(`load run ${i}/${runs}: ${o.calls} calls on each server at the same time, ${o.seconds} s after ${o.warmup} s of warm-up, ramp ${ours.rampMs} ms, ${profileLabel} (left) and none (right)`, rows, columns) + '\n');
      continue;
    }
    let ours: OurReport;
    let naive: NaiveReport | null = null;
    if (baseline === 'beside') {
      // Both at the same time, windows aligned: the ratio does not carry the machine's drift between runs.
      [ours, naive] = await together((sync) => measureOurs(o, sync), (sync) => measureNaive(o, sync));
    } else {
      // Alternated (ours first in odd runs, the baseline first in even ones) so
      // neither side always gets the machine as the other one left it.
      const naiveFirst = baseline === 'on' && i % 2 === 0;
      const early = naiveFirst ? await measureNaive(o) : null;
      ours = await measureOurs(o);
      naive = baseline === 'on' ? (early ?? (await measureNaive(o))) : null;
    }
    results.push({ ours, naive });
    const rows = comparisonRows(ourFigures(ours), naive as SideFigures | null);
    tables.push(rows);
    process.stderr.write('\n' + formatRunTable(`load run ${i}/${runs}: ${o.calls} calls, ${o.seconds} s after ${o.warmup} s of warm-up, ramp ${ours.rampMs} ms, ${profileLabel}`, rows) + '\n');
  }
  if (runs > 1) process.stderr.write(formatSpreadTable(`load: spread over ${runs} runs (min–max), ${profileLabel}`, tables, columns) + '\n');
  const report = {
    calls: o.calls, seconds: o.seconds, warmup: o.warmup, baseline, stt: o.stt || null, record: o.record || null, workers: o.workers,
    // The emulators' profile and values (null with --url: not started here).
    emulatorProfile: url ? null : emulator.profile, emulator: url ? null : { ...emulator, phrases: undefined },
    runs: results, spread: runs > 1 ? spreadOf(tables) : undefined,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  process.exit(0);
}
