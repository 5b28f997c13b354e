// Noise recipes for the VAD corpus. Every noise type has two recipes: one
// for the train split and a different one (other generator, filter, spectrum
// shape or rhythm) for the validation split, so the validation figures say
// how the model does on noise it has never seen, not on new seeds of the
// same generator. Unit scale is arbitrary: mixing sets the level from the SNR.
import { rng } from '../signals.js';

export const NOISES = ['white', 'pink', 'brown', 'hum', 'hvac', 'traffic', 'music', 'clicks', 'babble'] as const;
export type Noise = (typeof NOISES)[number];
export type Split = 'train' | 'validation';

const RATE = 8000;
const TAU = 2 * Math.PI;

export function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(TAU * r());
}

function white(n: number, r: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = gaussian(r);
  return out;
}

/** Pink by Paul Kellet's filter (train) or the Voss–McCartney row sum (validation). */
function pink(n: number, r: () => number, split: Split): Float64Array {
  const out = new Float64Array(n);
  if (split === 'train') {
    let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
    for (let i = 0; i < n; i++) {
      const w = gaussian(r);
      b0 = 0.99886 * b0 + w * 0.0555179; b1 = 0.99332 * b1 + w * 0.0750759; b2 = 0.969 * b2 + w * 0.153852;
      b3 = 0.8665 * b3 + w * 0.3104856; b4 = 0.55 * b4 + w * 0.5329522; b5 = -0.7616 * b5 - w * 0.016898;
      out[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
      b6 = w * 0.115926;
    }
    return out;
  }
  const rows = new Float64Array(16);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    // Row k changes every 2^k samples (the lowest set bit of the counter).
    const k = i === 0 ? 0 : Math.min(15, 31 - Math.clz32(i & -i));
    sum -= rows[k];
    rows[k] = r() * 2 - 1;
    sum += rows[k];
    out[i] = sum + (r() * 2 - 1);
  }
  return out;
}

/** Brown: a leaky integrator of white (train) or of uniform noise with a slower leak plus DC block (validation). */
function brown(n: number, r: () => number, split: Split): Float64Array {
  const out = new Float64Array(n);
  let y = 0, dc = 0;
  for (let i = 0; i < n; i++) {
    if (split === 'train') out[i] = y = 0.995 * y + gaussian(r);
    else {
      y = 0.998 * y + (r() * 2 - 1);
      dc = 0.9995 * dc + 0.0005 * y;
      out[i] = y - dc;
    }
  }
  return out;
}

/**
 * Mains hum at 50 or 60 Hz with harmonics. Train: harmonics 1–8 at 1/h, or
 * 1–12 at random weights. Validation: a transformer buzz, the mains sine soft-clipped (odd harmonics
 * to the top of the band), a slightly off-nominal mains frequency and a slow
 * level wobble.
 */
function hum(n: number, r: () => number, split: Split, variant: number): Float64Array {
  const out = new Float64Array(n);
  const f0 = (r() < 0.5 ? 50 : 60) * (split === 'train' ? 1 : 1 + (r() - 0.5) * 0.01);
  const phases = Array.from({ length: 12 }, () => TAU * r());
  const weights = Array.from({ length: 12 }, (_, h) => (r() < 0.5 ? 1 / (h + 1) : r()));
  const harmonics = variant % 2 === 0 ? 8 : 12;
  for (let i = 0; i < n; i++) {
    const t = i / RATE;
    let v = 0;
    if (split === 'train') {
      for (let h = 1; h <= harmonics; h++) v += Math.sin(TAU * f0 * h * t + phases[h - 1]) * (harmonics === 8 ? 1 / h : weights[h - 1]);
    } else {
      v = Math.tanh(4 * Math.sin(TAU * f0 * t)) * (1 + 0.15 * Math.sin(TAU * 0.3 * t)) + 0.3 * Math.sin(TAU * 2 * f0 * t + phases[0]);
    }
    out[i] = v + 0.02 * gaussian(r);
  }
  return out;
}

/** Two-pole resonator over an input sequence (a crude room/duct mode). */
function resonate(x: Float64Array, freq: number, q: number): Float64Array {
  const w = (TAU * freq) / RATE, radius = Math.exp(-w / (2 * q));
  const a1 = 2 * radius * Math.cos(w), a2 = -radius * radius;
  const out = new Float64Array(x.length);
  let y1 = 0, y2 = 0;
  for (let i = 0; i < x.length; i++) {
    const y = x[i] + a1 * y1 + a2 * y2;
    out[i] = y;
    y2 = y1;
    y1 = y;
  }
  return out;
}

function lowpass(x: Float64Array, freq: number): Float64Array {
  const a = Math.exp((-TAU * freq) / RATE);
  const out = new Float64Array(x.length);
  let y = 0;
  for (let i = 0; i < x.length; i++) out[i] = y = a * y + (1 - a) * x[i];
  return out;
}

