// Labeled VAD corpus, generated (not committed). Speech: espeak-ng voices
// (language × voice variant) at varied rates, pitches and word gaps,
// resampled to 8 kHz by sox, some of it through far-field reverberation
// (sox reverb) or a telephone band filter, at active levels from −40 to
// −10 dBFS, with pauses between utterances. Noise: the recipes of noise.ts at
// 20 / 10 / 5 / 0 dB SNR, plus clean; everything μ-law encoded and decoded
// as a call would carry it. Frame labels come from the dry clean speech
// (before reverb, filter and noise), never from the mix.
//
// The splits share nothing: train and validation use different languages,
// voice variants, sentences, effect settings and noise recipes, so the
// validation split measures generalisation and is what picks the model.
//
// Synthesised utterances are cached under AYBIZA_VAD_CORPUS_DIR (default:
// the OS temp directory), keyed by their synthesis parameters; a cold cache
// costs about a minute of espeak-ng, a warm one nothing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ulawEncode } from '../../src/media/g711.js';
import { rng } from '../signals.js';
import { noise, NOISES, type Noise, type Split } from './noise.js';

export { NOISES, rng, type Noise, type Split };
export const FRAME = 160; // 20 ms at 8 kHz
/** The SNRs every noise is mixed at (clean is one more condition). */
export const SNRS = [20, 10, 5, 0] as const;

export interface Item {
  split: Split;
  noise: Noise | 'none';
  snr: number;
  ulaw: Uint8Array;
  /** One per 20 ms frame: 1 speech, 0 not. */
  labels: Uint8Array;
}

interface SplitPlan {
  languages: string[];
  variants: string[];
  babble: string[];
  effects: string[];
  utterances: number;
  seed: number;
}

const PLANS: Record<Split, SplitPlan> = {
  train: {
    languages: ['en-us', 'en-gb', 'de', 'es', 'nl', 'sv', 'da', 'ru', 'hi', 'cy', 'en-gb-x-rp', 'af', 'cs', 'hu', 'vi', 'ja'],
    variants: ['', 'm1', 'm2', 'm3', 'm5', 'f1', 'f2', 'f4', 'klatt2', 'klatt4', 'Andy', 'Annie', 'adam', 'linda', 'robert', 'grandma', 'whisper'],
    babble: ['fi', 'sk+f4', 'nb+m2', 'bg', 'sl+f1', 'et'],
    effects: ['reverb 40 50 60', 'reverb 70 30 100 100 5 2', 'sinc 300-3400', 'reverb 55 60 80 sinc 200-3600'],
    utterances: 150,
    seed: 1,
  },
  validation: {
    languages: ['en-029', 'fr-fr', 'it', 'en-gb-scotland', 'pt', 'en-us-nyc', 'pl', 'el', 'tr', 'es-419', 'ro'],
    variants: ['', 'f3', 'f5', 'm4', 'm6', 'm7', 'klatt3', 'Michael', 'belinda', 'benjamin', 'aunty', 'edward', 'whisperf'],
    babble: ['hr', 'lv+m3', 'id', 'ca+f4', 'lt', 'mk+f2'],
    effects: ['reverb 60 40 90 100 10 1', 'reverb 85 20 100 100 0 4', 'highpass 250 lowpass 3300', 'reverb 50 70 70 highpass 300'],
    utterances: 80,
    seed: 7,
  },
};

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
    () => `${pick(WORDS.fillers)}?`,
    () => `The ${pick(WORDS.things)} costs ${n()} dollars and ${Math.floor(r() * 99)} cents, which seems like a lot.`,
  ];
  return pick(forms)();
}

