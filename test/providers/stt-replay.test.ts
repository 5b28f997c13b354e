// The STT stream keeps the last 5 s of audio in a ring for replay after a
// drop: whatever the message sizes and however often the ring wraps, the
// replay is exactly the last N bytes of what was sent, in message-sized copies.
import { describe, expect, it } from 'vitest';
import { DeepgramSttStream } from '../../src/providers/deepgram/stt.js';

type Ring = { remember(a: Uint8Array): void; tail(n: number): Uint8Array[] };

describe('STT replay ring', () => {
  it('returns exactly the last bytes sent, across wraps', () => {
    const s = new DeepgramSttStream(null as never, {}, { onTranscript: () => {} }) as unknown as Ring;
    const all: number[] = [];
    let v = 0;
    for (const size of [800, 800, 37, 160, 800, 799, 1, 800]) {
      // 60 messages of each size: the 40,000-byte ring wraps again and again
      for (let i = 0; i < 60; i++) {
        const a = Uint8Array.from({ length: size }, () => (v = (v * 33 + 7) & 255));
        s.remember(a);
        all.push(...a);
      }
      for (const n of [0, 1, 799, 800, 801, 12_345, 40_000, 50_000]) {
        const got = Buffer.concat(s.tail(n));
        const want = Buffer.from(all.slice(all.length - Math.min(n, 40_000, all.length)));
        expect(got.equals(want), `size ${size} n ${n}`).toBe(true);
        for (const c of s.tail(n)) expect(c.length).toBeLessThanOrEqual(1600); // one message (BATCH_BYTES)
      }
    }
  });
});