/**
 * Air conditioning: broadband airflow with a low-frequency bias and a fan's
 * blade tone. Train: low-passed white + a duct mode near 250 Hz + blade tone
 * 90–150 Hz, or a vent hiss (a broad mode at 0.8–1.5 kHz) with a blade tone
 * of 100–300 Hz and its third harmonic. Validation: pink-ish airflow through a duct mode at 400–700 Hz,
 * slow gusts, blade tone 160–240 Hz with its second harmonic.
 */
function hvac(n: number, r: () => number, split: Split, variant: number): Float64Array {
  const base = white(n, r);
  const out = new Float64Array(n);
  if (split === 'train' && variant % 2 === 1) {
    const vent = resonate(base, 800 + 700 * r(), 1.2);
    const blade = 100 + 200 * r();
    const level = 0.3 + r();
    for (let i = 0; i < n; i++) {
      const t = (TAU * blade * i) / RATE;
      out[i] = 0.05 * vent[i] + 0.2 * base[i] + level * (Math.sin(t) + 0.3 * Math.sin(3 * t + 1));
    }
  } else if (split === 'train') {
    const low = lowpass(base, 300 + 200 * r());
    const duct = resonate(white(n, r), 200 + 100 * r(), 4);
    const blade = 90 + 60 * r();
    for (let i = 0; i < n; i++) out[i] = 6 * low[i] + 0.05 * duct[i] + 0.3 * base[i] + 0.8 * Math.sin((TAU * blade * i) / RATE);
  } else {
    const air = pink(n, r, 'validation');
    const duct = resonate(white(n, r), 400 + 300 * r(), 3);
    const blade = 160 + 80 * r();
    for (let i = 0; i < n; i++) {
      const gust = 1 + 0.25 * Math.sin((TAU * 0.13 * i) / RATE) + 0.1 * Math.sin((TAU * 0.41 * i) / RATE);
      const t = (TAU * blade * i) / RATE;
      out[i] = gust * (0.15 * air[i] + 0.04 * duct[i]) + 0.5 * Math.sin(t) + 0.2 * Math.sin(2 * t);
    }
  }
  return out;
}

/**
 * Street noise: a low rumble with vehicles passing. Train: brown rumble
 * with Gaussian-shaped passes every 2–6 s, or a diesel idling nearby
 * (decaying firing pulses at 12–60 Hz) under such passes, or a vehicle
 * interior (low rumble, wandering level). Validation: an idling engine
 * (firing pulses at 25–40 Hz, low-passed) under passes that rise slowly and
 * stop abruptly, every 3–8 s.
 */
function traffic(n: number, r: () => number, split: Split, variant: number): Float64Array {
  const env = new Float64Array(n).fill(split === 'train' ? 0.3 : 0.4);
  for (let at = Math.floor(r() * RATE * 3); at < n; ) {
    const width = RATE * (split === 'train' ? 0.8 + r() * 1.5 : 1.5 + r() * 2);
    const peak = 0.5 + r() * 1.5;
    for (let i = Math.max(0, Math.floor(at - 3 * width)); i < Math.min(n, at + 3 * width); i++) {
      const d = (i - at) / width;
      env[i] += split === 'train' ? peak * Math.exp(-d * d) : d < 0 ? peak * Math.exp(2 * d) : d < 0.2 ? peak : 0;
    }
    at += Math.floor(RATE * (split === 'train' ? 2 + r() * 4 : 3 + r() * 5));
  }
  const out = new Float64Array(n);
  if (split === 'train' && variant % 3 === 1) {
    // A diesel idling nearby: decaying firing pulses at 12–60 Hz (a rate
    // that wanders), low-passed, under the passes.
    let rate = 12 + 48 * r(), phase = 0, pulse = 0;
    const engine = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      phase += rate / RATE;
      if (phase >= 1) (phase -= 1), (pulse = 1 + 0.5 * r()), (rate = Math.min(60, Math.max(12, rate * (1 + 0.05 * gaussian(r)))));
      pulse *= 0.97;
      engine[i] = pulse * gaussian(r);
    }
    const low = lowpass(engine, 150 + 250 * r());
    const tyres = lowpass(white(n, r), 600 + 600 * r());
    for (let i = 0; i < n; i++) out[i] = 3 * low[i] + env[i] * tyres[i];
  } else if (split === 'train' && variant % 3 === 2) {
    // Inside a vehicle: a strong low rumble whose level wanders.
    const rumble = lowpass(lowpass(white(n, r), 150), 300);
    let level = 1;
    for (let i = 0; i < n; i++) {
      if (i % 400 === 0) level = Math.min(3, Math.max(0.3, level * Math.exp(0.15 * gaussian(r))));
      out[i] = level * (rumble[i] + 0.02 * env[i] * gaussian(r));
    }
  } else if (split === 'train') {
    const rumble = brown(n, r, 'train');
    const hiss = lowpass(white(n, r), 1200);
    for (let i = 0; i < n; i++) out[i] = env[i] * (rumble[i] * 0.05 + hiss[i]);
  } else {
    const firing = 25 + 15 * r();
    const pulses = new Float64Array(n);
    for (let i = 0; i < n; i++) pulses[i] = Math.pow(0.5 + 0.5 * Math.cos((TAU * firing * i) / RATE), 8) * (1 + 0.3 * gaussian(r));
    const engine = lowpass(lowpass(pulses, 200), 200);
    const tyres = lowpass(white(n, r), 800);
    for (let i = 0; i < n; i++) out[i] = 4 * engine[i] + env[i] * tyres[i];
  }
  return out;
}

