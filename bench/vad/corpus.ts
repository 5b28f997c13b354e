// Labeled VAD corpus, generated (not committed): speech from espeak-ng voices
// at several rates and pitches, resampled to 8 kHz by sox, with pauses
// between utterances; mixed with white, pink, brown, babble and hum/tone
// noise at clean / 20 / 10 / 5 / 0 dB SNR; μ-law encoded. Frame labels come
// from the clean speech. The train and test splits use different voices,
// sentences and noise seeds, so nothing is tuned on the test split.
//
// Utterances are cached under AYBIZA_VAD_CORPUS_DIR (default: the OS temp
// directory), keyed by their synthesis parameters.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ulawEncode } from '../../src/media/g711.js';
import { rng } from '../signals.js';

export const FRAME = 160; // 20 ms at 8 kHz
export const SNRS = [Infinity, 20, 10, 5, 0] as const;
export const NOISES = ['white', 'pink', 'brown', 'babble', 'hum'] as const;
export type Noise = (typeof NOISES)[number];
export type Split = 'train' | 'test';

export interface Item {
  split: Split;
  noise: Noise | 'none';
  snr: number;
  ulaw: Uint8Array;
  /** One per 20 ms frame: 1 speech, 0 not. */
  labels: Uint8Array;
}

const VOICES: Record<Split, string[]> = {
  train: ['en-us', 'en-gb', 'en-gb-x-rp+m3', 'de', 'es', 'en-us+f2', 'nl+m2', 'en-gb+f4', 'sv', 'en-us+klatt2'],
  test: ['en-029', 'fr-fr', 'it+f3', 'en-gb-scotland', 'pt', 'en-us+f5', 'pl+m4', 'en-us-nyc'],
};
const BABBLE_VOICES: Record<Split, string[]> = {
  train: ['da', 'cs+f2', 'fi', 'ro+m3', 'hu', 'sk+f4'],
  test: ['tr', 'el+f2', 'hr', 'lv+m3', 'id', 'ca+f4'],
};
const UTTERANCES: Record<Split, number> = { train: 90, test: 70 };
const SEEDS: Record<Split, number> = { train: 1, test: 7 };

export { rng };

const WORDS = {
  names: ['Anna', 'Marcus', 'Priya', 'Jonas', 'Elena', 'Tom', 'Keiko', 'Omar', 'Lucia', 'Sam'],
  things: ['appointment', 'order', 'reservation', 'invoice', 'parcel', 'account', 'ticket', 'subscription', 'delivery', 'refund'],
  verbs: ['change', 'cancel', 'confirm', 'check', 'move', 'update', 'track', 'book', 'pay for', 'upgrade'],
  days: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'tomorrow', 'next week'],
  fillers: ['well', 'um', 'so', 'okay', 'right', 'actually', 'yes', 'no'],
};

function sentence(r: () => number): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const n = () => String(Math.floor(r() * 9000) + 100);
  const forms = [
    () => `Hello, this is ${pick(WORDS.names)}, I would like to ${pick(WORDS.verbs)} my ${pick(WORDS.things)}.`,
    () => `${pick(WORDS.fillers)}, can you ${pick(WORDS.verbs)} the ${pick(WORDS.things)} for ${pick(WORDS.days)}?`,
    () => `My number is ${n()} ${n()}, and the ${pick(WORDS.things)} was due on ${pick(WORDS.days)}.`,
    () => `I called twice about the ${pick(WORDS.things)} and nobody could ${pick(WORDS.verbs)} it.`,
    () => `${pick(WORDS.fillers)}. ${pick(WORDS.fillers)}, ${pick(WORDS.names)} said it would be ready by ${pick(WORDS.days)}.`,
    () => `Could you spell that for me? It is ${pick(WORDS.names)}, with ${n()} at the end.`,
    () => `Yes.`,
    () => `The ${pick(WORDS.things)} costs ${n()} dollars and ${Math.floor(r() * 99)} cents, which seems like a lot.`,
  ];
  return pick(forms)();
}

