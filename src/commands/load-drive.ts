// The load's simulated callers against one server (ours or the naive
// baseline, the same way for both): N Twilio callers dialed over a ramp, one
// clock sending every caller's 20 ms frames, each caller speaking every ~8 s;
// the server process's CPU (utime + stime from /proc) and RSS over the
// measured window, and what the callers heard in it.
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { TwilioCaller } from '../twilio/caller.js';
import { synthesize } from '../providers/emulators/voice.js';
import { guard } from '../guard.js';
import { gapSpread, median, pct, type GapSpread } from './load-report.js';

export interface Target {
  url: string;
  publicUrl: string;
  /** The server's process id for CPU and RSS; 0 when it runs elsewhere (--url). */
  pid: number;
  to: string;
  token: string;
}

export interface CallerFigures {
  calls: number;
  connected: number;
  failedDials: number;
  rampMs: number;
  seconds: number;
  serverCpuSeconds: number;
  /** The server's CPU seconds in the window by thread group (threadCpu); empty when it runs elsewhere. */
  serverCpuByThread: Record<string, number>;
  /** Seconds of calls up inside the window, summed over the callers (a call that ended counts until it ended). */
  callSeconds: number;
  /** Calls that ended (either side) before the window closed. */
  endedInWindow: number;
  cpuSecondsPerCallSecond: number;
  callsPerCore: number;
  framesReceived: number;
  outboundGapMs: { p50: number; p99: number; max: number };
  /** Split by the server's end-of-segment marks: a gap inside a spoken segment is a hole the caller hears. */
  inSegmentGapMs: GapSpread;
  /** A gap across a segment end (a pause between sentences or turns, any length). */
  betweenSegmentGapMs: GapSpread;
  /** Gaps over 40 ms among all gaps under 500 ms (the figure before the segment split). */
  lateFrames: number;
  /** Gaps over 40 ms inside a spoken segment. */
  inSegmentLateFrames: number;
  partialFrames: number;
  callerEventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Voice-to-voice as the callers heard it (TwilioCaller.voiceToVoice) in the measured window, ms. */
  voiceToVoiceMs: { count: number; p50: number; p99: number; max: number };
  serverRssMiB: { idle: number; peak: number } | null;
  rssPerCallKiB: number | null;
}

const CLK_TCK = 100;

/** utime + stime of a /proc stat line (a process's: all its threads; a task's: that thread), seconds. */
function statCpu(stat: string): number {
  const parts = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(parts[11]) + Number(parts[12])) / CLK_TCK;
}

