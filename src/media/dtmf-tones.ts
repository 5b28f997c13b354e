// In-band DTMF: the keypad's dual tones as μ-law audio, for calls that cannot
// carry RFC 4733 events (Twilio Media Streams has no outbound DTMF message;
// a SIP peer that did not offer telephone-event). Each key is its row and
// column sine at -7 dBm0 apiece for 100 ms, then 100 ms of silence (the
// usual send timing, well inside receivers' 40 ms minimum tone and pause);
// `w` is a 500 ms pause, as in Twilio's sendDigits. The audio goes out
// through the call's normal playout, so it is paced and queued behind
// whatever the agent is already saying.
import { ulawEncode } from './g711.js';

const RATE = 8000;
const TONE_SAMPLES = 800; // 100 ms
const GAP_SAMPLES = 800; // 100 ms
const PAUSE_SAMPLES = 4000; // 500 ms
export const MAX_DTMF_DIGITS = 32;
const KEYS = '123A456B789C*0#D';
const ROWS = [697, 770, 852, 941];
const COLS = [1209, 1336, 1477, 1633];
/**
 * Peak of one tone at -7 dBm0: μ-law's largest sine (16-bit peak 32124) is
 * +3.17 dBm0 (G.711), so 0 dBm0 peaks at 32124 / 10^(3.17/20) ≈ 22 300.
 */
const TONE_PEAK = (32124 / 10 ** (3.17 / 20)) * 10 ** (-7 / 20);

/** Why `digits` cannot be sent (a message for the model), or null when it can. */
export function dtmfProblem(digits: unknown): string | null {
  if (typeof digits !== 'string' || digits.length === 0) return 'digits must be a non-empty string';
  if (digits.length > MAX_DTMF_DIGITS) return `at most ${MAX_DTMF_DIGITS} keys and pauses at a time`;
  if (!/^[0-9*#A-Dw]+$/.test(digits)) return 'digits may hold only 0-9, *, #, A-D and w (a half-second pause)';
  return null;
}

/** The μ-law audio for `digits` (validated with dtmfProblem first), a whole number of 20 ms frames. */
export function dtmfTones(digits: string): Uint8Array {
  let samples = 0;
  for (const d of digits) samples += d === 'w' ? PAUSE_SAMPLES : TONE_SAMPLES + GAP_SAMPLES;
  const pcm = new Int16Array(samples);
  let at = 0;
  for (const d of digits) {
    if (d === 'w') {
      at += PAUSE_SAMPLES;
      continue;
    }
    const k = KEYS.indexOf(d);
    if (k < 0) throw new RangeError(`not a DTMF key: ${JSON.stringify(d)}`);
    const low = (2 * Math.PI * ROWS[k >> 2]!) / RATE;
    const high = (2 * Math.PI * COLS[k & 3]!) / RATE;
    for (let i = 0; i < TONE_SAMPLES; i++) pcm[at + i] = Math.round(TONE_PEAK * (Math.sin(low * i) + Math.sin(high * i)));
    at += TONE_SAMPLES + GAP_SAMPLES;
  }
  return ulawEncode(pcm);
}
