// Replays a network trace (bench/netsim.ts) through our jitter buffer and
// through a fixed 60 ms playout buffer, and judges the pair. Shared by the
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
  };
}

/** Baseline: frame k plays at firstArrival + 60 ms + its timestamp offset; later arrivals are late. */
export function runFixed(trace: TracePacket[], delayMs = 60): Result {
  const first = trace.filter((p) => !p.lost).reduce((a, b) => (b.arrivalMs < a.arrivalMs ? b : a));
  const delays: number[] = [];
  let late = 0;
  let lost = 0;
  for (const p of trace) {
    if (p.lost) {
      lost++;
      continue;
    }
    const slot = first.arrivalMs + delayMs + (p.frame - first.frame) * 20;
    if (p.arrivalMs > slot) late++;
    else delays.push(slot - p.arrivalMs);
  }
  delays.sort((a, b) => a - b);
  const arrived = trace.length - lost;
  return {
    late,
    lateLoss: (100 * late) / arrived,
    lost: (100 * lost) / trace.length,
    concealed: (100 * (late + lost)) / trace.length,
    meanDelay: delays.reduce((a, b) => a + b, 0) / Math.max(1, delays.length),
    p95Delay: delays[Math.ceil(0.95 * delays.length) - 1] ?? NaN,
    stretched: 0,
    compressed: 0,
    endExcess: NaN,
    driftPpm: NaN,
  };
}

/**
 * What any buffer played by the same 20 ms pop clock can reach: a frame is
 * taken at a pop, so its packet is late if it arrives after that pop, and it
 * plays no earlier. The deadlines of a constant-delay buffer on that clock
 * (sender's clock rate `ppm` known) fall on the pops; this scans every such
 * delay, chosen in hindsight, and returns the first that passes `verdict`
 * against `fixed`, or null: then no constant delay on this clock passes.
 */
export function bestOnClock(trace: TracePacket[], fixed: Result, ppm: number): Result | null {
  const arrived = trace.filter((p) => !p.lost);
  const first = arrived.reduce((a, b) => (b.arrivalMs < a.arrivalMs ? b : a));
  const pop0 = first.arrivalMs + POP_PHASE_MS;
  for (let c = 0; c <= 400; c++) {
    let late = 0;
    let sum = 0;
    for (const p of arrived) {
      const due = first.arrivalMs + 20 * (p.frame - first.frame) * (1 - ppm * 1e-6) + c;
      const pop = pop0 + 20 * Math.ceil((due - pop0) / 20 - 1e-9);
      if (p.arrivalMs > pop) late++;
      else sum += pop - p.arrivalMs;
    }
    const r: Result = { ...fixed, late, lateLoss: (100 * late) / arrived.length, meanDelay: sum / Math.max(1, arrived.length - late), p95Delay: NaN };
    if (verdict(r, fixed, arrived.length).pass) return r;
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
