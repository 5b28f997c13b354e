// `npm run load -- --calls N --seconds S [--url URL --public-url URL --to NUMBER]`
// N concurrent simulated Twilio calls with a speech/silence pattern. Without
// --url it starts the provider emulators (at lower CPU priority) and the
// server as their own processes (so only the server's CPU is charged to the
// calls) and reports:
// server CPU-seconds per call-second (→ calls per core), the outbound
// inter-frame gap p50/p99/max as the callers measure it inside the agent's
// speech, late/dropped frames, RSS per call, and turn latency percentiles.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { TwilioCaller } from '../twilio/caller.js';
import { synthesize } from '../providers/emulators/voice.js';
import { DEMO_NUMBER } from '../store/seed.js';
import { parseArgs, numberArg } from './args.js';
import { setLogSink } from '../log.js';
import { SERVER_NODE_FLAGS } from '../server/node-flags.js';
import { firstJsonLine } from './child.js';
import { formatSelfTime, readMainThreadProfile, topSelfTime } from './profile.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'cli.js');
const ADMIN_KEY = 'load-admin-key';
// The provider delays the load's emulators are configured with (the same
// variables as `aybiza emulators`), so each turn can be compared with them.
const STT_ENDPOINTING_MS = 300; // the demo agent's STT setting (the default)

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
  return { p50: +pct(xs, 0.5).toFixed(1), p99: +pct(xs, 0.99).toFixed(1), max: +Math.max(...xs).toFixed(1) };
}
const CLK_TCK = 100;

function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(parts[11]) + Number(parts[12])) / CLK_TCK; // utime + stime
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function gapSpread(xs: number[]): { count: number; p50: number; p99: number; max: number } {
  return { count: xs.length, p50: +pct(xs, 0.5).toFixed(2), p99: +pct(xs, 0.99).toFixed(2), max: xs.length ? +Math.max(...xs).toFixed(2) : NaN };
}

