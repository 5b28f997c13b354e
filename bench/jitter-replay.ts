// Replays a network trace (bench/netsim.ts) through our jitter buffer and
// through two fixed 60 ms baselines (the ideal one that plays at any instant,
// and one on the same 20 ms pop clock as ours), and judges a pair. Shared by the
// bench (bench/jitter.ts) and the tests (test/media/jitter-traces.test.ts).
import { JitterBuffer, type JitterBufferOptions } from '../src/media/jitter-buffer.js';
import { ulawEncode } from '../src/media/g711.js';
import type { TracePacket } from './netsim.js';

export interface Result {
  late: number; // frames that arrived after their playout slot
  lateLoss: number; // the same as % of frames that arrived
  lost: number; // % of sent frames the network dropped (as the buffer counted them)
  concealed: number; // % of the trace's frames filled by concealment
  meanDelay: number; // ms from arrival to playout, over played frames
  p95Delay: number;
  stretched: number; // time-scale steps (ours only)
  compressed: number;
  /** Mean of current minus target delay over the trace's last 20 s (ours only), ms. */
  endExcess: number;
  /** The sender clock drift ours estimated at the end, ppm (NaN for the fixed buffer). */
  driftPpm: number;
  /** Share of pops at which ours judged the path heavy-tailed (NaN for the fixed buffer). */
  heavyTailShare: number;
}

/** A 20 ms μ-law frame: two harmonics of 140 Hz while voiced, digital silence otherwise. */
export function payloadFor(p: TracePacket): Uint8Array {
  const pcm = new Int16Array(160);
  if (p.voiced) {
    for (let i = 0; i < 160; i++) {
      const t = (p.frame * 160 + i) / 8000;
      pcm[i] = Math.round(6000 * Math.sin(2 * Math.PI * 140 * t) + 2500 * Math.sin(2 * Math.PI * 420 * t + 1));
    }
  }
  return Uint8Array.from(ulawEncode(pcm));
}

/** The receiver's 20 ms pop clock starts this long after the first arrival (any phase against the packets). */
export const POP_PHASE_MS = 7;

/** Ours: packets pushed as they arrive, pop() every 20 ms on the receiver's clock; figures from stats(). */
export function runOurs(trace: TracePacket[], opts?: JitterBufferOptions): Result {
  const arrivals = trace.filter((p) => !p.lost).sort((a, b) => a.arrivalMs - b.arrivalMs);
  const jb = new JitterBuffer(opts);
  const start = arrivals[0].arrivalMs;
  const last = arrivals[arrivals.length - 1].arrivalMs;
  let i = 0;
  let played = 0;
  let concealedSoFar = 0;
  let excessSum = 0;
  let excessN = 0;
  let pops = 0;
  let heavy = 0;
  // The receiver's 20 ms clock has its own phase against the arrivals.
  for (let now = start + POP_PHASE_MS; now < last + 1000; now += 20) {
    while (i < arrivals.length && arrivals[i].arrivalMs <= now) {
      const p = arrivals[i++];
      jb.push({ seq: p.seq, timestamp: p.timestamp, payload: payloadFor(p), arrivalMs: p.arrivalMs });
    }
    jb.pop(now);
    const s = jb.stats();
    // Concealment after the trace's last packet is not part of the trace.
    if (s.played > played) played = s.played, concealedSoFar = s.concealed;
    pops++;
    if (s.heavyTail) heavy++;
    if (now > last - 20_000 && now <= last) excessSum += s.currentDelayMs - s.targetDelayMs, excessN++;
  }
  const s = jb.stats();
  jb.close();
  return {
    late: s.late,
    lateLoss: (100 * s.late) / arrivals.length,
    lost: (100 * s.lost) / trace.length,
    concealed: (100 * concealedSoFar) / trace.length,
    meanDelay: s.meanDelayMs,
    p95Delay: s.p95DelayMs,
    stretched: s.stretched,
    compressed: s.compressed,
    endExcess: excessSum / Math.max(1, excessN),
    driftPpm: s.driftPpm,
    heavyTailShare: heavy / Math.max(1, pops),
  };
}

/** Ideal baseline: frame k plays at exactly firstArrival + 60 ms + its timestamp offset, at any instant; later arrivals are late. */
export function runFixed(trace: TracePacket[], delayMs = 60): Result {
  return fixedResult(trace.length, replayFixed(trace, (first, p) => first.arrivalMs + delayMs + (p.frame - first.frame) * 20, true));
}

