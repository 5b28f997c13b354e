// Seeded network traces for jitter-buffer benchmarks: one 20 ms G.711 packet
// per entry with the sender's RTP fields and the receiver's arrival time.
// Models follow the media reference (§3): Gaussian and Pareto jitter, random
// and Gilbert–Elliott burst loss, single and recurring delay spikes,
// reordering, DTX, clock drift. Two sets: the tuning set (the jitter buffer's
// constants were chosen on it) and a held-back set of other parameters and
// seeds, never looked at while tuning.
import { rng } from './signals.js';

export { rng };

export interface TracePacket {
  seq: number; // RTP sequence number (16-bit, wraps)
  timestamp: number; // RTP timestamp (32-bit, wraps)
  arrivalMs: number; // receiver clock; meaningless when lost
  lost: boolean; // dropped by the network
  frame: number; // index on the sender's 20 ms grid (DTX leaves holes)
  voiced: boolean; // carries speech rather than background silence
}

/** One network model. Every field is optional: the default is a calm path (3 ms Gaussian jitter). */
export interface TraceSpec {
  gaussianMs?: number; // σ of Gaussian jitter
  pareto?: { xmMs: number; alpha: number }; // heavy-tailed jitter instead
  randomLoss?: number; // independent loss probability
  burstLoss?: { goodToBad: number; badToGood: number }; // Gilbert–Elliott
  ppm?: number; // sender clock error (+ = fast)
  spikes?: { everyMs: number; lengthMs: number; heightMs: number; firstMs: number }; // added delay, ramping down
  reorder?: { p: number; extraMs: number }; // a packet held back by extraMs..2·extraMs
  dtx?: boolean; // nothing sent in pauses (after 2 quiet frames)
}

export const TRACES = {
  calm: { gaussianMs: 1 },
  gaussian: { gaussianMs: 10 },
  pareto: { pareto: { xmMs: 5, alpha: 2 } },
  'loss-1%': { gaussianMs: 10, randomLoss: 0.01 },
  'loss-5%': { gaussianMs: 10, randomLoss: 0.05 },
  'loss-10%': { gaussianMs: 10, randomLoss: 0.1 },
  // p(good→bad) 1.67 %, p(bad→good) 30 %: 5 % loss in bursts of ~3.3 frames.
  'burst-loss': { burstLoss: { goodToBad: 0.0167, badToGood: 0.3 } },
  'delay-spike': { spikes: { everyMs: 1e9, lengthMs: 2000, heightMs: 150, firstMs: 20_000 } },
  'jitter-spikes': { gaussianMs: 3, spikes: { everyMs: 7000, lengthMs: 400, heightMs: 120, firstMs: 3000 } },
  reorder: { reorder: { p: 0.03, extraMs: 25 } },
  dtx: { dtx: true },
  'drift+0.05%': { ppm: 500 },
  'drift-0.05%': { ppm: -500 },
} satisfies Record<string, TraceSpec>;

/** Held back: other parameters and seeds (+1000) of the same kinds, for the final check only. */
export const HELD_BACK = {
  'gaussian σ15': { gaussianMs: 15 },
  'pareto α1.5': { pareto: { xmMs: 10, alpha: 1.5 } },
  'loss-1% σ6': { gaussianMs: 6, randomLoss: 0.01 },
  'loss-5% σ10': { gaussianMs: 10, randomLoss: 0.05 },
  'loss-10% σ12': { gaussianMs: 12, randomLoss: 0.1 },
  'loss-5% pareto': { pareto: { xmMs: 4, alpha: 2.5 }, randomLoss: 0.05 },
  'burst-loss 8%': { gaussianMs: 5, burstLoss: { goodToBad: 0.03, badToGood: 0.35 } },
  'jitter-spikes 200ms': { gaussianMs: 4, spikes: { everyMs: 5000, lengthMs: 300, heightMs: 200, firstMs: 2000 } },
  'reorder 6%': { gaussianMs: 2, reorder: { p: 0.06, extraMs: 15 } },
  'dtx + loss 2%': { dtx: true, gaussianMs: 5, randomLoss: 0.02 },
  'drift+0.02%': { ppm: 200, gaussianMs: 5 },
  'drift-0.05% σ8': { ppm: -500, gaussianMs: 8 },
} satisfies Record<string, TraceSpec>;

