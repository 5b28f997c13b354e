// The VAD's frame classifier for training: an MLP with two ReLU hidden layers
// and a sigmoid output, Adam on cross-entropy, input standardisation, and the
// C++ header it is shipped as (native/vad_model.h, normalisation folded into
// layer 1 so the native code reads raw features).
import { rng } from './corpus.js';

export interface Shape {
  inputs: number;
  h1: number;
  h2: number;
}

export class Mlp {
  readonly w1: Float64Array;
  readonly b1: Float64Array;
  readonly w2: Float64Array;
  readonly b2: Float64Array;
  readonly w3: Float64Array;
  readonly b3 = new Float64Array(1);

  constructor(readonly shape: Shape, r?: () => number) {
    const { inputs, h1, h2 } = shape;
    this.w1 = new Float64Array(h1 * inputs);
    this.b1 = new Float64Array(h1);
    this.w2 = new Float64Array(h2 * h1);
    this.b2 = new Float64Array(h2);
    this.w3 = new Float64Array(h2);
    if (!r) return;
    const init = (w: Float64Array, fanIn: number) => {
      for (let i = 0; i < w.length; i++) w[i] = (r() * 2 - 1) * Math.sqrt(6 / fanIn);
    };
    init(this.w1, inputs);
    init(this.w2, h1);
    init(this.w3, h2);
  }

  params(): Float64Array[] {
    return [this.w1, this.b1, this.w2, this.b2, this.w3, this.b3];
  }

  clone(): Mlp {
    const c = new Mlp(this.shape);
    c.params().forEach((p, i) => p.set(this.params()[i]));
    return c;
  }

  /** Returns the logit; fills the hidden activations (for backprop). */
  forward(x: Float32Array, off: number, a1: Float64Array, a2: Float64Array): number {
    const { inputs, h1, h2 } = this.shape;
    for (let j = 0; j < h1; j++) {
      let s = this.b1[j];
      for (let i = 0; i < inputs; i++) s += this.w1[j * inputs + i] * x[off + i];
      a1[j] = s > 0 ? s : 0;
    }
    for (let j = 0; j < h2; j++) {
      let s = this.b2[j];
      for (let i = 0; i < h1; i++) s += this.w2[j * h1 + i] * a1[i];
      a2[j] = s > 0 ? s : 0;
    }
    let s = this.b3[0];
    for (let i = 0; i < h2; i++) s += this.w3[i] * a2[i];
    return s;
  }

  /** Frame probabilities for rows of x (inputs wide). */
  probabilities(x: Float32Array): Float64Array {
    const { inputs, h1, h2 } = this.shape;
    const a1 = new Float64Array(h1), a2 = new Float64Array(h2);
    const rows = x.length / inputs;
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) out[r] = 1 / (1 + Math.exp(-this.forward(x, r * inputs, a1, a2)));
    return out;
  }
}

export interface Norm {
  mean: Float64Array;
  std: Float64Array;
}

/** Standardisation statistics of rows of x. */
export function normOf(x: Float32Array, inputs: number): Norm {
  const n = x.length / inputs;
  const mean = new Float64Array(inputs);
  const std = new Float64Array(inputs);
  for (let r = 0; r < n; r++) for (let i = 0; i < inputs; i++) mean[i] += x[r * inputs + i];
  for (let i = 0; i < inputs; i++) mean[i] /= n;
  for (let r = 0; r < n; r++) for (let i = 0; i < inputs; i++) std[i] += (x[r * inputs + i] - mean[i]) ** 2;
  for (let i = 0; i < inputs; i++) std[i] = Math.sqrt(std[i] / n) || 1;
  return { mean, std };
}

export function standardise(x: Float32Array, norm: Norm): void {
  const inputs = norm.mean.length;
  for (let k = 0; k < x.length; k++) x[k] = (x[k] - norm.mean[k % inputs]) / norm.std[k % inputs];
}

/**
 * Adam on mean cross-entropy, minibatches of 128, a linearly decaying rate;
 * `checkpoint(epoch, net)` sees the weights after every epoch.
 */