/** Where utterances (and training by-products) are cached. */
export function corpusDir(): string {
  const dir = process.env.AYBIZA_VAD_CORPUS_DIR ?? path.join(os.tmpdir(), 'aybiza-vad-corpus');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

interface Speech {
  voice: string;
  rate: number;
  pitch: number;
  text: string;
  /** espeak-ng -g: extra pause between words, in 10 ms units. */
  gap?: number;
  /** sox effect chain applied to the 8 kHz dry audio ('' = none). */
  effect?: string;
}

function cacheFile(s: Speech): string {
  const gap = s.gap ? `|g${s.gap}` : '';
  const effect = s.effect ? `|${s.effect}` : '';
  const key = createHash('sha1').update(`${s.voice}|${s.rate}|${s.pitch}|${s.text}${gap}${effect}`).digest('hex').slice(0, 16);
  return path.join(corpusDir(), `${key}.s16`);
}

const RAW = '-t raw -r 8000 -c 1 -b 16 -e signed -L';

function runScript(script: string, jobs: string[]): void {
  if (jobs.length === 0) return;
  const run = spawnSync('bash', ['-c', script], { input: jobs.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] });
  if (run.status !== 0) {
    throw new Error(`espeak-ng/sox failed (are they installed? apt-get install espeak-ng sox): ${run.stderr?.toString() || run.error?.message}`);
  }
}

/**
 * Synthesises every request not yet cached with espeak-ng → sox (8 kHz PCM16)
 * in one shell, not a process pair per utterance from Node: forking a Node
 * process that holds the corpus costs more than the synthesis itself. Effects
 * run on the cached dry file, so the dry twin (the labels' source) exists too.
 */
export function synthesise(requests: Speech[]): void {
  const dry = requests.map((r) => ({ ...r, effect: '' }));
  const seen = new Set<string>();
  const missingDry = dry.filter((r) => {
    const f = cacheFile(r);
    if (seen.has(f) || fs.existsSync(f)) return false;
    seen.add(f);
    return true;
  });
  runScript(
    `while IFS=$'\\t' read -r voice rate pitch gap out text; do
      espeak-ng -v "$voice" -s "$rate" -p "$pitch" -g "$gap" --stdout "$text" | sox -t wav - ${RAW} "$out.tmp" rate 8000 || exit 1
      mv "$out.tmp" "$out"
    done`,
    missingDry.map((r) => [r.voice, r.rate, r.pitch, r.gap ?? 0, cacheFile(r), r.text.replace(/[\t\n]/g, ' ')].join('\t')),
  );
  const missingWet = requests.filter((r) => r.effect && !fs.existsSync(cacheFile(r)));
  runScript(
    `while IFS=$'\\t' read -r dry out effect; do
      sox ${RAW} "$dry" ${RAW} "$out.tmp" $effect || exit 1
      mv "$out.tmp" "$out"
    done`,
    missingWet.map((r) => [cacheFile({ ...r, effect: '' }), cacheFile(r), r.effect].join('\t')),
  );
}

function load(req: Speech): Int16Array {
  const buf = fs.readFileSync(cacheFile(req));
  return new Int16Array(buf.buffer, buf.byteOffset, buf.length >> 1).slice();
}

/** 8 kHz PCM16 of one utterance, synthesising it if needed. */
export function speak(voice: string, rate: number, pitch: number, text: string): Int16Array {
  const req = { voice, rate, pitch, text };
  synthesise([req]);
  return load(req);
}