export type TraceName = keyof typeof TRACES;
export const TRACE_NAMES = Object.keys(TRACES) as TraceName[];
export type HeldBackName = keyof typeof HELD_BACK;
export const HELD_BACK_NAMES = Object.keys(HELD_BACK) as HeldBackName[];

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const BASE_TRANSIT_MS = 40;
// Start near the wrap points so every trace crosses both.
const START_SEQ = 65_000;
const START_TS = 4_294_967_296 - 160 * 2_000;

/** The network model behind a trace name (tuning or held-back set). */
export function specOf(name: string): { spec: TraceSpec; seedOffset: number } {
  if (name in TRACES) return { spec: TRACES[name as TraceName], seedOffset: 0 };
  if (name in HELD_BACK) return { spec: HELD_BACK[name as HeldBackName], seedOffset: 1000 };
  throw new RangeError(`unknown trace ${name}`);
}

function seedOf(name: string, seed: number): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return (seed * 7919 + h) >>> 0;
}

/** Extra delay of a spike at sendMs: full height, then a linear drain over the spike's last half. */
function spikeAt(s: NonNullable<TraceSpec['spikes']>, sendMs: number): number {
  if (sendMs < s.firstMs) return 0;
  const into = (sendMs - s.firstMs) % s.everyMs;
  if (into >= s.lengthMs) return 0;
  const half = s.lengthMs / 2;
  return into < half ? s.heightMs : s.heightMs * (1 - (into - half) / half);
}

/** A trace of `seconds` of 20 ms frames under the named network model (tuning or held-back set). */
export function makeTrace(name: TraceName | HeldBackName, seed = 1, seconds = 60): TracePacket[] {
  const { spec, seedOffset } = specOf(name);
  const rand = rng(seedOf(name, seed + seedOffset));
  const frames = Math.round((seconds * 1000) / 20);
  const out: TracePacket[] = [];
  let bad = false; // Gilbert–Elliott state
  let seq = START_SEQ;
  // Talkspurts of 1-3 s and pauses of 0.5-2 s; DTX sends nothing in a pause
  // after a 2-frame quiet hangover, other traces send quiet frames.
  let spurtLeft = 0;
  let pauseLeft = 0;
  let hangover = 0;
  for (let k = 0; k < frames; k++) {
    if (spurtLeft === 0 && pauseLeft === 0) {
      spurtLeft = 50 + Math.floor(rand() * 100);
      pauseLeft = 25 + Math.floor(rand() * 75);
      hangover = 2;
    }
    const voiced = spurtLeft > 0;
    if (spurtLeft > 0) spurtLeft--;
    else pauseLeft--;
    if (!voiced && spec.dtx) {
      if (hangover === 0) continue;
      hangover--;
    }
    // A fast sender's 20 ms are shorter on our clock.
    const sendMs = k * 20 * (1 - (spec.ppm ?? 0) * 1e-6);
    let jitter = spec.pareto
      ? Math.min(1000, spec.pareto.xmMs / Math.pow(1 - rand(), 1 / spec.pareto.alpha) - spec.pareto.xmMs)
      : gaussian(rand) * (spec.gaussianMs ?? 3);
    if (spec.spikes) jitter += spikeAt(spec.spikes, sendMs);
    if (spec.reorder && rand() < spec.reorder.p) jitter += spec.reorder.extraMs * (1 + rand());
    let lost = false;
    if (spec.burstLoss) {
      bad = bad ? rand() >= spec.burstLoss.badToGood : rand() < spec.burstLoss.goodToBad;
      lost = bad;
    }
    if (spec.randomLoss && rand() < spec.randomLoss) lost = true;
    out.push({
      seq: seq & 0xffff,
      timestamp: (START_TS + k * 160) % 4_294_967_296,
      arrivalMs: sendMs + BASE_TRANSIT_MS + Math.max(-BASE_TRANSIT_MS + 1, jitter),
      lost,
      frame: k,
      voiced,
    });
    seq++;
  }
  return out;
}
