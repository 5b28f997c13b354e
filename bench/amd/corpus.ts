// Answering-machine corpus, generated (not committed): what the far end
// sends after an outbound call is answered. People: a short answer ("Hello?",
// "Hi, this is Sam.") after a pick-up pause, sometimes a second "Hello?"
// after waiting, then silence. Machines: a voicemail greeting of several
// sentences, with or without a beep (350–2,000 Hz, 0.3–1 s) after it, then
// silence. Several espeak-ng voices, rates and pitches (synthesised through
// the VAD corpus's cache, bench/vad/corpus.ts), speech levels from −32 to
// −14 dBFS, clean or with noise (the VAD corpus's validation recipes) at
// 25/15/10 dB SNR, μ-law as a call carries it. Seeded: the same items
// every run.
import { ulawEncode } from '../../src/media/g711.js';
import { rng } from '../signals.js';
import { speak, synthesise } from '../vad/corpus.js';
import { noise, type Noise } from '../vad/noise.js';

const RATE = 8000;

export type AmdClass = 'human' | 'machine';

export interface AmdItem {
  id: string;
  truth: AmdClass;
  ulaw: Uint8Array;
  /** What was said (for the transcript tie-breaker's oracle run and for reading failures). */
  text: string;
  voice: string;
  noise: Noise | 'none';
  snr: number;
  /** Where the speech ends, ms (the greeting's end for a machine). */
  speechEndMs: number;
  beep: { hz: number; startMs: number; durationMs: number } | null;
}

const NAMES = ['Sam', 'Anna', 'Marcus', 'Priya', 'Jonas', 'Elena', 'Tom', 'Keiko', 'Omar', 'Lucia'];
const COMPANIES = ['Acme Dental', 'Northside Plumbing', 'the Riverside clinic', 'Blue Harbor Insurance', 'City Auto Repair'];

const HUMAN = [
  () => 'Hello?', () => 'Hello.', () => 'Hi.', () => 'Yes?', () => 'Yeah, hello?', (n: string) => `Hi, this is ${n}.`,
  (n: string) => `Hello, ${n} speaking.`, () => "Hello, who's this?", () => 'Good morning.', () => 'Hey.', () => 'Speaking.',
  (n: string) => `${n} here.`,
];

const MACHINE = [
  (n: string) => `Hi, you've reached ${n}. I can't come to the phone right now. Please leave a message after the tone.`,
  (n: string) => `Hello, this is ${n}. Sorry I missed your call. Leave your name and number and I'll get back to you.`,
  () => 'The person you are calling is not available. Please record your message after the beep.',
  (n: string) => `Hi, it's ${n}, leave a message.`,
  (n: string, c: string) => `You have reached the voicemail of ${n} at ${c}. I am either on the phone or away from my desk. Please leave a message.`,
  (_: string, c: string) => `Thank you for calling ${c}. Our office is currently closed. Please leave a message and we will return your call.`,
  (n: string) => `Hey, ${n} here. I'm not around, so leave me a message and I'll call you back.`,
  (_: string, __: string, d: string) => `${d}. Is not available. At the tone, please record your message.`,
];

const VOICES = ['en', 'en-us', 'en+f3', 'en-us+f2', 'en+m3', 'en-gb+f4', 'en-us+m7', 'en+klatt', 'en-gb-x-rp+f5', 'en-029+m4'];
const NOISES: Noise[] = ['white', 'pink', 'hum', 'hvac', 'traffic', 'music'];
const SNRS = [25, 15, 10];
const BEEP_HZ = [425, 600, 850, 1000, 1200, 1400, 1750, 1950];

interface Plan {
  truth: AmdClass;
  parts: ({ silence: number } | { voice: string; rate: number; pitch: number; text: string; levelDb: number })[];
  beep: { hz: number; gap: number; duration: number; levelDb: number } | null;
  tail: number;
  noise: Noise | 'none';
  snr: number;
}

