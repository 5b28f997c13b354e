// MediaChannel: the fused per-frame path gives the same VAD decisions as the
// stand-alone Vad, reports in-band DTMF through takeDigits(), and reads A-law.
import { describe, expect, it } from 'vitest';
import { alawEncode, ulawEncode } from '../../src/media/g711.js';
import { FRAME_DIGITS, FRAME_END, FRAME_SPEECH, FRAME_START, MediaChannel } from '../../src/media/media-channel.js';
import { Vad } from '../../src/media/vad.js';
import { dtmfSequence } from '../../bench/signals.js';
import { speak } from '../../bench/vad/corpus.js';

function withSilence(s: Int16Array): Int16Array {
  const pcm = new Int16Array(16000 + s.length);
  pcm.set(s, 8000);
  return pcm;
}

describe('MediaChannel', () => {
  it('matches the stand-alone Vad frame for frame', () => {
    const u = ulawEncode(withSilence(speak('en-gb', 150, 40, 'Please read me the last four digits of the card.'))).slice();
    const vad = new Vad();
    const ch = new MediaChannel();
    let starts = 0;
    let ends = 0;
    for (let i = 0; i + 160 <= u.length; i += 160) {
      const f = u.subarray(i, i + 160);
      const a = vad.process(f);
      const code = ch.process(f);
      expect((code & FRAME_SPEECH) !== 0).toBe(a.speech);
      expect(MediaChannel.probability(code)).toBeCloseTo(a.probability, 6);
      expect(MediaChannel.vadResult(code)).toEqual(a);
      if (code & FRAME_START) starts++;
      if (code & FRAME_END) ends++;
      expect(code & FRAME_DIGITS).toBe(0);
    }
    expect(starts).toBeGreaterThanOrEqual(1);
    expect(ends).toBe(starts);
    ch.close();
    vad.close();
  });

  it('reports in-band DTMF digits once each when enabled, never when not', () => {
    const pcm = dtmfSequence('1590#*', { level: 0.15, seed: 5 });
    for (const [encoding, bytes] of [['ulaw', ulawEncode(pcm).slice()], ['alaw', alawEncode(pcm).slice()]] as const) {
      const on = new MediaChannel({ encoding, dtmf: true });
      const off = new MediaChannel({ encoding });
      let digits = '';
      for (let i = 0; i + 160 <= bytes.length; i += 160) {
        const f = bytes.subarray(i, i + 160);
        if (on.process(f) & FRAME_DIGITS) digits += on.takeDigits().join('');
        expect(off.process(f) & FRAME_DIGITS).toBe(0);
      }
      expect(digits).toBe('1590#*');
      expect(on.takeDigits()).toEqual([]);
      on.close();
      off.close();
    }
  });
});
