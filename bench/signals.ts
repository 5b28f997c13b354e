// Test signals for the DTMF detector, shared by bench/dtmf.ts and
// test/media/dtmf.test.ts (test/ is not compiled by tsc, so they live here):
// key-press sequences at a given level, twist and frequency error, and the
// material that must never produce a digit: speech, music-like tones, noise.
import { execFileSync } from 'node:child_process';
import { seededRandom } from '../src/providers/emulators/profiles.js';
import { speak, synthesise } from './vad/corpus.js';

export const RATE = 8000;
export const ROWS = [697, 770, 852, 941];
export const COLS = [1209, 1336, 1477, 1633];
export const DIGITS = '123A456B789C*0#D';

/** Seeded PRNG (mulberry32, the emulators' generator) so every failure is reproducible. */
export const rng: (seed: number) => () => number = seededRandom;

export interface ToneSpec {
  /** Peak amplitude of the stronger tone, as a fraction of full scale. */
  level: number;
  /** Column (high) tone level minus row (low) tone level, in dB. */
  twistDb?: number;
  /** Multiplies both frequencies (1.015 = +1.5 %). */
  freqScale?: number;
  toneMs?: number;
  gapMs?: number;
  seed?: number;
}

/** `digits` as key presses, each tone preceded and followed by a gap. */
export function dtmfSequence(digits: string, spec: ToneSpec): Int16Array {
  const toneN = Math.round(((spec.toneMs ?? 50) * RATE) / 1000);
  const gapN = Math.round(((spec.gapMs ?? 50) * RATE) / 1000);
  const out = new Int16Array(gapN + digits.length * (toneN + gapN));
  const twist = spec.twistDb ?? 0;
  // The stronger tone gets `level`, so a twisted pair never clips.
  const colAmp = spec.level * Math.min(1, 10 ** (twist / 20));
  const rowAmp = spec.level * Math.min(1, 10 ** (-twist / 20));
  const scale = spec.freqScale ?? 1;
  const rand = rng(spec.seed ?? 1);
  let at = gapN;
  for (const d of digits) {
    const i = DIGITS.indexOf(d);
    if (i < 0) throw new RangeError(`not a DTMF digit: ${d}`);
    const wr = (2 * Math.PI * ROWS[i >> 2] * scale) / RATE;
    const wc = (2 * Math.PI * COLS[i & 3] * scale) / RATE;
    const pr = rand() * 2 * Math.PI;
    const pc = rand() * 2 * Math.PI;
    for (let n = 0; n < toneN; n++) {
      const v = rowAmp * Math.sin(wr * n + pr) + colAmp * Math.sin(wc * n + pc);
      out[at + n] = Math.round(v * 32767);
    }
    at += toneN + gapN;
  }
  return out;
}

/**
 * Chords of harmonic notes (equal temperament, 5 partials) with vibrato and
 * note envelopes: the tonal material most likely to put energy on a row and
 * a column frequency at once.
 */
export function musicLike(seconds: number, seed: number): Int16Array {
  const rand = rng(seed);
  const out = new Float64Array(Math.round(seconds * RATE));
  let at = 0;
  while (at < out.length) {
    const len = Math.round((0.15 + rand() * 0.45) * RATE);
    const root = 45 + Math.floor(rand() * 36); // MIDI A2..G#5
    const shape = [[0, 4, 7], [0, 3, 7], [0, 7, 12], [0, 4, 7, 11], [0, 5, 9]][Math.floor(rand() * 5)];
    const vibHz = 4 + rand() * 3;
    const vibDepth = rand() * 0.012;
    for (const step of shape) {
      const f0 = 440 * 2 ** ((root + step - 69) / 12);
      const phase = rand() * 2 * Math.PI;
      for (let n = 0; n < len && at + n < out.length; n++) {
        const t = n / RATE;
        const env = Math.min(1, t / 0.02) * Math.exp(-t * 2.5);
        // Integrated vibrato: the instantaneous frequency is f0(1 + d·sin).
        const ph = 2 * Math.PI * f0 * (t - (vibDepth / (2 * Math.PI * vibHz)) * Math.cos(2 * Math.PI * vibHz * t)) + phase;
        let v = 0;
        for (let k = 1; k <= 5; k++) if (f0 * k < RATE / 2) v += Math.sin(k * ph) / k;
        out[at + n] += 0.12 * env * v;
      }
    }
    at += len;
  }
  return toPcm(out);
}

/** Uniform white noise of the given peak (fraction of full scale). */
export function whiteNoise(seconds: number, peak: number, seed: number): Int16Array {
  const rand = rng(seed);
  const out = new Float64Array(Math.round(seconds * RATE));
  for (let i = 0; i < out.length; i++) out[i] = (rand() * 2 - 1) * peak;
  return toPcm(out);
}

function toPcm(x: Float64Array): Int16Array {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32767)));
  return out;
}

const SENTENCES: Record<string, string[]> = {
  en: [
    'Please tell me your account number and the date of your last payment.',
    'The quick brown fox jumps over the lazy dog while the band plays on.',
    'I would like to book a table for four people at seven thirty tonight.',
    'One two three four five six seven eight nine zero, star and pound.',
    'Hello? Hello! Can you hear me now? The line seems very quiet today.',
    'Her voice rose higher and higher, singing la la la, ooh and aah.',
  ],
  de: [
    'Guten Tag, ich möchte bitte meinen Vertrag kündigen und eine Rechnung bekommen.',
    'Eins zwei drei vier fünf sechs sieben acht neun null, Stern und Raute.',
    'Die Straßenbahn fährt heute wegen Bauarbeiten nur bis zum Hauptbahnhof.',
  ],
  fr: [
    'Bonjour, je voudrais parler à un conseiller au sujet de ma facture.',
    'Un deux trois quatre cinq six sept huit neuf zéro, étoile et dièse.',
    'Il fait très beau aujourd’hui, nous irons nous promener au bord de la mer.',
  ],
};

// Voices (with espeak-ng's female and child variants for higher pitch) and
// speaking rates; every sentence of a language is spoken by each of them.
const VOICES: [string, string, number][] = [
  ['en', 'en', 160], ['en', 'en-us', 200], ['en', 'en+f3', 140], ['en', 'en-us+f2', 180], ['en', 'en+klatt', 120],
  ['de', 'de', 150], ['de', 'de+f4', 190], ['fr', 'fr', 170], ['fr', 'fr+f1', 130],
];

/** True when espeak-ng and sox are on the PATH. */
export function haveSpeechTools(): boolean {
  try {
    execFileSync('espeak-ng', ['--version'], { stdio: 'ignore' });
    execFileSync('sox', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Synthesised speech at 8 kHz, about 100 s, several voices and languages (cached like the VAD corpus). */
export function speech(): Int16Array {
  const requests = VOICES.flatMap(([lang, voice, rate]) => SENTENCES[lang].map((text) => ({ voice, rate, pitch: 50, text })));
  synthesise(requests);
  const parts = requests.map((r) => speak(r.voice, r.rate, r.pitch, r.text));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Int16Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Consecutive views of `frameSize` elements (the last may be shorter). */
export function* frames<T extends Uint8Array | Int16Array>(buf: T, frameSize: number): Generator<T> {
  for (let i = 0; i < buf.length; i += frameSize) yield buf.subarray(i, Math.min(buf.length, i + frameSize)) as T;
}
