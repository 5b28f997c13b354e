// DtmfDetector against generated key presses (levels, twist, frequency error,
// duration, frame sizes, encodings) and against material that must never
// produce a digit: synthesised speech in several voices, music-like chords,
// white noise. Signals come from bench/signals.ts, shared with the bench.
import { describe, expect, it } from 'vitest';
import { DtmfDetector, type DtmfDetectorOptions } from '../../src/media/dtmf.js';
import { alawEncode, ulawEncode } from '../../src/media/g711.js';
import { DIGITS, dtmfSequence, frames, musicLike, speech, whiteNoise, type ToneSpec } from '../../bench/signals.js';

function detect(input: Uint8Array | Int16Array, frameSize = 160, opts?: DtmfDetectorOptions): string {
  const d = new DtmfDetector(opts);
  let out = '';
  for (const f of frames(input, frameSize)) out += d.process(f).join('');
  d.close();
  return out;
}
// ulawEncode returns a view into a pooled slab; copy so later calls cannot reuse it.
const ulaw = (pcm: Int16Array) => ulawEncode(pcm).slice();

describe('DtmfDetector: key presses', () => {
  for (const level of [0.5, 0.15, 0.05]) {
    for (const twistDb of [0, 4, -6]) {
      it(`detects all 16 digits at level ${level}, twist ${twistDb} dB`, () => {
        for (let seed = 1; seed <= 3; seed++) {
          expect(detect(ulaw(dtmfSequence(DIGITS, { level, twistDb, seed })))).toBe(DIGITS);
        }
      });
    }
  }

  it('decodes a sequence exactly whatever the frame size', () => {
    const seq = '123A456B789C*0#D';
    const u = ulaw(dtmfSequence(seq, { level: 0.15, seed: 9 }));
    for (const size of [1, 7, 80, 160, 237, 1000, 4800]) expect(detect(u, size)).toBe(seq);
  });

  it('reads A-law, Int16Array PCM and little-endian PCM16 bytes', () => {
    const pcm = dtmfSequence('159#', { level: 0.15, seed: 3 });
    expect(detect(alawEncode(pcm).slice(), 160, { encoding: 'alaw' })).toBe('159#');
    expect(detect(pcm, 160)).toBe('159#');
    const bytes = new Uint8Array(pcm.buffer.slice(0));
    expect(detect(bytes, 320, { encoding: 'pcm16' })).toBe('159#');
  });

  it('rejects 20 ms tones and accepts 40 ms tones', () => {
    for (let seed = 1; seed <= 10; seed++) {
      expect(detect(ulaw(dtmfSequence(DIGITS, { level: 0.15, toneMs: 20, seed })))).toBe('');
      expect(detect(ulaw(dtmfSequence(DIGITS, { level: 0.15, toneMs: 40, gapMs: 40, seed })))).toBe(DIGITS);
    }
  });

  it('accepts ±1.5 % frequency error and rejects ±5 %', () => {
    for (const level of [0.5, 0.05]) {
      const spec = (freqScale: number): ToneSpec => ({ level, freqScale, seed: 4 });
      expect(detect(ulaw(dtmfSequence(DIGITS, spec(1.015))))).toBe(DIGITS);
      expect(detect(ulaw(dtmfSequence(DIGITS, spec(0.985))))).toBe(DIGITS);
      expect(detect(ulaw(dtmfSequence(DIGITS, spec(1.05))))).toBe('');
      expect(detect(ulaw(dtmfSequence(DIGITS, spec(0.95))))).toBe('');
    }
  });

  it('reports a long key press once and a repeated key twice', () => {
    expect(detect(ulaw(dtmfSequence('5', { level: 0.15, toneMs: 2000 })))).toBe('5');
    expect(detect(ulaw(dtmfSequence('55', { level: 0.15, gapMs: 50 })))).toBe('55');
  });

  it('applies the twist and level options', () => {
    const high = ulaw(dtmfSequence(DIGITS, { level: 0.15, twistDb: 4, seed: 2 }));
    expect(detect(high, 160, { reverseTwistDb: 0 })).toBe('');
    const low = ulaw(dtmfSequence(DIGITS, { level: 0.15, twistDb: -6, seed: 2 }));
    expect(detect(low, 160, { normalTwistDb: 2 })).toBe('');
    const quiet = ulaw(dtmfSequence(DIGITS, { level: 0.05, seed: 2 }));
    expect(detect(quiet, 160, { minLevelDbm0: -10 })).toBe('');
  });

  it('reset() drops a tone in progress; after close() every call but close() throws', () => {
    // 50 ms of tone, split 25 + 25 ms by the reset: neither half is a key press.
    const u = ulaw(dtmfSequence('7', { level: 0.15, toneMs: 50, gapMs: 0 }));
    const d = new DtmfDetector();
    expect(d.process(u.subarray(0, 200))).toEqual([]);
    d.reset();
    expect(d.process(u.subarray(200))).toEqual([]);
    expect(detect(u)).toBe('7');
    d.close();
    for (const call of [() => d.process(u), () => d.reset()]) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    }
    // close() itself is idempotent, like every native wrapper's.
    expect(() => d.close()).not.toThrow();
  });
});

describe('DtmfDetector: no false digits', () => {
  it('on over 60 s of synthesised speech in English, German and French', () => {
    const pcm = speech();
    expect(pcm.length / 8000).toBeGreaterThan(60);
    expect(detect(ulaw(pcm))).toBe('');
    // Louder (clipped) and quieter copies move the speech across the μ-law segments.
    const loud = pcm.map((v) => Math.max(-32768, Math.min(32767, v * 4)));
    expect(detect(ulaw(loud))).toBe('');
    expect(detect(ulaw(pcm.map((v) => v >> 3)))).toBe('');
  });

  it('on music-like chords with vibrato and on white noise', () => {
    for (let seed = 1; seed <= 3; seed++) expect(detect(ulaw(musicLike(60, seed)))).toBe('');
    expect(detect(ulaw(whiteNoise(30, 0.5, 1)))).toBe('');
    expect(detect(ulaw(whiteNoise(30, 0.02, 2)))).toBe('');
  });

  it('on speech mixed with music and noise', () => {
    const pcm = speech();
    const music = musicLike(pcm.length / 8000, 11);
    const noise = whiteNoise(pcm.length / 8000, 0.03, 12);
    const mix = pcm.map((v, i) => Math.max(-32768, Math.min(32767, v + music[i] + noise[i])));
    expect(detect(ulaw(mix))).toBe('');
  });
});
