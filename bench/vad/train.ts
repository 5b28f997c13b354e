// Offline training of the VAD's small MLP on the corpus's train split only:
// `npm run vad:train` extracts the native features frame by frame, fits
// 24→16→8→1 (ReLU, sigmoid) with Adam on cross-entropy, picks the decision
// threshold and hangover that maximise mean F1 over the train SNRs, and
// writes native/vad_model.h (input normalisation folded into layer 1).
// Rebuild the addon afterwards (`npx node-gyp build`).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Vad, VAD_FEATURES } from '../../src/media/vad.js';
import { buildCorpus, FRAME, rng, type Item } from './corpus.js';
import { scores, type Counts } from './score.js';

const H1 = 16;
const H2 = 8;

interface Data {
  x: Float32Array; // frames × VAD_FEATURES
  y: Uint8Array;
  snr: Float64Array;
  item: Uint16Array; // which mixture each frame came from (hangover runs per item)
}

function extract(items: Item[]): Data {
  const total = items.reduce((s, it) => s + Math.min(it.labels.length, it.ulaw.length / FRAME), 0);
  const x = new Float32Array(total * VAD_FEATURES);
  const y = new Uint8Array(total);
  const snr = new Float64Array(total);
  const item = new Uint16Array(total);
  const f = new Float32Array(VAD_FEATURES);
  let row = 0;
  items.forEach((it, k) => {
    const vad = new Vad();
    const frames = Math.min(it.labels.length, it.ulaw.length / FRAME);
    for (let i = 0; i < frames; i++) {
      vad.features(it.ulaw.subarray(i * FRAME, (i + 1) * FRAME), f);
      x.set(f, row * VAD_FEATURES);
      y[row] = it.labels[i];
      snr[row] = it.snr;
      item[row] = k;
      row++;
    }
    vad.close();
  });
  return { x, y, snr, item };
}

class Mlp {
  w1 = new Float64Array(H1 * VAD_FEATURES);
  b1 = new Float64Array(H1);
  w2 = new Float64Array(H2 * H1);
  b2 = new Float64Array(H2);
  w3 = new Float64Array(H2);
  b3 = new Float64Array(1);
  constructor(r: () => number) {
    const init = (w: Float64Array, fanIn: number) => {
      for (let i = 0; i < w.length; i++) w[i] = (r() * 2 - 1) * Math.sqrt(6 / fanIn);
    };
    init(this.w1, VAD_FEATURES);
    init(this.w2, H1);
    init(this.w3, H2);
  }
  params(): Float64Array[] {
    return [this.w1, this.b1, this.w2, this.b2, this.w3, this.b3];
  }
  /** Returns the logit; fills activations for backprop when given. */
  forward(x: Float32Array, off: number, a1: Float64Array, a2: Float64Array): number {
    for (let j = 0; j < H1; j++) {
      let s = this.b1[j];
      for (let i = 0; i < VAD_FEATURES; i++) s += this.w1[j * VAD_FEATURES + i] * x[off + i];
      a1[j] = s > 0 ? s : 0;
    }
    for (let j = 0; j < H2; j++) {
      let s = this.b2[j];
      for (let i = 0; i < H1; i++) s += this.w2[j * H1 + i] * a1[i];
      a2[j] = s > 0 ? s : 0;
    }
    let s = this.b3[0];
    for (let i = 0; i < H2; i++) s += this.w3[i] * a2[i];
    return s;
  }
}

function normalise(d: Data): { mean: Float64Array; std: Float64Array } {
  const n = d.y.length;
  const mean = new Float64Array(VAD_FEATURES);
  const std = new Float64Array(VAD_FEATURES);
  for (let r = 0; r < n; r++) for (let i = 0; i < VAD_FEATURES; i++) mean[i] += d.x[r * VAD_FEATURES + i];
  for (let i = 0; i < VAD_FEATURES; i++) mean[i] /= n;
  for (let r = 0; r < n; r++) for (let i = 0; i < VAD_FEATURES; i++) std[i] += (d.x[r * VAD_FEATURES + i] - mean[i]) ** 2;
  for (let i = 0; i < VAD_FEATURES; i++) std[i] = Math.sqrt(std[i] / n) || 1;
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < VAD_FEATURES; i++) d.x[r * VAD_FEATURES + i] = (d.x[r * VAD_FEATURES + i] - mean[i]) / std[i];
  }
  return { mean, std };
}