function plan(truth: AmdClass, r: () => number): Plan {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const speech = (text: string, voice: string, rate: number, pitch: number, levelDb: number) => ({ voice, rate, pitch, text, levelDb });
  const voice = pick(VOICES);
  const rate = 130 + Math.floor(r() * 60);
  const pitch = 30 + Math.floor(r() * 40);
  const levelDb = -32 + 18 * r();
  const name = pick(NAMES);
  const parts: Plan['parts'] = [];
  let beep: Plan['beep'] = null;
  if (truth === 'human') {
    parts.push({ silence: 0.25 + r() * 0.95 }, speech(pick(HUMAN)(name), voice, rate, pitch, levelDb));
    // Nobody answered back: some people ask again.
    if (r() < 0.3) parts.push({ silence: 1.2 + r() * 0.8 }, speech(pick(['Hello?', 'Hello? Anyone there?', 'Hi?']), voice, rate, pitch, levelDb));
  } else {
    const digits = Array.from({ length: 7 }, () => Math.floor(r() * 10)).join(' ');
    parts.push({ silence: 0.2 + r() * 0.8 }, speech(pick(MACHINE)(name, pick(COMPANIES), digits), voice, rate, pitch, levelDb));
    if (r() < 0.7) beep = { hz: pick(BEEP_HZ) + Math.round((r() - 0.5) * 20), gap: 0.2 + r() * 0.6, duration: 0.3 + r() * 0.7, levelDb: -20 + 8 * r() };
  }
  const noisy = r() < 0.6;
  return { truth, parts, beep, tail: truth === 'human' ? 6 : 2, noise: noisy ? pick(NOISES) : 'none', snr: noisy ? pick(SNRS) : Infinity };
}

function render(p: Plan, seed: number, index: number): AmdItem {
  const chunks: Float64Array[] = [];
  let speechPower = 0, speechSamples = 0, at = 0, speechEnd = 0;
  const texts: string[] = [];
  let voice = '';
  for (const part of p.parts) {
    if ('silence' in part) {
      chunks.push(new Float64Array(Math.round(part.silence * RATE)));
    } else {
      const pcm = speak(part.voice, part.rate, part.pitch, part.text);
      let e = 0;
      for (const v of pcm) e += v * v;
      const gain = Math.sqrt((32768 ** 2 * 10 ** (part.levelDb / 10)) / Math.max(1, e / pcm.length));
      const x = Float64Array.from(pcm, (v) => v * gain);
      for (const v of x) speechPower += v * v;
      speechSamples += x.length;
      chunks.push(x);
      texts.push(part.text);
      voice = part.voice;
      speechEnd = at + x.length;
    }
    at += chunks[chunks.length - 1].length;
  }
  let beep: AmdItem['beep'] = null;
  if (p.beep) {
    chunks.push(new Float64Array(Math.round(p.beep.gap * RATE)));
    at += chunks[chunks.length - 1].length;
    const n = Math.round(p.beep.duration * RATE);
    const amp = 32768 * 10 ** (p.beep.levelDb / 20) * Math.SQRT2;
    const ramp = 40; // 5 ms on/off ramps, as a generated beep has
    const tone = new Float64Array(n);
    for (let i = 0; i < n; i++) tone[i] = amp * Math.min(1, i / ramp, (n - i) / ramp) * Math.sin((2 * Math.PI * p.beep.hz * i) / RATE);
    chunks.push(tone);
    beep = { hz: p.beep.hz, startMs: Math.round((at / RATE) * 1000), durationMs: Math.round(p.beep.duration * 1000) };
    at += n;
  }
  chunks.push(new Float64Array(Math.round(p.tail * RATE)));
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const mix = new Float64Array(total);
  let off = 0;
  for (const c of chunks) mix.set(c, off), (off += c.length);
  if (p.noise !== 'none') {
    const nz = noise(p.noise, total, seed, 'validation', (n) => new Float64Array(n));
    let np = 0;
    for (const v of nz) np += v * v;
    const gain = Math.sqrt(speechPower / Math.max(1, speechSamples) / (np / total) / 10 ** (p.snr / 10));
    for (let i = 0; i < total; i++) mix[i] += gain * nz[i];
  }
  const pcm = Int16Array.from(mix, (v) => Math.max(-32768, Math.min(32767, Math.round(v))));
  return {
    id: `${p.truth}-${index}`, truth: p.truth, ulaw: ulawEncode(pcm).slice(), text: texts.join(' '), voice, noise: p.noise, snr: p.snr,
    speechEndMs: Math.round((speechEnd / RATE) * 1000), beep,
  };
}

/** `perClass` people and as many machines, seeded (the cache makes a second build cost only the mixing). */
export function buildAmdCorpus(perClass = 80, seed = 17): AmdItem[] {
  const r = rng(seed);
  const plans = [...Array.from({ length: perClass }, () => plan('human', r)), ...Array.from({ length: perClass }, () => plan('machine', r))];
  synthesise(plans.flatMap((p) => p.parts.flatMap((q) => ('text' in q ? [{ voice: q.voice, rate: q.rate, pitch: q.pitch, text: q.text }] : []))));
  return plans.map((p, i) => render(p, seed * 1000 + i, i));
}