/**
 * Music on hold, synthesised. Train, one of: major triads of sine + 2nd
 * harmonic notes, a chord every 0.5–1 s with a soft attack; a fast sine
 * arpeggio with a bass note; a sawtooth-ish pentatonic melody with vibrato.
 * Validation: a minor-key arpeggio of square-ish notes (odd harmonics) over a
 * bass line.
 */
function music(n: number, r: () => number, split: Split, variant: number): Float64Array {
  const out = new Float64Array(n);
  const note = (semitone: number) => 220 * 2 ** (semitone / 12);
  const style = split === 'validation' ? 'square' : (['chords', 'arpeggio', 'melody'] as const)[variant % 3];
  const chord = style === 'square' ? [0, 3, 7, 10] : [0, 4, 7];
  const progression = style === 'square' ? [0, -4, 3, -2] : [0, 5, 7, 3];
  const pentatonic = [0, 2, 4, 7, 9, 12, 14];
  let step = 3;
  for (let at = 0, bar = 0; at < n; bar++) {
    const length = Math.floor(RATE * (style === 'chords' ? 0.5 + r() * 0.5 : style === 'melody' ? 0.3 + r() * 0.3 : style === 'arpeggio' ? 0.12 + r() * 0.18 : 0.18 + r() * 0.1));
    const root = progression[Math.floor(bar / (style === 'chords' ? 1 : 4)) % progression.length];
    step = Math.max(0, Math.min(pentatonic.length - 1, step + Math.floor(r() * 5) - 2));
    const notes =
      style === 'chords' ? chord.map((c) => note(root + c))
      : style === 'melody' ? [note(pentatonic[step] + 3)]
      : [note(root + chord[bar % chord.length] + 12), note(root - 12)];
    const decay = style === 'chords' ? 1.5 : style === 'melody' ? 2 : style === 'arpeggio' ? 4 : 6;
    for (let i = 0; i < length && at + i < n; i++) {
      const t = i / RATE;
      const envelope = Math.min(1, t / 0.03) * Math.exp(-t * decay);
      let v = 0;
      for (const f of notes) {
        if (style === 'chords') v += Math.sin(TAU * f * t) + 0.3 * Math.sin(TAU * 2 * f * t);
        else if (style === 'arpeggio') v += Math.sin(TAU * f * t) + 0.2 * Math.sin(TAU * 3 * f * t);
        else if (style === 'melody') {
          const vib = f * (1 + 0.006 * Math.sin(TAU * 5.5 * t));
          for (let h = 1; h <= 6; h++) v += Math.sin(TAU * vib * h * t) / h;
        } else for (let h = 1; h <= 7; h += 2) v += Math.sin(TAU * f * h * t) / h;
      }
      out[at + i] = envelope * v;
    }
    at += length;
  }
  return out;
}

/**
 * Clicks and crackle on the line over a faint hiss. Train: single-sample
 * impulses, 5–20 a second. Validation: 2–6 ms decaying bursts, 2–10 a second.
 */
function clicks(n: number, r: () => number, split: Split): Float64Array {
  const out = white(n, r);
  for (let i = 0; i < n; i++) out[i] *= 0.02;
  const rate = split === 'train' ? 5 + 15 * r() : 2 + 8 * r();
  for (let at = 0; at < n; at += Math.floor((-Math.log(r() + 1e-12) * RATE) / rate) + 1) {
    const amp = (r() < 0.5 ? -1 : 1) * (0.3 + r());
    if (split === 'train') out[at] += amp;
    else {
      const len = Math.floor(RATE * (0.002 + 0.004 * r()));
      for (let i = 0; i < len && at + i < n; i++) out[at + i] += amp * 0.5 * Math.exp(-i / (len / 4)) * gaussian(r);
    }
  }
  return out;
}

/**
 * Noise of one type in the split's recipe; `talkers` supplies babble. Where
 * the train recipe has variants, the seed picks one (consecutive seeds cycle
 * through them, so every variant is heard).
 */
export function noise(type: Noise, n: number, seed: number, split: Split, talkers: (n: number) => Float64Array): Float64Array {
  const r = rng(seed);
  switch (type) {
    case 'white': return white(n, r);
    case 'pink': return pink(n, r, split);
    case 'brown': return brown(n, r, split);
    case 'hum': return hum(n, r, split, seed);
    case 'hvac': return hvac(n, r, split, seed);
    case 'traffic': return traffic(n, r, split, seed);
    case 'music': return music(n, r, split, seed);
    case 'clicks': return clicks(n, r, split);
    case 'babble': return talkers(n);
  }
}
