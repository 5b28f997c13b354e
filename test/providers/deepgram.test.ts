// The official @deepgram/sdk, through our clients, against the emulator over
// real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { deepgramClient } from '../../src/providers/deepgram/client.js';
import { DeepgramStt } from '../../src/providers/deepgram/stt.js';
import { DeepgramTts } from '../../src/providers/deepgram/tts.js';
import type { Transcript } from '../../src/providers/types.js';
import { sendFrames, sleep, utteranceFrames, waitFor } from './helpers.js';

describe('Deepgram clients against the emulator', () => {
  let emu: Emulators;
  let stt: DeepgramStt;
  let tts: DeepgramTts;
  beforeAll(async () => {
    emu = await startEmulators({
      deepgram: { sttFinalDelayMs: 50, ttsFirstByteMs: 20, ttsRealtimeFactor: 0.01, phrases: ['Book a table for two.', 'At seven tonight.'] },
    });
    const client = deepgramClient({ apiKey: 'test-key', url: emu.deepgramUrl });
    stt = new DeepgramStt(client);
    tts = new DeepgramTts(client);
  });
  afterAll(async () => {
    await tts?.close();
    await emu?.close();
  });

  it('STT: audio → SpeechStarted, interim, final with speech_final, UtteranceEnd', async () => {
    const transcripts: Transcript[] = [];
    const utteranceEnds: number[] = [];
    const speechStarts: number[] = [];
    const s = await stt.open({ endpointingMs: 300, utteranceEndMs: 1000 }, {
      onTranscript: (t) => transcripts.push(t),
      onUtteranceEnd: (t) => utteranceEnds.push(t),
      onSpeechStarted: (t) => speechStarts.push(t),
    });
    await sendFrames((f) => s.send(f), utteranceFrames('Could you please book a table for two people tonight at a nice place', 1500));
    await waitFor(() => utteranceEnds.length > 0, 10_000, 'UtteranceEnd');
    expect(speechStarts.length).toBe(1);
    expect(transcripts.some((t) => !t.isFinal && t.text.length > 0)).toBe(true);
    const final = transcripts.find((t) => t.isFinal)!;
    expect(final).toMatchObject({ text: 'Book a table for two.', speechFinal: true, fromFinalize: false });
    expect(final.duration).toBeGreaterThan(1);
    await s.close();
    expect(emu.deepgram.stats.sttConnections).toBeGreaterThan(0);
  });

  it('STT: Finalize flushes pending words; CloseStream ends cleanly', async () => {
    const transcripts: Transcript[] = [];
    const s = await stt.open({ endpointingMs: 5000 }, { onTranscript: (t) => transcripts.push(t) });
    await sendFrames((f) => s.send(f), utteranceFrames('a short one here', 100));
    await sleep(50);
    s.finalize();
    await waitFor(() => transcripts.some((t) => t.isFinal), 5000, 'final after Finalize');
    expect(transcripts.find((t) => t.isFinal)).toMatchObject({ fromFinalize: true, text: 'Book a table for two.' });
    await s.close();
  });

  it('STT: a dropped socket mid-utterance reconnects, replays, and the words still arrive', async () => {
    const transcripts: Transcript[] = [];
    const reconnects: { replayedMs: number }[] = [];
    emu.deepgram.faults.sttDropAfterMs = 700; // mid-utterance
    const before = emu.deepgram.stats.sttConnections;
    const s = await stt.open({ endpointingMs: 300 }, { onTranscript: (t) => transcripts.push(t), onReconnected: (r) => reconnects.push(r) });
    await sendFrames((f) => s.send(f), utteranceFrames('this sentence is long enough to be cut in the middle of it', 1200), 3);
    await waitFor(() => transcripts.some((t) => t.isFinal && t.text), 10_000, 'final after reconnect');
    expect(reconnects.length).toBe(1);
    expect(reconnects[0].replayedMs).toBeGreaterThan(500);
    expect(emu.deepgram.stats.sttConnections).toBe(before + 2);
    const final = transcripts.find((t) => t.isFinal && t.text)!;
    expect(final.text).toBe('Book a table for two.');
    expect(final.start).toBeGreaterThanOrEqual(0); // continuous call timeline
    // the call goes on: a second utterance on the new connection
    await sendFrames((f) => s.send(f), utteranceFrames('and another thing to say now', 800));
    await waitFor(() => transcripts.filter((t) => t.isFinal && t.text).length >= 2, 10_000, 'second final');
    await s.close();
  });

  it('TTS: Speak/Flush → audio then Flushed; Clear → Cleared and no stale audio', async () => {
    let audio = 0;
    const flushed: number[] = [];
    let cleared = 0;
    let audioAtFlushed = -1;
    const s = await tts.open({}, {
      onAudio: (a) => (audio += a.length),
      onFlushed: (n) => {
        flushed.push(n);
        audioAtFlushed = audio;
      },
      onCleared: () => cleared++,
    });
    // Audio is taken from the WebSocket itself, not through the SDK's Blobs (see rawAudio).
    expect((s as unknown as { raw: boolean }).raw).toBe(true);
    s.speak('Hello there, this is a test of the speech synthesiser.');
    s.flush();
    await waitFor(() => flushed.length === 1, 5000, 'Flushed');
    await sleep(50);
    expect(audio).toBe(audioAtFlushed); // all of the segment's audio came before its Flushed
    // ~70 ms per character of speech-like audio, 8 bytes per ms
    expect(audio).toBeGreaterThan(50 * 70 * 8 * 0.8);
    s.speak('A long sentence that we will interrupt before it finishes playing out.');
    s.flush();
    await sleep(25);
    s.clear();
    const atClear = audio;
    await waitFor(() => cleared === 1, 5000, 'Cleared');
    await sleep(100);
    expect(audio).toBe(atClear);
    expect(flushed.length).toBe(1);
    s.speak('After the clear.');
    s.flush();
    await waitFor(() => flushed.length === 2, 5000, 'second Flushed');
    await s.close();
  });

  it('TTS: a dropped socket is reopened and the next sentence is still spoken', async () => {
    let audio = 0;
    const flushed: number[] = [];
    const s = await tts.open({}, { onAudio: (a) => (audio += a.length), onFlushed: (n) => flushed.push(n) });
    emu.deepgram.faults.ttsDropOnSpeak = true;
    s.speak('This sentence kills the socket.');
    s.flush();
    await waitFor(() => flushed.length === 1, 5000, 'Flushed on the reopened socket');
    expect(audio).toBeGreaterThan(0);
    s.speak('And this one is still spoken.');
    s.flush();
    await waitFor(() => flushed.length === 2, 5000, 'next sentence');
    await s.close();
  });

  it('TTS: connections are opened ahead of need', async () => {
    tts.prewarm();
    await sleep(100);
    const before = emu.deepgram.stats.ttsConnections;
    const s = await tts.open({}, { onAudio: () => {} });
    // the stream took a warm socket; the pool is refilled in the background
    await sleep(100);
    expect(emu.deepgram.stats.ttsConnections).toBe(before + 1);
    await s.close();
  });
});
