// Frame-level scoring of VADs on the corpus, and the WebRTC VAD baseline
// (@echogarden/fvad-wasm) driven the way a Node user would: copy the frame
// into the WASM heap, call fvad_process.
import fvadModule from '@echogarden/fvad-wasm';
import { ulawDecode } from '../../src/media/g711.js';
import { Vad } from '../../src/media/vad.js';
import { FRAME, type Item } from './corpus.js';

export interface Counts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface Scores {
  f1: number;
  precision: number;
  recall: number;
  /** F1 of answering "speech" for every frame: the floor any VAD must clear. */
  alwaysSpeechF1: number;
  speechShare: number;
}

export function scores(c: Counts): Scores {
  const precision = c.tp / Math.max(1, c.tp + c.fp);
  const recall = c.tp / Math.max(1, c.tp + c.fn);
  const positives = c.tp + c.fn;
  const total = c.tp + c.fp + c.fn + c.tn;
  return {
    f1: (2 * precision * recall) / Math.max(1e-9, precision + recall),
    precision,
    recall,
    alwaysSpeechF1: (2 * positives) / Math.max(1, positives + total),
    speechShare: positives / Math.max(1, total),
  };
}

/** A fresh per-call classifier: one 20 ms μ-law frame in, a speech flag out. */
export type Classifier = { classify(frame: Uint8Array): boolean; close(): void };

export function count(item: Item, clf: Classifier, into: Counts): void {
  const frames = Math.min(item.labels.length, Math.floor(item.ulaw.length / FRAME));
  for (let f = 0; f < frames; f++) {
    const said = clf.classify(item.ulaw.subarray(f * FRAME, (f + 1) * FRAME));
    const truth = item.labels[f] === 1;
    if (said && truth) into.tp++;
    else if (said) into.fp++;
    else if (truth) into.fn++;
    else into.tn++;
  }
  clf.close();
}

/** A condition's name: 'clean' or '<noise> <snr> dB'. */
export function condition(item: Item): string {
  return item.noise === 'none' ? 'clean' : `${item.noise} ${item.snr} dB`;
}

/** Counts per condition (noise type × SNR) for one VAD. */
export function scoreByCondition(items: Item[], make: () => Classifier): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const item of items) {
    const c = out.get(condition(item)) ?? { tp: 0, fp: 0, fn: 0, tn: 0 };
    count(item, make(), c);
    out.set(condition(item), c);
  }
  return out;
}

/**
 * One number for a VAD over the conditions: mean F1 with each SNR's weight
 * shared by its noise types. Clean and 20 dB weigh most because most calls
 * are there: clean 0.25, 20 dB 0.25, 10 dB 0.25, 5 dB 0.15, 0 dB 0.10.
 */
export const SNR_WEIGHTS = new Map<number, number>([[Infinity, 0.25], [20, 0.25], [10, 0.25], [5, 0.15], [0, 0.1]]);

export function weightedScore(items: Item[], f1Of: (cond: string) => number): number {
  const conds = new Map<string, number>();
  for (const it of items) conds.set(condition(it), it.snr);
  const perSnr = new Map<number, number>();
  for (const snr of conds.values()) perSnr.set(snr, (perSnr.get(snr) ?? 0) + 1);
  let sum = 0, weights = 0;
  for (const [cond, snr] of conds) {
    const w = (SNR_WEIGHTS.get(snr) ?? 0) / (perSnr.get(snr) ?? 1);
    sum += w * f1Of(cond);
    weights += w;
  }
  return sum / weights;
}

export function ours(): Classifier {
  const vad = new Vad();
  return { classify: (frame) => vad.process(frame).speech, close: () => vad.close() };
}

interface FvadWasm {
  _fvad_new(): number;
  _fvad_free(h: number): void;
  _fvad_set_mode(h: number, mode: number): number;
  _fvad_set_sample_rate(h: number, rate: number): number;
  _fvad_process(h: number, ptr: number, n: number): number;
  _malloc(n: number): number;
  _free(p: number): void;
  HEAP16: Int16Array;
}

let wasm: FvadWasm | null = null;
export async function loadFvad(): Promise<void> {
  wasm ??= (await (fvadModule as unknown as () => Promise<FvadWasm>)()) as FvadWasm;
}

/** WebRTC VAD in one aggressiveness mode (0–3); takes PCM16 frames. */
export class Fvad {
  private readonly m: FvadWasm;
  private readonly handle: number;
  private readonly ptr: number;

  constructor(mode: number) {
    if (!wasm) throw new Error('call loadFvad() first');
    this.m = wasm;
    this.handle = this.m._fvad_new();
    this.m._fvad_set_sample_rate(this.handle, 8000);
    this.m._fvad_set_mode(this.handle, mode);
    this.ptr = this.m._malloc(FRAME * 2);
  }

  process(pcm: Int16Array): boolean {
    this.m.HEAP16.set(pcm, this.ptr >> 1);
    return this.m._fvad_process(this.handle, this.ptr, pcm.length) === 1;
  }

  close(): void {
    this.m._free(this.ptr);
    this.m._fvad_free(this.handle);
  }
}

export function fvad(mode: number): Classifier {
  const v = new Fvad(mode);
  return { classify: (frame) => v.process(ulawDecode(frame)), close: () => v.close() };
}
