// Speech-like audio for the TTS emulator: voiced syllables (a glottal pulse
// train through two formant resonators, with an attack/decay envelope)
// separated by short gaps, so VAD, energy meters and listeners treat it as
// speech. Its length follows the text at a typical speaking rate.
import { ulawEncode } from '../../media/g711.js';

const RATE = 8000;
/** Typical conversational rate: about 14 characters per second. */
export const MS_PER_CHAR = 70;

function resonator(freq: number, bw: number) {
  const r = Math.exp((-Math.PI * bw) / RATE);
  const a1 = 2 * r * Math.cos((2 * Math.PI * freq) / RATE);
  const a2 = -r * r;
  let y1 = 0;
  let y2 = 0;
  return (x: number) => {
    const y = x + a1 * y1 + a2 * y2;
    y2 = y1;
    y1 = y;
    return y;
  };
}

/**
 * Texts synthesized lately: the emulators say the same canned sentences over
 * and over (a load run's hundreds of calls, the same few replies), and the
 * formant synthesis was a seventh of the emulator process's CPU under
 * `npm run load`. Bounded to 16 MB of audio and text (oldest first out); each caller gets its own copy.
 */
const recent = new Map<string, Uint8Array>();
const RECENT_MAX_BYTES = 16 * 1024 * 1024;
let recentBytes = 0;

/** Deterministic audio for `text`: same text, same samples (a fresh copy each call). */
export function synthesize(text: string): Uint8Array {
  const hit = recent.get(text);
  if (hit) return hit.slice();
  const audio = synthesizeNew(text);
  // The key counts too: a long run of spaces is a long text with little audio.
  if (audio.length + text.length <= RECENT_MAX_BYTES / 16) {
    recent.set(text, audio);
    recentBytes += audio.length + text.length;
    for (const [k, v] of recent) {
      if (recentBytes <= RECENT_MAX_BYTES) break;
      recent.delete(k);
      recentBytes -= v.length + k.length;
    }
  }
  return audio.slice();
}

function synthesizeNew(text: string): Uint8Array {
  const clean = text.trim();
  const totalMs = Math.max(200, clean.length * MS_PER_CHAR);
  const pcm = new Int16Array(Math.round((totalMs / 1000) * RATE));
  let seed = 0;
  for (let i = 0; i < clean.length; i++) seed = (seed * 31 + clean.charCodeAt(i)) >>> 0;
  const vowels = [
    [730, 1090], [270, 2290], [530, 1840], [570, 840], [300, 870], [660, 1720],
  ];
  let pos = 0;
  let syll = 0;
  while (pos < pcm.length) {
    const v = vowels[(seed + syll * 7) % vowels.length];
    const f1 = resonator(v[0], 90);
    const f2 = resonator(v[1], 120);
    const len = Math.min(pcm.length - pos, Math.round(RATE * (0.14 + ((seed >> syll % 13) & 3) * 0.02)));
    const f0 = 110 + ((seed >> (syll % 7)) & 31);
    const period = Math.round(RATE / f0);
    for (let i = 0; i < len; i++) {
      const excitation = i % period === 0 ? 1 : 0;
      const env = Math.min(1, i / 160) * Math.min(1, (len - i) / 240);
      const s = f2(f1(excitation)) * 0.25;
      pcm[pos + i] = Math.max(-32768, Math.min(32767, Math.round(s * 9000 * env)));
    }
    pos += len + Math.round(RATE * 0.045); // gap between syllables (left as silence)
    syll++;
  }
  return ulawEncode(pcm);
}
