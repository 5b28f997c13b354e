// The STT silence gate (src/providers/deepgram/stt.ts): long silence is not
// streamed, the pre-roll before speech and the post-roll after it are, the
// words still arrive with endpointing and UtteranceEnd, and with the gate off
// (or without a VAD verdict) every byte goes. The official SDK against the
// emulator over real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { deepgramClient } from '../../src/providers/deepgram/client.js';
import { DeepgramStt } from '../../src/providers/deepgram/stt.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import type { Transcript } from '../../src/providers/types.js';
import { sleep, waitFor } from './helpers.js';

const FRAME = 160;
const silence = () => new Uint8Array(FRAME).fill(0xff);

/** Sends n frames with the given VAD verdict, a little faster than real time. */
async function frames(send: (f: Uint8Array, speech: boolean) => void, list: Uint8Array[], speech: boolean): Promise<void> {
  for (let i = 0; i < list.length; i++) {
    send(list[i], speech);
    if (i % 5 === 4) await sleep(1);
  }
}

function speechFrames(text: string): Uint8Array[] {
  const audio = synthesize(text);
  const out: Uint8Array[] = [];
  for (let i = 0; i + FRAME <= audio.length; i += FRAME) out.push(audio.subarray(i, i + FRAME));
  return out;
}

describe('STT silence gate', () => {
  let emu: Emulators;
  beforeAll(async () => {
    emu = await startEmulators({ deepgram: { sttFinalDelayMs: 20, ttsFirstByteMs: 20, ttsRealtimeFactor: 0.01, phrases: ['Book a table for two.'] } });
  });
  afterAll(async () => {
    await emu?.close();
  });

  async function run(gate: boolean, verdicts: boolean) {
    const client = deepgramClient({ apiKey: 'k', url: emu.deepgramUrl });
    const transcripts: Transcript[] = [];
    const utteranceEnds: number[] = [];
    const s = await new DeepgramStt(client, gate).open({ endpointingMs: 300, utteranceEndMs: 1000 }, {
      onTranscript: (t) => transcripts.push(t),
      onUtteranceEnd: (t) => utteranceEnds.push(t),
    });
    const before = emu.deepgram.stats.sttAudioBytes;
    const send = (f: Uint8Array, speech: boolean) => s.send(f, false, verdicts ? speech : undefined);
    const quiet = (ms: number) => Array.from({ length: ms / 20 }, silence);
    const words = speechFrames('Could you please book a table for two people tonight');
    await frames(send, quiet(3000), false); // 3 s before the caller speaks
    await frames(send, words, true);
    await frames(send, quiet(5000), false); // 5 s after
    await waitFor(() => utteranceEnds.length > 0, 10_000, 'UtteranceEnd');
    await s.close();
    await sleep(100);
    const sent = emu.deepgram.stats.sttAudioBytes - before;
    return { sent, total: (3000 + 5000) * 8 + words.length * FRAME, speech: words.length * FRAME, transcripts };
  }

  it('streams the speech with 400 ms before and 1.5 s after it, not the long silence; the words arrive', async () => {
    const r = await run(true, true);
    expect(r.sent).toBe(r.speech + 400 * 8 + 1500 * 8);
    expect(r.sent).toBeLessThan(r.total);
    const final = r.transcripts.find((t) => t.isFinal && t.speechFinal);
    expect(final?.text).toBe('Book a table for two.');
  });

  it('sends every byte with the gate off, or when no VAD verdict is given', async () => {
    const off = await run(false, true);
    expect(off.sent).toBe(off.total);
    const unknown = await run(true, false);
    expect(unknown.sent).toBe(unknown.total);
    expect(off.transcripts.find((t) => t.isFinal)?.text).toBe('Book a table for two.');
  });
});