/**
 * A fixed-delay playout buffer on the receiver's 20 ms pop clock, as a media
 * server's fixed buffer plays: frame k is taken at the first pop (same phase
 * as ours, POP_PHASE_MS after the first arrival) at or after firstArrival +
 * delayMs + 20k ms (its sender time at rate `ppm`), and its packet is late if
 * it arrives after that pop. Delay, as for ours: pop time minus arrival.
 */
export function runFixedOnClock(trace: TracePacket[], delayMs = 60, ppm = 0): Result {
  return fixedResult(trace.length, onClock(trace, delayMs, ppm, true));
}

function onClock(trace: TracePacket[], delayMs: number, ppm: number, keep: boolean): Replay {
  return replayFixed(
    trace,
    (first, p) => {
      const pop0 = first.arrivalMs + POP_PHASE_MS;
      const due = first.arrivalMs + 20 * (p.frame - first.frame) * (1 - ppm * 1e-6) + delayMs;
      return pop0 + 20 * Math.ceil((due - pop0) / 20 - 1e-9);
    },
    keep,
  );
}

interface Replay { late: number; lost: number; sum: number; delays: number[] }
/** A fixed buffer playing each packet's frame at playAt: late if it arrives after, else played then. */
function replayFixed(trace: TracePacket[], playAt: (first: TracePacket, p: TracePacket) => number, keep: boolean): Replay {
  const first = trace.filter((p) => !p.lost).reduce((a, b) => (b.arrivalMs < a.arrivalMs ? b : a));
  const r: Replay = { late: 0, lost: 0, sum: 0, delays: [] };
  for (const p of trace) {
    if (p.lost) {
      r.lost++;
      continue;
    }
    const at = playAt(first, p);
    if (p.arrivalMs > at) r.late++;
    else {
      r.sum += at - p.arrivalMs;
      if (keep) r.delays.push(at - p.arrivalMs);
    }
  }
  return r;
}

function fixedResult(sent: number, r: Replay): Result {
  const arrived = sent - r.lost;
  const delays = r.delays.sort((a, b) => a - b);
  return {
    late: r.late,
    lateLoss: (100 * r.late) / arrived,
    lost: (100 * r.lost) / sent,
    concealed: (100 * (r.late + r.lost)) / sent,
    meanDelay: r.sum / Math.max(1, arrived - r.late),
    p95Delay: delays[Math.ceil(0.95 * delays.length) - 1] ?? NaN,
    stretched: 0,
    compressed: 0,
    endExcess: NaN,
    driftPpm: NaN,
    heavyTailShare: NaN,
  };
}

/**
 * What any buffer played by the same 20 ms pop clock can reach: a frame is
 * taken at a pop, so its packet is late if it arrives after that pop, and it
 * plays no earlier. The deadlines of a constant-delay buffer on that clock
 * (sender's clock rate `ppm` known) fall on the pops; this scans every such
 * delay, chosen in hindsight, and returns the first that passes `verdict`
 * against `baseline`, or null: then no constant delay on this clock passes.
 */
export function bestOnClock(trace: TracePacket[], baseline: Result, ppm: number): Result | null {
  for (let c = 0; c <= 400; c++) {
    const { late, lost, sum } = onClock(trace, c, ppm, false);
    const arrived = trace.length - lost;
    const r: Result = { ...baseline, late, lateLoss: (100 * late) / arrived, meanDelay: sum / Math.max(1, arrived - late), p95Delay: NaN };
    if (verdict(r, baseline, arrived).pass) return r;
  }
  return null;
}

// "Equal" late loss: within 0.1 percentage point. Both buffers see the same
// arrived frames, so compare frame counts: percentages computed separately
// would put 0.1 on either side of the line by rounding.
export const TIE_PP = 0.1;

/** The acceptance rule: late loss at most the fixed buffer's + 0.1 pp, and less mean delay where it ties. */
export function verdict(ours: Result, fixed: Result, arrived: number): { pass: boolean; text: string } {
  const diffPp = (100 * (ours.late - fixed.late)) / arrived;
  const tie = Math.abs(diffPp) <= TIE_PP + 1e-9;
  if (!tie && diffPp < 0) return { pass: true, text: 'yes: less late loss' };
  if (!tie) return { pass: false, text: '**no**: more late loss' };
  if (ours.meanDelay < fixed.meanDelay) return { pass: true, text: 'yes: equal late loss, less delay' };
  return { pass: false, text: '**no**: equal late loss, more delay' };
}