export function cpuSeconds(pid: number): number {
  return statCpu(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * CPU seconds so far per thread group of a process: `main` (the thread whose
 * id is the pid), each thread named `aybiza-…` by its name (src/thread-name.ts:
 * media workers, embedded database, recording writer), the rest `other` (V8's
 * helpers, libuv's pool). A thread that ended is no longer counted.
 */
export function threadCpu(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const label = tid === String(pid) ? 'main' : name.startsWith('aybiza-') ? name : 'other';
      out[label] = (out[label] ?? 0) + statCpu(stat);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

/** What each thread group used between two threadCpu() readings (never below 0: an ended thread's time leaves the total). */
export function threadCpuBetween(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).sort().map((k) => [k, +Math.max(0, after[k]! - (before[k] ?? 0)).toFixed(2)]));
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Ramp: spread the dials over up to 3 s so hundreds of webhooks do not arrive in one millisecond. */
export function rampMsFor(calls: number): number {
  return Math.min(3000, calls * 15);
}

const CALLER_PHRASE = 'I would like to book a table for two people tomorrow evening please.';

export interface Drive {
  callers: TwilioCaller[];
  figures: CallerFigures;
}

/**
 * Dials `calls` callers, lets them run `warmup` seconds once all have dialed,
 * measures `seconds`, then stops the callers' clock (the calls stay up: hang
 * them up with hangupAll). `atWindowStart` runs just before the window opens
 * (e.g. a /metrics scrape).
 */
export async function driveCallers(t: Target, calls: number, seconds: number, warmup: number, atWindowStart?: () => Promise<void>): Promise<Drive> {
  const speech = synthesize(CALLER_PHRASE);
  const baseRss = t.pid ? rssBytes(t.pid) : 0;
  const callers: TwilioCaller[] = [];
  const rampMs = rampMsFor(calls);
  const dialing: Promise<void>[] = [];
  for (let i = 0; i < calls; i++) {
    const c = new TwilioCaller({ baseUrl: t.url, publicUrl: t.publicUrl, authToken: t.token, to: t.to, manualClock: true, skipAnalysis: true });
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
  let clock: NodeJS.Timeout | null = null;
  const clockLoop = guard('timer', () => {
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
    clock = setTimeout(clockLoop, Math.max(0, t0 + (slot + 1) * (20 / PHASES) - performance.now()));
  });
  const results = await Promise.allSettled(dialing);
  const failedDials = results.filter((r) => r.status === 'rejected').length;
  const firstFailure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (firstFailure) process.stderr.write(`load: ${failedDials} of ${calls} dials failed, first: ${String(firstFailure.reason)}\n`);
  clockLoop();
  if (warmup > 0) await new Promise((r) => setTimeout(r, warmup * 1000));
  // The callers' own event-loop delay: their timestamps are taken on it, so
  // it bounds how much of a measured gap is the measurement's own.
  const callerLoop = monitorEventLoopDelay({ resolution: 1 });
  callerLoop.enable();
  await atWindowStart?.();
  const cpu0 = t.pid ? cpuSeconds(t.pid) : 0;
  const threads0 = t.pid ? threadCpu(t.pid) : {};
  const w0 = performance.now();
  const gapStart = callers.map((c) => c.gaps.length);
  const inStart = callers.map((c) => c.inSegmentGaps.length);
  const betweenStart = callers.map((c) => c.betweenSegmentGaps.length);
  const v2vStart = callers.map((c) => c.voiceToVoice.length);
  let peakRss = baseRss;
  while (performance.now() - w0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    if (t.pid) peakRss = Math.max(peakRss, rssBytes(t.pid));
  }
  const cpu = t.pid ? cpuSeconds(t.pid) - cpu0 : NaN;
  const threads = t.pid ? threadCpuBetween(threads0, threadCpu(t.pid)) : {};
  const w1 = performance.now();
  const wall = (w1 - w0) / 1000;
  running = false;
  if (clock) clearTimeout(clock);
  callerLoop.disable();
  const connected = callers.filter((c) => c.stats.frames > 0).length;
  // Gaps inside the agent's speech; longer ones are pauses between turns.
  const gaps = callers.flatMap((c, i) => c.gaps.slice(gapStart[i])).filter((g) => g < 500);
  const inSegment = callers.flatMap((c, i) => c.inSegmentGaps.slice(inStart[i]));
  const v2v = callers.flatMap((c, i) => c.voiceToVoice.slice(v2vStart[i]));
  // CPU is divided by the time calls were really up in the window: a call the
  // server ended (or that dropped) costs nothing after its end, and counting
  // it for the whole window would flatter the server that ends calls.
  const up = callers.filter((c) => c.stats.frames > 0);
  const callSeconds = up.reduce((s, c) => s + Math.max(0, (c.closedAt && c.closedAt < w1 ? c.closedAt : w1) - w0), 0) / 1000;
  const endedInWindow = up.filter((c) => c.closedAt && c.closedAt < w1).length;
  if (endedInWindow) process.stderr.write(`load: ${endedInWindow} of ${connected} calls ended before the window closed; CPU is divided by the call-seconds they were up\n`);
  const cpuPerCallSecond = callSeconds > 0 ? cpu / callSeconds : NaN;
  const figures: CallerFigures = {
    calls, connected, failedDials, rampMs, seconds: +wall.toFixed(1),
    serverCpuSeconds: +cpu.toFixed(2),
    serverCpuByThread: threads,
    callSeconds: +callSeconds.toFixed(1),
    endedInWindow,
    cpuSecondsPerCallSecond: +cpuPerCallSecond.toFixed(5),
    callsPerCore: Number.isFinite(cpuPerCallSecond) ? Math.floor(1 / cpuPerCallSecond) : NaN,
    framesReceived: callers.reduce((n, c) => n + c.stats.frames, 0),
    outboundGapMs: { p50: +pct(gaps, 0.5).toFixed(2), p99: +pct(gaps, 0.99).toFixed(2), max: gapSpread(gaps).max },
    inSegmentGapMs: gapSpread(inSegment),
    betweenSegmentGapMs: gapSpread(callers.flatMap((c, i) => c.betweenSegmentGaps.slice(betweenStart[i]))),
    lateFrames: gaps.filter((g) => g > 40).length,
    inSegmentLateFrames: inSegment.filter((g) => g > 40).length,
    partialFrames: callers.reduce((n, c) => n + c.stats.partial, 0),
    callerEventLoopDelayMs: {
      p50: +(callerLoop.percentile(50) / 1e6).toFixed(1), p99: +(callerLoop.percentile(99) / 1e6).toFixed(1), max: +(callerLoop.max / 1e6).toFixed(1),
    },
    voiceToVoiceMs: { count: v2v.length, p50: +median(v2v).toFixed(1), p99: +pct(v2v, 0.99).toFixed(1), max: gapSpread(v2v).max },
    serverRssMiB: t.pid ? { idle: Math.round(baseRss / 1048576), peak: Math.round(peakRss / 1048576) } : null,
    rssPerCallKiB: t.pid && connected ? Math.max(0, Math.round((peakRss - baseRss) / connected / 1024)) : null,
  };
  return { callers, figures };
}

/**
 * Hangs every caller up; callers keep reading for a second after their
 * `stop`, so frames already on their way still count as received.
 */
export async function hangupAll(callers: TwilioCaller[]): Promise<number> {
  await Promise.allSettled(callers.map((c) => (c.isClosed ? undefined : c.hangup(1000))));
  return callers.reduce((n, c) => n + c.stats.frames, 0);
}
