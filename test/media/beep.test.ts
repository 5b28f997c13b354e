// The media channel's beep detector: a steady 350–2,000 Hz tone of 250 ms
// or more is reported once (qualified at its 250th ms, with its frequency
// and start), and its end; shorter or out-of-range tones, dual tones
// (ringback, busy, DTMF), speech, music and noise never are.
import { describe, expect, it } from 'vitest';
import { alawEncode, ulawEncode } from '../../src/media/g711.js';
import { FRAME_BEEP, FRAME_BEEP_END, FRAME_BEEP_START, MediaChannel } from '../../src/media/media-channel.js';
import { dtmfSequence, musicLike, speech, whiteNoise } from '../../bench/signals.js';

const RATE = 8000;

function tones(freqs: number[], ms: number, amp = 0.3, leadMs = 500): Int16Array {
  const n = (ms * RATE) / 1000;
  const lead = (leadMs * RATE) / 1000;
  const out = new Int16Array(lead + n + RATE / 2);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const f of freqs) v += Math.sin((2 * Math.PI * f * i) / RATE);
    out[lead + i] = Math.round((amp / freqs.length) * 32767 * v);
  }
  return out;
}

interface Seen { starts: { atMs: number; hz: number; startMs: number }[]; ends: number; beepFrames: number }

function scan(bytes: Uint8Array, encoding: 'ulaw' | 'alaw' = 'ulaw', on = true, frame = 160): Seen {
  const ch = new MediaChannel({ encoding });
  if (on) ch.detectBeep(true);
  const seen: Seen = { starts: [], ends: 0, beepFrames: 0 };
  for (let i = 0; i + frame <= bytes.length; i += frame) {
    const code = ch.process(bytes.subarray(i, i + frame));
    if (code & FRAME_BEEP) seen.beepFrames++;
    if (code & FRAME_BEEP_START) {
      const b = ch.lastBeep()!;
      seen.starts.push({ atMs: ((i + frame) * 1000) / RATE, hz: b.hz, startMs: b.startMs });
    }
    if (code & FRAME_BEEP_END) seen.ends++;
  }
  ch.close();
  return seen;
}

const ulaw = (pcm: Int16Array) => ulawEncode(pcm).slice();

describe('beep detector', () => {
  it.each([350, 440, 1000, 1400, 2000])('finds a %i Hz beep once, with its frequency, start and end', (hz) => {
    const s = scan(ulaw(tones([hz], 600)));
    expect(s.starts).toHaveLength(1);
    expect(s.starts[0].hz).toBeCloseTo(hz, -1);
    expect(Math.abs(s.starts[0].startMs - 500)).toBeLessThanOrEqual(20);
    expect(s.starts[0].atMs).toBeGreaterThanOrEqual(750);
    expect(s.ends).toBe(1);
  });

  it('also in A-law, in 10 and 30 ms frames, and under white noise 17 dB down', () => {
    expect(scan(alawEncode(tones([850], 400)).slice(), 'alaw').starts).toHaveLength(1);
    expect(scan(ulaw(tones([1200], 400)), 'ulaw', true, 80).starts).toHaveLength(1);
    expect(scan(ulaw(tones([1200], 400)), 'ulaw', true, 240).starts).toHaveLength(1);
    const t = tones([1000], 500);
    const n = whiteNoise(t.length / RATE, 0.05, 3);
    expect(scan(ulaw(t.map((v, i) => v + n[i]))).starts).toHaveLength(1);
  });

  it('ignores tones under 250 ms and outside 350–2,000 Hz', () => {
    expect(scan(ulaw(tones([1000], 200))).starts).toHaveLength(0);
    expect(scan(ulaw(tones([300], 800))).starts).toHaveLength(0);
    expect(scan(ulaw(tones([2200], 800))).starts).toHaveLength(0);
  });

  it('ignores dual tones: ringback, busy, DTMF', () => {
    expect(scan(ulaw(tones([440, 480], 2000))).starts).toHaveLength(0);
    expect(scan(ulaw(tones([480, 620], 2000))).starts).toHaveLength(0);
    expect(scan(ulaw(dtmfSequence('1593#', { level: 0.3, toneMs: 500, gapMs: 100 }))).starts).toHaveLength(0);
  });

  it('never fires on speech, music or noise', () => {
    expect(scan(ulaw(speech())).beepFrames).toBe(0);
    expect(scan(ulaw(musicLike(60, 4))).beepFrames).toBe(0);
    expect(scan(ulaw(whiteNoise(10, 0.3, 9))).beepFrames).toBe(0);
  });

  it('is off unless asked for, and restarts clean', () => {
    const bytes = ulaw(tones([1000], 600));
    expect(scan(bytes, 'ulaw', false).beepFrames).toBe(0);
    const ch = new MediaChannel();
    expect(ch.lastBeep()).toBeNull();
    ch.detectBeep(true);
    for (let i = 0; i + 160 <= bytes.length; i += 160) ch.process(bytes.subarray(i, i + 160));
    expect(ch.lastBeep()).toMatchObject({ startMs: 500, durationMs: 600 });
    ch.reset();
    expect(ch.lastBeep()).toBeNull();
    ch.detectBeep(false);
    expect(ch.lastBeep()).toBeNull();
    ch.close();
  });
});