function corpusDir(): string {
  const dir = process.env.AYBIZA_VAD_CORPUS_DIR ?? path.join(os.tmpdir(), 'aybiza-vad-corpus');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

interface Speech {
  voice: string;
  rate: number;
  pitch: number;
  text: string;
}

function cacheFile(s: Speech): string {
  const key = createHash('sha1').update(`${s.voice}|${s.rate}|${s.pitch}|${s.text}`).digest('hex').slice(0, 16);
  return path.join(corpusDir(), `${key}.s16`);
}

/**
 * Synthesises every request not yet cached with espeak-ng → sox (8 kHz PCM16)
 * in one shell, not a process pair per utterance from Node: forking a Node
 * process that holds the corpus costs more than the synthesis itself.
 */
export function synthesise(requests: Speech[]): void {
  const missing = requests.filter((r) => !fs.existsSync(cacheFile(r)));
  if (missing.length === 0) return;
  const jobs = missing.map((r) => [r.voice, r.rate, r.pitch, cacheFile(r), r.text.replace(/[\t\n]/g, ' ')].join('\t')).join('\n') + '\n';
  const script = `while IFS=$'\\t' read -r voice rate pitch out text; do
    espeak-ng -v "$voice" -s "$rate" -p "$pitch" --stdout "$text" | sox -t wav - -t raw -r 8000 -c 1 -b 16 -e signed -L "$out.tmp" || exit 1
    mv "$out.tmp" "$out"
  done`;
  const run = spawnSync('bash', ['-c', script], { input: jobs, stdio: ['pipe', 'ignore', 'pipe'] });
  if (run.status !== 0) {
    throw new Error(`espeak-ng/sox failed (are they installed? apt-get install espeak-ng sox): ${run.stderr?.toString() || run.error?.message}`);
  }
}

/** 8 kHz PCM16 of one utterance, synthesising it if needed. */
export function speak(voice: string, rate: number, pitch: number, text: string): Int16Array {
  const req = { voice, rate, pitch, text };
  synthesise([req]);
  const buf = fs.readFileSync(cacheFile(req));
  return new Int16Array(buf.buffer, buf.byteOffset, buf.length >> 1).slice();
}

function frameEnergies(x: Float64Array): Float64Array {
  const frames = Math.floor(x.length / FRAME);
  const e = new Float64Array(frames);
  for (let f = 0; f < frames; f++) {
    let s = 0;
    for (let i = f * FRAME; i < (f + 1) * FRAME; i++) s += x[i] * x[i];
    e[f] = s / FRAME;
  }
  return e;
}

interface Clean {
  speech: Float64Array;
  labels: Uint8Array;
}

/** The split's clean track: utterances at varied levels with pauses between. */
function cleanTrack(split: Split): Clean {
  const r = rng(SEEDS[split]);
  const parts: Float64Array[] = [];
  const labels: number[] = [];
  const pause = (seconds: number) => {
    const frames = Math.round((seconds * 8000) / FRAME);
    parts.push(new Float64Array(frames * FRAME));
    for (let i = 0; i < frames; i++) labels.push(0);
  };
  pause(1.0); // calls start with line noise before anyone speaks
  const voices = VOICES[split];
  // Plan every utterance first (the random draws do not depend on the audio),
  // then synthesise them in one batch.
  const plan = Array.from({ length: UTTERANCES[split] }, (_, u) => ({
    voice: voices[u % voices.length],
    rate: 120 + Math.floor(r() * 100),
    pitch: 25 + Math.floor(r() * 50),
    text: sentence(r),
    level: -32 + 16 * r(),
    pause: 0.2 + r() * 1.6,
  }));
  synthesise(plan);
  for (const u of plan) {
    const pcm = speak(u.voice, u.rate, u.pitch, u.text);
    const frames = Math.floor(pcm.length / FRAME);
    const x = new Float64Array(frames * FRAME);
    for (let i = 0; i < x.length; i++) x[i] = pcm[i];
    // Active level between -32 and -16 dBFS: callers are loud and quiet.
    const e = frameEnergies(x);
    const peak = Math.max(...e);
    let active = 0;
    let n = 0;
    for (const v of e) if (v > peak * 1e-4) (active += v), n++;
    const gain = Math.sqrt((32768 ** 2 * 10 ** (u.level / 10)) / (active / Math.max(1, n)));
    for (let i = 0; i < x.length; i++) x[i] *= gain;
    parts.push(x);
    // Speech where the clean frame is within 40 dB of the utterance's peak.
    for (const v of e) labels.push(v > peak * 1e-4 ? 1 : 0);
    pause(u.pause);
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const speech = new Float64Array(total);
  let off = 0;
  for (const p of parts) speech.set(p, off), (off += p.length);
  return { speech, labels: Uint8Array.from(labels) };
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Seeded noise of one type, any length; unit scale is arbitrary (mixing sets it). */
export function noise(type: Noise, n: number, seed: number, split: Split): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  if (type === 'white') {
    for (let i = 0; i < n; i++) out[i] = gaussian(r);
  } else if (type === 'pink') {
    // Paul Kellet's filter: -3 dB/octave within 0.05 dB over the band.
    let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
    for (let i = 0; i < n; i++) {
      const w = gaussian(r);
      b0 = 0.99886 * b0 + w * 0.0555179; b1 = 0.99332 * b1 + w * 0.0750759; b2 = 0.969 * b2 + w * 0.153852;
      b3 = 0.8665 * b3 + w * 0.3104856; b4 = 0.55 * b4 + w * 0.5329522; b5 = -0.7616 * b5 - w * 0.016898;
      out[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
      b6 = w * 0.115926;
    }
  } else if (type === 'brown') {
    let y = 0;
    for (let i = 0; i < n; i++) out[i] = y = 0.995 * y + gaussian(r);
  } else if (type === 'hum') {
    // Mains hum with harmonics, two steady tones and a little hiss.
    const f0 = r() < 0.5 ? 50 : 60;
    const tones = [300 + r() * 500, 900 + r() * 1500];
    for (let i = 0; i < n; i++) {
      const t = i / 8000;
      let v = 0;
      for (let h = 1; h <= 8; h++) v += Math.sin(2 * Math.PI * f0 * h * t + h) / h;
      v += 0.3 * Math.sin(2 * Math.PI * tones[0] * t) + 0.2 * Math.sin(2 * Math.PI * tones[1] * t);
      out[i] = v + 0.05 * gaussian(r);
    }
  } else {
    // Babble: six talkers from voices used nowhere else, overlapped, each
    // cycling through eight sentences of its own.
    const voices = BABBLE_VOICES[split];
    const lines = voices.map((voice) =>
      Array.from({ length: 8 }, () => ({ voice, rate: 130 + Math.floor(r() * 80), pitch: 30 + Math.floor(r() * 40), text: sentence(r) })),
    );
    synthesise(lines.flat());
    for (let talker = 0; talker < voices.length; talker++) {
      const audio = lines[talker].map((l) => speak(l.voice, l.rate, l.pitch, l.text));
      let at = -Math.floor(r() * 8000 * 3);
      for (let k = 0; at < n; k++) {
        const pcm = audio[k % audio.length];
        for (let i = 0; i < pcm.length; i++) if (at + i >= 0 && at + i < n) out[at + i] += pcm[i];
        at += pcm.length + Math.floor(r() * 1200);
      }
    }
  }
  return out;
}

function mix(clean: Clean, type: Noise | 'none', snr: number, seed: number, split: Split): Uint8Array {
  const x = clean.speech;
  const pcm = new Int16Array(x.length);
  let gain = 0;
  let nz: Float64Array | null = null;
  if (type !== 'none' && Number.isFinite(snr)) {
    nz = noise(type, x.length, seed, split);
    let sp = 0, np = 0, frames = 0;
    for (let f = 0; f < clean.labels.length; f++) {
      if (!clean.labels[f]) continue;
      frames++;
      for (let i = f * FRAME; i < (f + 1) * FRAME; i++) sp += x[i] * x[i];
    }
    for (let i = 0; i < nz.length; i++) np += nz[i] * nz[i];
    sp /= Math.max(1, frames * FRAME);
    np /= nz.length;
    gain = Math.sqrt(sp / (np * 10 ** (snr / 10)));
  }
  for (let i = 0; i < x.length; i++) {
    const v = x[i] + (nz ? gain * nz[i] : 0);
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return ulawEncode(pcm).slice();
}

/** Every mixture of one split: clean, then each noise at each finite SNR. */
export function buildCorpus(split: Split): Item[] {
  const clean = cleanTrack(split);
  const items: Item[] = [{ split, noise: 'none', snr: Infinity, ulaw: mix(clean, 'none', Infinity, 0, split), labels: clean.labels }];
  let seed = SEEDS[split] * 1000;
  for (const type of NOISES) {
    for (const snr of SNRS) {
      if (!Number.isFinite(snr)) continue;
      items.push({ split, noise: type, snr, ulaw: mix(clean, type, snr, seed++, split), labels: clean.labels });
    }
  }
  return items;
}