function frameEnergies(x: Int16Array | Float64Array, frames: number): Float64Array {
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

/** The split's clean track: utterances at varied levels and styles with pauses between. */
function cleanTrack(split: Split): Clean {
  const p = PLANS[split];
  const r = rng(p.seed);
  const parts: Float64Array[] = [];
  const labels: number[] = [];
  const pause = (seconds: number) => {
    const frames = Math.round((seconds * 8000) / FRAME);
    parts.push(new Float64Array(frames * FRAME));
    for (let i = 0; i < frames; i++) labels.push(0);
  };
  pause(1.0); // calls start with line noise before anyone speaks
  // Plan every utterance first (the random draws do not depend on the audio),
  // then synthesise them in one batch.
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const plan = Array.from({ length: p.utterances }, (_, u) => {
    const variant = pick(p.variants);
    const roll = r();
    return {
      voice: p.languages[u % p.languages.length] + (variant ? `+${variant}` : ''),
      rate: 90 + Math.floor(r() * 190),
      pitch: Math.floor(r() * 100),
      gap: r() < 0.3 ? Math.floor(r() * 15) : 0,
      text: sentence(r),
      effect: roll < 0.5 ? '' : pick(p.effects),
      // Active level −35 to −15 dBFS; with the call's level (mix) −40 to −10.
      level: -35 + 20 * r(),
      pause: 0.2 + r() * 1.6,
    };
  });
  synthesise(plan);
  for (const u of plan) {
    const dry = load({ ...u, effect: '' });
    const wet = u.effect ? load(u) : dry;
    const frames = Math.floor(dry.length / FRAME);
    const e = frameEnergies(dry, frames);
    const peak = Math.max(...e);
    let active = 0;
    let n = 0;
    for (const v of e) if (v > peak * 1e-4) (active += v), n++;
    const gain = Math.sqrt((32768 ** 2 * 10 ** (u.level / 10)) / (active / Math.max(1, n)));
    const x = new Float64Array(frames * FRAME);
    for (let i = 0; i < x.length; i++) x[i] = (wet[i] ?? 0) * gain;
    parts.push(x);
    // Speech where the dry frame is within 40 dB of the utterance's peak.
    for (const v of e) labels.push(v > peak * 1e-4 ? 1 : 0);
    pause(u.pause);
  }
  const total = parts.reduce((s, q) => s + q.length, 0);
  const speech = new Float64Array(total);
  let off = 0;
  for (const q of parts) speech.set(q, off), (off += q.length);
  return { speech, labels: Uint8Array.from(labels) };
}

/** Babble: six talkers from voices used nowhere else, overlapped, each cycling through eight sentences. */
function babble(split: Split, n: number, seed: number): Float64Array {
  const r = rng(seed);
  const voices = PLANS[split].babble;
  const lines = voices.map((voice) =>
    Array.from({ length: 8 }, () => ({ voice, rate: 130 + Math.floor(r() * 80), pitch: 30 + Math.floor(r() * 40), text: sentence(r) })),
  );
  synthesise(lines.flat());
  const out = new Float64Array(n);
  for (let talker = 0; talker < voices.length; talker++) {
    const audio = lines[talker].map(load);
    let at = -Math.floor(r() * 8000 * 3);
    for (let k = 0; at < n; k++) {
      const pcm = audio[k % audio.length];
      for (let i = 0; i < pcm.length; i++) if (at + i >= 0 && at + i < n) out[at + i] += pcm[i];
      at += pcm.length + Math.floor(r() * 1200);
    }
  }
  return out;
}

/**
 * Speech plus noise at `snr` (against the speech's mean active power), the
 * whole call then scaled by `levelDb` (±5 dB around the planned levels, so
 * the same condition is heard loud and quiet), then μ-law.
 */
function mix(clean: Clean, type: Noise | 'none', snr: number, seed: number, split: Split, levelDb: number): Uint8Array {
  const x = clean.speech;
  const pcm = new Int16Array(x.length);
  let gain = 0;
  let nz: Float64Array | null = null;
  if (type !== 'none') {
    nz = noise(type, x.length, seed, split, (n) => babble(split, n, seed));
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
  const level = 10 ** (levelDb / 20);
  for (let i = 0; i < x.length; i++) {
    const v = level * (x[i] + (nz ? gain * nz[i] : 0));
    pcm[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return ulawEncode(pcm).slice();
}

/**
 * Every mixture of one split: clean, then each noise at each SNR. `rounds`
 * > 1 adds that many passes of noise mixtures in all (train only: other
 * noise seeds, so every SNR hears other instances and recipe variants of each
 * noise, at other call levels); the validation split is always one round.
 */
export function buildCorpus(split: Split, rounds = 1): Item[] {
  const clean = cleanTrack(split);
  const r = rng(PLANS[split].seed * 31);
  const level = () => -5 + 10 * r();
  const items: Item[] = [{ split, noise: 'none', snr: Infinity, ulaw: mix(clean, 'none', Infinity, 0, split, level()), labels: clean.labels }];
  // The train split hears clean speech at a second level too.
  if (split === 'train') items.push({ ...items[0], ulaw: mix(clean, 'none', Infinity, 0, split, -5) });
  for (let round = 0; round < (split === 'train' ? rounds : 1); round++) {
    // An odd offset per round moves each SNR onto the next recipe variant.
    let seed = PLANS[split].seed * 1000 + 101 * round;
    for (const type of NOISES) {
      for (const snr of SNRS) items.push({ split, noise: type, snr, ulaw: mix(clean, type, snr, seed++, split, level()), labels: clean.labels });
    }
  }
  return items;
}

