// Seeded network traces for jitter-buffer benchmarks: one 20 ms G.711 packet
// per entry with the sender's RTP fields and the receiver's arrival time.
// Models follow the media reference (§3): Gaussian and Pareto jitter,
// Gilbert–Elliott burst loss, a route change, reordering, DTX, clock drift.
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

export type TraceName = 'calm' | 'gaussian' | 'pareto' | 'burst-loss' | 'delay-spike' | 'reorder' | 'dtx' | 'drift';
export const TRACE_NAMES: TraceName[] = ['calm', 'gaussian', 'pareto', 'burst-loss', 'delay-spike', 'reorder', 'dtx', 'drift'];

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const BASE_TRANSIT_MS = 40;
// Start near the wrap points so every trace crosses both.
const START_SEQ = 65_000;
const START_TS = 4_294_967_296 - 160 * 2_000;

/** A trace of `seconds` of 20 ms frames under the named network model. */
export function makeTrace(name: TraceName, seed = 1, seconds = 60): TracePacket[] {
  const rand = rng(seed * 7919 + name.length);
  const frames = Math.round((seconds * 1000) / 20);
  const out: TracePacket[] = [];
  const ppm = name === 'drift' ? 50 : 0; // sender clock fast by 50 ppm
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
    let voiced = spurtLeft > 0;
    if (spurtLeft > 0) spurtLeft--;
    else pauseLeft--;
    if (!voiced && name === 'dtx') {
      if (hangover === 0) continue;
      hangover--;
    }
    const sendMs = k * 20 * (1 - ppm * 1e-6);
    let jitter: number;
    switch (name) {
      case 'calm': jitter = Math.abs(gaussian(rand)) * 1; break;
      case 'gaussian': jitter = gaussian(rand) * 10; break;
      case 'pareto': jitter = Math.min(1000, 5 / Math.pow(1 - rand(), 1 / 2) - 5); break; // xm 5 ms, α 2
      case 'delay-spike': jitter = gaussian(rand) * 3 + (sendMs >= 20_000 && sendMs < 22_000 ? 150 : 0); break;
      case 'reorder': jitter = gaussian(rand) * 3 + (rand() < 0.03 ? 25 + rand() * 20 : 0); break;
      default: jitter = gaussian(rand) * 3;
    }
    let lost = false;
    if (name === 'burst-loss') {
      // p(good→bad) 1.67 %, p(bad→good) 30 %: 5 % loss in bursts of ~3.3 frames.
      bad = bad ? rand() >= 0.3 : rand() < 0.0167;
      lost = bad;
    }
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