function pct(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
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

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['profile']);
  setLogSink((line) => process.stderr.write(line + '\n'));
  const calls = numberArg(a.calls, 'calls', 50, 1, 5000);
  const seconds = numberArg(a.seconds, 'seconds', 30, 5, 3600);
  const token = process.env.TWILIO_AUTH_TOKEN ?? 'load-test-token';
  const emulated = {
    sttFinalMs: numberArg(process.env.EMULATOR_STT_FINAL_DELAY_MS, 'EMULATOR_STT_FINAL_DELAY_MS', 250, 0, 60_000),
    llmTtftMs: numberArg(process.env.EMULATOR_LLM_TTFT_MS, 'EMULATOR_LLM_TTFT_MS', 480, 0, 60_000),
    ttsTtfbMs: numberArg(process.env.EMULATOR_TTS_TTFB_MS, 'EMULATOR_TTS_TTFB_MS', 90, 0, 60_000),
  };
  const children: ChildProcess[] = [];
  let url = a.url ? String(a.url) : '';
  let publicUrl = a['public-url'] ? String(a['public-url']) : url;
  let serverPid = 0;
  let serverChild: ChildProcess | null = null;
  let profileDir = '';
  try {
    if (!url) {
      const emu = spawn(process.execPath, [CLI, 'emulators'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env, LOG_LEVEL: 'warn', EMULATOR_STT_FINAL_DELAY_MS: String(emulated.sttFinalMs),
          EMULATOR_LLM_TTFT_MS: String(emulated.llmTtftMs), EMULATOR_TTS_TTFB_MS: String(emulated.ttsTtfbMs),
        },
      });
      children.push(emu);
      // The emulators stand in for remote providers: on a real node they do not
      // compete with the server for its cores, so they yield to it here.
      try {
        os.setPriority(emu.pid!, 10);
      } catch {
        /* not permitted: measure without */
      }
      const urls = await firstJsonLine(emu, (o) => typeof o.deepgramUrl === 'string', 'emulators');
      const port = 20000 + Math.floor(Math.random() * 20000);
      url = publicUrl = `http://127.0.0.1:${port}`;
      // LOAD_SERVER_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      const nodeArgs = process.env.LOAD_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-load-'));
      // --profile: a V8 CPU profile of the server's whole life, written when it exits.
      if (a.profile) {
        profileDir = path.join(dataDir, 'profile');
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
      }
      // The server's log goes to a file: a pipe nobody reads would fill and block its writes.
      const logFd = fs.openSync(path.join(dataDir, 'server.log'), 'a');
      const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...nodeArgs, CLI, 'serve'], {
        stdio: ['ignore', logFd, logFd],
        env: {
          ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: url, SIP_PORT: '0', LOG_LEVEL: 'warn',
          DATA_DIR: dataDir, TWILIO_AUTH_TOKEN: token, ADMIN_API_KEY: ADMIN_KEY,
          DEEPGRAM_URL: String(urls.deepgramUrl), DEEPGRAM_API_KEY: 'load', BEDROCK_ENDPOINT: String(urls.bedrockUrl),
          AWS_ACCESS_KEY_ID: 'load', AWS_SECRET_ACCESS_KEY: 'load', AWS_REGION: 'us-east-1', MAX_CONCURRENT_CALLS: String(calls * 2),
        },
      });
      children.push(server);
      serverChild = server;
      serverPid = server.pid!;
      process.stderr.write(`load: server log in ${path.join(dataDir, 'server.log')}\n`);
      const ready = Date.now();
      while (Date.now() - ready < 60_000) {
        try {
          if ((await fetch(`${url}/readyz`)).ok) break;
        } catch {
          /* starting */
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const speech = synthesize('I would like to book a table for two people tomorrow evening please.');
    if (serverPid) await fetch(`${url}/healthz`);
    const baseRss = serverPid ? rssBytes(serverPid) : 0;
    const callers: TwilioCaller[] = [];
    // Ramp up over ~3 s so 200 webhooks do not arrive in one millisecond.
    const rampMs = Math.min(3000, calls * 15);
    const dialing: Promise<void>[] = [];
    for (let i = 0; i < calls; i++) {
      const c = new TwilioCaller({ baseUrl: url, publicUrl, authToken: token, to: String(a.to ?? DEMO_NUMBER), manualClock: true, skipAnalysis: true });
      callers.push(c);
      dialing.push(new Promise<void>((r) => setTimeout(r, (i * rampMs) / calls)).then(() => c.dial().then(() => undefined)));
    }
    // One clock drives every caller's 20 ms frames; each caller speaks every ~8 s.
    // Real calls are not phase-aligned: the callers are spread over four 5 ms
    // phases, so the server sees a steady stream rather than every call's
    // frame in the same millisecond.
    const PHASES = 4;
    const t0 = performance.now();
    let slot = 0;
    let running = true;
    const clockLoop = () => {
      if (!running) return;
      slot++;
      const phase = slot % PHASES;
      const frameSlot = Math.floor(slot / PHASES);
      for (let i = phase; i < callers.length; i += PHASES) {
        const c = callers[i];
        if (c.isClosed) continue;
        if ((frameSlot + i * 37) % 400 === 0) c.speak(speech);
        c.sendNextFrame();
      }
      setTimeout(clockLoop, Math.max(0, t0 + (slot + 1) * (20 / PHASES) - performance.now()));
    };
    const results = await Promise.allSettled(dialing);
    const failedDials = results.filter((r) => r.status === 'rejected').length;
    clockLoop();
    // The callers' own event-loop delay: their timestamps are taken on it, so
    // it bounds how much of a measured gap is the measurement's own.
    const callerLoop = monitorEventLoopDelay({ resolution: 1 });
    callerLoop.enable();
    const cpu0 = serverPid ? cpuSeconds(serverPid) : 0;
    const w0 = performance.now();
    const gapStart = callers.map((c) => c.gaps.length);
    const inStart = callers.map((c) => c.inSegmentGaps.length);
    const betweenStart = callers.map((c) => c.betweenSegmentGaps.length);
    let peakRss = baseRss;
    while (performance.now() - w0 < seconds * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      if (serverPid) peakRss = Math.max(peakRss, rssBytes(serverPid));
    }
    const cpu = serverPid ? cpuSeconds(serverPid) - cpu0 : NaN;
    const wall = (performance.now() - w0) / 1000;
    running = false;
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const connected = callers.filter((c) => c.stats.frames > 0).length;
    // Gaps inside the agent's speech; longer ones are pauses between turns.
    const gaps = callers.flatMap((c, i) => c.gaps.slice(gapStart[i])).filter((g) => g < 500);
    const late = gaps.filter((g) => g > 40).length;
    const partial = callers.reduce((n, c) => n + c.stats.partial, 0);
    const frames = callers.reduce((n, c) => n + c.stats.frames, 0);
    const deferred = Number(/aybiza_playout_deferred_frames_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const lateTicks = Number(/aybiza_pacing_late_ticks_total (\d+)/.exec(metrics)?.[1] ?? 0);
    const loop = (name: string) => Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) * 1000;
    const cpuPerCallSecond = cpu / (connected * wall);
    const report = {
      calls, connected, failedDials, seconds: +wall.toFixed(1),
      serverCpuSeconds: +cpu.toFixed(2),
      cpuSecondsPerCallSecond: +cpuPerCallSecond.toFixed(5),
      callsPerCore: Math.floor(1 / cpuPerCallSecond),
      framesReceived: frames,
      outboundGapMs: { p50: +pct(gaps, 0.5).toFixed(2), p99: +pct(gaps, 0.99).toFixed(2), max: +Math.max(...gaps).toFixed(2) },
      // Split by the server's end-of-segment marks: a gap inside a spoken
      // segment is a hole the caller hears; one across a segment end is a
      // pause between sentences or turns (not filtered by length).
      inSegmentGapMs: gapSpread(callers.flatMap((c, i) => c.inSegmentGaps.slice(inStart[i]))),
      betweenSegmentGapMs: gapSpread(callers.flatMap((c, i) => c.betweenSegmentGaps.slice(betweenStart[i]))),
      lateFrames: late, partialFrames: partial, deferredFrames: deferred, pacingLateTicks: lateTicks,
      serverEventLoopDelayMs: { p50: +loop('p50').toFixed(1), p99: +loop('p99').toFixed(1), max: +loop('max').toFixed(1) },
      callerEventLoopDelayMs: {
        p50: +(callerLoop.percentile(50) / 1e6).toFixed(1), p99: +(callerLoop.percentile(99) / 1e6).toFixed(1), max: +(callerLoop.max / 1e6).toFixed(1),
      },
      serverRssMiB: serverPid ? { idle: Math.round(baseRss / 1048576), peak: Math.round(peakRss / 1048576) } : null,
      rssPerCallKiB: serverPid ? Math.max(0, Math.round((peakRss - baseRss) / connected / 1024)) : null,
      turnLatencyMs: Object.fromEntries(['eou', 'llm_ttft', 'tts_ttfb', 'e2e', 'server'].map((s) => [s, histogramQuantiles(metrics, s)])),
    };
    // Every frame the server sent must have reached its caller: after the
    // hang-ups (callers keep reading for a second after their `stop`), the
    // server's count of frames sent equals the frames the callers received.
    await Promise.allSettled(callers.map((c) => (c.isClosed ? undefined : c.hangup(1000))));
    if (serverPid) {
      await new Promise((r) => setTimeout(r, 1500));
      const after = await (await fetch(`${url}/metrics`)).text();
      const sent = Number(/^aybiza_media_frames_total\{(?=[^}]*transport="twilio")(?=[^}]*direction="out")[^}]*\} (\d+)/m.exec(after)?.[1] ?? NaN);
      const received = callers.reduce((n, c) => n + c.stats.frames, 0);
      Object.assign(report, { framesSentByServer: sent, framesReceivedByCallers: received, droppedFrames: sent - received });
    }
    if (serverPid) {
      // Exact per-turn figures (the histograms above are bucketed): our own
      // time, and e2e against what the emulators were configured to take.
      await new Promise((r) => setTimeout(r, 1000)); // the last turns are written as the calls end
      const turns = (await storedTurns(url)).map((t) => t.latencies).filter((l) => l.e2e !== undefined && l.server !== undefined);
      const configured = (l: TurnRow['latencies']) =>
        STT_ENDPOINTING_MS + emulated.sttFinalMs + emulated.llmTtftMs + (l.first_sentence ?? 0) + emulated.ttsTtfbMs + (l.server ?? 0);
      Object.assign(report, {
        turns: {
          count: turns.length,
          configuredMs: { sttEndpointing: STT_ENDPOINTING_MS, sttFinal: emulated.sttFinalMs, llmTtft: emulated.llmTtftMs, ttsTtfb: emulated.ttsTtfbMs },
          serverMs: spread(turns.map((l) => l.server!)),
          e2eMinusConfiguredMs: spread(turns.map((l) => l.e2e! - configured(l))),
          stageMinusConfiguredMs: {
            eou: spread(turns.filter((l) => l.eou !== undefined).map((l) => l.eou! - STT_ENDPOINTING_MS - emulated.sttFinalMs)),
            llm_ttft: spread(turns.filter((l) => l.llm_ttft !== undefined).map((l) => l.llm_ttft! - emulated.llmTtftMs)),
            tts_ttfb: spread(turns.filter((l) => l.tts_ttfb !== undefined).map((l) => l.tts_ttfb! - emulated.ttsTtfbMs)),
          },
        },
      });
    }
    if (profileDir && serverChild) {
      // The profile is written as the server exits: stop it and wait.
      const exited = new Promise((r) => serverChild!.once('exit', r));
      serverChild.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
      const profile = readMainThreadProfile(profileDir);
      if (profile) {
        const top = topSelfTime(profile, 15);
        Object.assign(report, { profileTopSelfTime: top });
        process.stderr.write(`load: top 15 self-time functions of the server (whole run, ${profileDir}):\n${formatSelfTime(top)}\n`);
      } else {
        process.stderr.write(`load: no CPU profile found in ${profileDir}\n`);
      }
    }
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } finally {
    for (const ch of children) ch.kill('SIGTERM');
  }
  process.exit(0);
}