function train(d: Data, epochs: number, seed: number): Mlp {
  const r = rng(seed);
  const net = new Mlp(r);
  const params = net.params();
  const grads = params.map((p) => new Float64Array(p.length));
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const [gw1, gb1, gw2, gb2, gw3, gb3] = grads;
  const a1 = new Float64Array(H1), a2 = new Float64Array(H2), d1 = new Float64Array(H1), d2 = new Float64Array(H2);
  const n = d.y.length;
  const order = new Uint32Array(n).map((_, i) => i);
  const BATCH = 128;
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const lr = 0.003 * (1 - epoch / epochs) + 0.0003;
    let loss = 0;
    for (let b = 0; b < n; b += BATCH) {
      for (const g of grads) g.fill(0);
      const end = Math.min(n, b + BATCH);
      for (let k = b; k < end; k++) {
        const row = order[k];
        const off = row * VAD_FEATURES;
        const z = net.forward(d.x, off, a1, a2);
        const p = 1 / (1 + Math.exp(-z));
        const y = d.y[row];
        loss -= y ? Math.log(p + 1e-9) : Math.log(1 - p + 1e-9);
        const dz = p - y;
        gb3[0] += dz;
        for (let i = 0; i < H2; i++) {
          gw3[i] += dz * a2[i];
          d2[i] = a2[i] > 0 ? dz * net.w3[i] : 0;
        }
        d1.fill(0);
        for (let j = 0; j < H2; j++) {
          if (d2[j] === 0) continue;
          gb2[j] += d2[j];
          for (let i = 0; i < H1; i++) {
            gw2[j * H1 + i] += d2[j] * a1[i];
            d1[i] += d2[j] * net.w2[j * H1 + i];
          }
        }
        for (let j = 0; j < H1; j++) {
          if (a1[j] <= 0 || d1[j] === 0) continue;
          gb1[j] += d1[j];
          for (let i = 0; i < VAD_FEATURES; i++) gw1[j * VAD_FEATURES + i] += d1[j] * d.x[off + i];
        }
      }
      step++;
      const scale = 1 / (end - b);
      for (let p = 0; p < params.length; p++) {
        const P = params[p], G = grads[p], M = m[p], V = v[p];
        for (let i = 0; i < P.length; i++) {
          const g = G[i] * scale;
          M[i] = 0.9 * M[i] + 0.1 * g;
          V[i] = 0.999 * V[i] + 0.001 * g * g;
          const mh = M[i] / (1 - 0.9 ** step), vh = V[i] / (1 - 0.999 ** step);
          P[i] -= (lr * mh) / (Math.sqrt(vh) + 1e-8);
        }
      }
    }
    process.stdout.write(`epoch ${epoch + 1}/${epochs}: loss ${(loss / n).toFixed(4)}\n`);
  }
  return net;
}