export function fit(x: Float32Array, y: Uint8Array, shape: Shape, epochs: number, seed: number, checkpoint: (epoch: number, net: Mlp) => void): void {
  const { inputs, h1, h2 } = shape;
  const r = rng(seed);
  const net = new Mlp(shape, r);
  const params = net.params();
  const grads = params.map((p) => new Float64Array(p.length));
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const [gw1, gb1, gw2, gb2, gw3, gb3] = grads;
  const a1 = new Float64Array(h1), a2 = new Float64Array(h2), d1 = new Float64Array(h1), d2 = new Float64Array(h2);
  const n = y.length;
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
        const off = row * inputs;
        const p = 1 / (1 + Math.exp(-net.forward(x, off, a1, a2)));
        loss -= y[row] ? Math.log(p + 1e-9) : Math.log(1 - p + 1e-9);
        const dz = p - y[row];
        gb3[0] += dz;
        for (let i = 0; i < h2; i++) {
          gw3[i] += dz * a2[i];
          d2[i] = a2[i] > 0 ? dz * net.w3[i] : 0;
        }
        d1.fill(0);
        for (let j = 0; j < h2; j++) {
          if (d2[j] === 0) continue;
          gb2[j] += d2[j];
          for (let i = 0; i < h1; i++) {
            gw2[j * h1 + i] += d2[j] * a1[i];
            d1[i] += d2[j] * net.w2[j * h1 + i];
          }
        }
        for (let j = 0; j < h1; j++) {
          if (a1[j] <= 0 || d1[j] === 0) continue;
          gb1[j] += d1[j];
          for (let i = 0; i < inputs; i++) gw1[j * inputs + i] += d1[j] * x[off + i];
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
    process.stdout.write(`  seed ${seed} epoch ${epoch + 1}/${epochs}: loss ${(loss / n).toFixed(4)}\n`);
    checkpoint(epoch + 1, net);
  }
}

/** native/vad_model.h for a trained net, its normalisation and its tuned decision. */
export function header(net: Mlp, norm: Norm, tuned: { threshold: number; release: number; hangover: number }, provenance: string): string {
  const { inputs, h1, h2 } = net.shape;
  const w1 = new Float64Array(net.w1.length);
  const b1 = Float64Array.from(net.b1);
  for (let j = 0; j < h1; j++) {
    for (let i = 0; i < inputs; i++) {
      w1[j * inputs + i] = net.w1[j * inputs + i] / norm.std[i];
      b1[j] -= (net.w1[j * inputs + i] * norm.mean[i]) / norm.std[i];
    }
  }
  const num = (x: number) => (Object.is(x, -0) ? '0' : x.toPrecision(7)) + 'f';
  const rows = (w: Float64Array, cols: number) => {
    const out: string[] = [];
    for (let j = 0; j < w.length / cols; j++) out.push(`    {${Array.from(w.subarray(j * cols, (j + 1) * cols), num).join(', ')}}`);
    return out.join(',\n');
  };
  return `// Generated by bench/vad/train.ts (npm run vad:train): do not edit.
// A ${inputs}→${h1}→${h2}→1 MLP (ReLU, sigmoid); input normalisation is folded into layer 1.
// ${provenance}
#pragma once
namespace aybiza::vad::model {
constexpr int kIn = ${inputs}, kH1 = ${h1}, kH2 = ${h2};
constexpr float kW1[kH1][kIn] = {
${rows(w1, inputs)}};
constexpr float kB1[kH1] = {${Array.from(b1, num).join(', ')}};
constexpr float kW2[kH2][kH1] = {
${rows(net.w2, h1)}};
constexpr float kB2[kH2] = {${Array.from(net.b2, num).join(', ')}};
constexpr float kW3[kH2] = {${Array.from(net.w3, num).join(', ')}};
constexpr float kB3 = ${num(net.b3[0])};
constexpr float kThreshold = ${num(tuned.threshold)};
constexpr float kRelease = ${num(tuned.release)};
constexpr int kHangoverFrames = ${tuned.hangover};
}  // namespace aybiza::vad::model
`;
}
