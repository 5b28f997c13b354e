// How the Nova-3 STT stream (src/providers/deepgram/stt.ts) turns the
// caller's 20 ms frames into WebSocket messages: 200 ms messages while the
// caller speaks, every quiet frame at once around the end of speech when the
// session asks (`immediate`), except inside a gap between words (the first
// 40 ms of quiet, or half a shorter endpointing window). A fake socket
// records what would go out; the gate is off so every frame is sent.
import { describe, expect, it } from 'vitest';
import { DeepgramSttStream } from '../../src/providers/deepgram/stt.js';

const FRAME = 160;
const frame = () => new Uint8Array(FRAME).fill(0x55);

function stream(endpointingMs?: number) {
  const s = new DeepgramSttStream(null as never, { endpointingMs }, { onTranscript: () => {} }, false);
  const sent: number[] = [];
  (s as unknown as { socket: unknown }).socket = { sendMedia: (a: Uint8Array) => sent.push(a.length) };
  return { s, sent };
}

describe('STT batching', () => {
  it('sends speech in 200 ms messages', () => {
    const { s, sent } = stream();
    for (let i = 0; i < 25; i++) s.send(frame(), false, true);
    expect(sent).toEqual([1600, 1600]);
  });

  it('holds the first 40 ms of quiet after speech, then sends each quiet frame at once', () => {
    const { s, sent } = stream(300);
    for (let i = 0; i < 3; i++) s.send(frame(), false, true);
    // A 40 ms gap between words: nothing goes, the next word joins the batch.
    s.send(frame(), true, false);
    s.send(frame(), true, false);
    expect(sent).toEqual([]);
    s.send(frame(), false, true);
    // The end of speech: the third quiet frame sends everything batched, then each frame goes alone.
    s.send(frame(), true, false);
    s.send(frame(), true, false);
    expect(sent).toEqual([]);
    s.send(frame(), true, false);
    expect(sent).toEqual([9 * FRAME]);
    s.send(frame(), true, false);
    expect(sent).toEqual([9 * FRAME, FRAME]);
  });

  it('holds at most half of a short endpointing window', () => {
    const { s, sent } = stream(10);
    s.send(frame(), false, true);
    s.send(frame(), true, false);
    expect(sent).toEqual([2 * FRAME]);
  });

  it('sends at once when asked without a VAD verdict, and before any speech', () => {
    const a = stream();
    a.s.send(frame(), true);
    expect(a.sent).toEqual([FRAME]);
    const b = stream();
    b.s.send(frame(), true, false);
    expect(b.sent).toEqual([FRAME]);
  });

  it('finalize sends what is batched', () => {
    const { s, sent } = stream();
    for (let i = 0; i < 4; i++) s.send(frame(), false, true);
    s.finalize();
    expect(sent).toEqual([4 * FRAME]);
  });
});