/** Mean over SNRs of the F1 a threshold and hangover give (as the native code applies them). */
function tune(d: Data, net: Mlp): { threshold: number; hangover: number; f1: number } {
  const a1 = new Float64Array(H1), a2 = new Float64Array(H2);
  const prob = new Float64Array(d.y.length);
  for (let r = 0; r < d.y.length; r++) prob[r] = 1 / (1 + Math.exp(-net.forward(d.x, r * VAD_FEATURES, a1, a2)));
  let best = { threshold: 0.5, hangover: 0, f1: -1 };
  for (let threshold = 0.2; threshold <= 0.8; threshold += 0.025) {
    for (let hangover = 0; hangover <= 6; hangover++) {
      const bySnr = new Map<number, Counts>();
      let left = 0;
      let lastItem = -1;
      for (let r = 0; r < d.y.length; r++) {
        if (d.item[r] !== lastItem) (left = 0), (lastItem = d.item[r]);
        const raw = prob[r] > threshold;
        if (raw) left = hangover;
        else if (left > 0) left--;
        const said = raw || left > 0;
        const c = bySnr.get(d.snr[r]) ?? { tp: 0, fp: 0, fn: 0, tn: 0 };
        const y = d.y[r] === 1;
        if (said && y) c.tp++;
        else if (said) c.fp++;
        else if (y) c.fn++;
        else c.tn++;
        bySnr.set(d.snr[r], c);
      }
      const f1s = [...bySnr.values()].map((c) => scores(c).f1);
      // The acceptance is per SNR, so weigh the worst SNR as much as the mean.
      const f1 = f1s.reduce((s, x) => s + x, 0) / f1s.length + Math.min(...f1s);
      if (f1 > best.f1) best = { threshold, hangover, f1 };
    }
  }
  return best;
}

function emit(net: Mlp, norm: { mean: Float64Array; std: Float64Array }, tuned: { threshold: number; hangover: number }): string {
  // Fold (x - mean) / std into layer 1 so the native code reads raw features.
  const w1 = new Float64Array(net.w1.length);
  const b1 = Float64Array.from(net.b1);
  for (let j = 0; j < H1; j++) {
    for (let i = 0; i < VAD_FEATURES; i++) {
      w1[j * VAD_FEATURES + i] = net.w1[j * VAD_FEATURES + i] / norm.std[i];
      b1[j] -= (net.w1[j * VAD_FEATURES + i] * norm.mean[i]) / norm.std[i];
    }
  }
  const num = (x: number) => (Object.is(x, -0) ? '0' : x.toPrecision(7)) + 'f';
  const rows = (w: Float64Array, cols: number) => {
    const out: string[] = [];
    for (let j = 0; j < w.length / cols; j++) out.push(`    {${Array.from(w.subarray(j * cols, (j + 1) * cols), num).join(', ')}}`);
    return out.join(',\n');
  };
  return `// Generated by bench/vad/train.ts from the corpus's train split: do not edit.
// A 24→16→8→1 MLP (ReLU, sigmoid); input normalisation is folded into layer 1.
#pragma once
namespace aybiza::vad::model {
constexpr int kIn = ${VAD_FEATURES}, kH1 = ${H1}, kH2 = ${H2};
constexpr float kW1[kH1][kIn] = {
${rows(w1, VAD_FEATURES)}};
constexpr float kB1[kH1] = {${Array.from(b1, num).join(', ')}};
constexpr float kW2[kH2][kH1] = {
${rows(net.w2, H1)}};
constexpr float kB2[kH2] = {${Array.from(net.b2, num).join(', ')}};
constexpr float kW3[kH2] = {${Array.from(net.w3, num).join(', ')}};
constexpr float kB3 = ${num(net.b3[0])};
constexpr float kThreshold = ${num(tuned.threshold)};
constexpr int kHangoverFrames = ${tuned.hangover};
}  // namespace aybiza::vad::model
`;
}

const t0 = Date.now();
const items = buildCorpus('train');
const data = extract(items);
process.stdout.write(`train split: ${items.length} mixtures, ${data.y.length} frames, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
const norm = normalise(data);
const net = train(data, Number(process.env.VAD_EPOCHS ?? 12), 42);
const tuned = tune(data, net);
process.stdout.write(`tuned on train: threshold ${tuned.threshold.toFixed(3)}, hangover ${tuned.hangover} frames\n`);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
fs.writeFileSync(path.join(root, 'native', 'vad_model.h'), emit(net, norm, tuned));
process.stdout.write('wrote native/vad_model.h; rebuild with `npx node-gyp build`\n');
