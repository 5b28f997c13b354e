// Deepgram's TTS flush limit (20 Flush messages per 60 s per connection):
// the emulator enforces it as the service does, and the stream never waits
// for the window: it moves to a fresh connection, keeping the audio in flush
// group order (exactly the bytes of each group's text) across the switch,
// through a Clear and through a dropped socket, and closes what it used.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { deepgramClient } from '../../src/providers/deepgram/client.js';
import { DeepgramTts } from '../../src/providers/deepgram/tts.js';
import type { DeepgramTtsStream } from '../../src/providers/deepgram/tts-stream.js';
import { sleep, waitFor } from './helpers.js';

/** Everything a stream delivered, in order: audio bytes per flush group. */
class Recorder {
  groups: number[][] = [[]];
  flushed: number[] = [];
  cleared = 0;
  deferredSeen = false;
  stream: DeepgramTtsStream | null = null;
  readonly events = {
    onAudio: (a: Uint8Array) => {
      this.check();
      for (const b of a) this.groups[this.groups.length - 1].push(b);
    },
    onFlushed: (n: number) => {
      this.check();
      this.flushed.push(n);
      this.groups.push([]);
    },
    onCleared: () => this.cleared++,
  };
  check(): void {
    if (this.stream?.flushDeferred) this.deferredSeen = true;
  }
  /** Audio received since the last Flushed (or the clear that reset it). */
  restartGroup(): void {
    this.groups[this.groups.length - 1] = [];
  }
}

const sentence = (i: number) => `Sentence number ${i} of this reply.`;
const expectAudioOf = (got: number[], text: string) => expect(Buffer.from(got).equals(Buffer.from(synthesize(text)))).toBe(true);

describe('TTS flush limit', () => {
  let emu: Emulators;
  let tts: DeepgramTts;
  let baseline: number;
  beforeAll(async () => {
    emu = await startEmulators({ deepgram: { ttsFirstByteMs: 5, ttsRealtimeFactor: 0.01 } });
    tts = new DeepgramTts(deepgramClient({ apiKey: 'test-key', url: emu.deepgramUrl }), 1);
    baseline = emu.deepgram.stats.ttsOpen;
  });
  afterAll(async () => {
    await tts?.close();
    await emu?.close();
  });

  async function open(): Promise<{ s: DeepgramTtsStream; rec: Recorder }> {
    const rec = new Recorder();
    const s = (await tts.open({}, rec.events)) as DeepgramTtsStream;
    rec.stream = s;
    return { s, rec };
  }

  it('the emulator answers a 21st flush on one connection with Deepgram\'s Warning and no audio', async () => {
    const ws = new WebSocket(`${emu.deepgramUrl.replace('http', 'ws')}/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000`, { headers: { authorization: 'Token test-key' } });
    const messages: Record<string, unknown>[] = [];
    ws.on('message', (data, isBinary) => {
      if (!isBinary) messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
    });
    await new Promise((r) => ws.once('open', r));
    const warningsBefore = emu.deepgram.stats.flushWarnings;
    for (let i = 0; i < 21; i++) {
      ws.send(JSON.stringify({ type: 'Speak', text: 'Hi. ' }));
      ws.send(JSON.stringify({ type: 'Flush' }));
    }
    await waitFor(() => messages.filter((m) => m.type === 'Flushed').length === 20 && messages.some((m) => m.type === 'Warning'), 5000, '20 Flushed and a Warning');
    await sleep(50);
    expect(messages.filter((m) => m.type === 'Flushed').length).toBe(20);
    expect(messages.filter((m) => m.type === 'Warning')).toEqual([
      { type: 'Warning', warn_code: 'EXCESSIVE_FLUSH', warn_msg: 'Rate limit exceeded for flushes. Please try again later.' },
    ]);
    expect(emu.deepgram.stats.flushWarnings).toBe(warningsBefore + 1);
    ws.close();
    await waitFor(() => emu.deepgram.stats.ttsOpen === baseline, 5000, 'the raw socket to close');
  });

  it('45 flushes at once: no flush waits, no Warning, every group\'s audio in order, then every socket closed', async () => {
    const warnings = emu.deepgram.stats.flushWarnings;
    const connections = emu.deepgram.stats.ttsConnections;
    const { s, rec } = await open();
    let maxConnections = 0;
    for (let i = 0; i < 45; i++) {
      s.speak(sentence(i));
      s.flush();
      maxConnections = Math.max(maxConnections, s.connections);
    }
    await waitFor(() => rec.flushed.length === 45, 15_000, '45 Flushed');
    expect(rec.flushed).toEqual([...Array(45).keys()]);
    for (let i = 0; i < 45; i++) expectAudioOf(rec.groups[i], sentence(i));
    expect(rec.deferredSeen).toBe(false);
    expect(emu.deepgram.stats.flushWarnings).toBe(warnings);
    // Three connections of at most 20 flushes each (the pool refills behind them).
    expect(maxConnections).toBeGreaterThanOrEqual(2);
    expect(emu.deepgram.stats.ttsConnections - connections).toBeGreaterThanOrEqual(3);
    await waitFor(() => s.connections === 1, 5000, 'drained connections retired');
    await s.close();
    await tts.close();
    await waitFor(() => emu.deepgram.stats.ttsOpen === baseline, 5000, `every TTS socket closed (${emu.deepgram.stats.ttsOpen} open, ${baseline} before)`);
    tts = new DeepgramTts(deepgramClient({ apiKey: 'test-key', url: emu.deepgramUrl }), 1);
  });

  it('switches at an idle point when the connection is near its limit: the old socket closes at once', async () => {
    const warnings = emu.deepgram.stats.flushWarnings;
    const { s, rec } = await open();
    for (let i = 0; i < 16; i++) {
      s.speak(sentence(i));
      s.flush();
    }
    expect(s.flushesLeft).toBe(4);
    // Idle with 4 of 20 left: the stream moves to a fresh connection before the next group.
    await waitFor(() => rec.flushed.length === 16 && s.flushesLeft === 20, 10_000, '16 Flushed and a fresh connection');
    expect(s.connections).toBe(1);
    s.speak(sentence(16));
    s.flush();
    expect(s.flushesLeft).toBe(19);
    await waitFor(() => rec.flushed.length === 17, 5000, 'Flushed on the new connection');
    for (let i = 0; i < 17; i++) expectAudioOf(rec.groups[i], sentence(i));
    expect(emu.deepgram.stats.flushWarnings).toBe(warnings);
    await s.close();
  });

  for (const when of ['during', 'after'] as const) {
    it(`a Clear ${when} a switch drops all audio of the cleared groups on both sockets`, async () => {
      const { s, rec } = await open();
      for (let i = 0; i < 26; i++) {
        s.speak(sentence(i));
        s.flush();
      }
      expect(s.connections).toBe(2); // 20 on the first socket, 6 held behind it on the second
      if (when === 'after') await waitFor(() => rec.flushed.length >= 21, 10_000, 'the switch');
      s.clear();
      const flushedAtClear = rec.flushed.length;
      rec.restartGroup();
      expect(s.connections).toBe(1);
      await waitFor(() => rec.cleared === 1 || when === 'during', 5000, 'Cleared');
      await sleep(150);
      expect(rec.flushed.length).toBe(flushedAtClear);
      expect(rec.groups[rec.groups.length - 1]).toEqual([]);
      s.speak('After the clear.');
      s.flush();
      await waitFor(() => rec.flushed.length === flushedAtClear + 1, 5000, 'the next group');
      expectAudioOf(rec.groups[rec.groups.length - 2], 'After the clear.');
      await s.close();
    });
  }

  it('flushes the service refuses after all (it counts differently) are sent again on a fresh socket, in order', async () => {
    const warnings = emu.deepgram.stats.flushWarnings;
    emu.deepgram.faults.ttsFlushLimit = 5;
    try {
      const { s, rec } = await open();
      for (let i = 0; i < 10; i++) {
        s.speak(sentence(i));
        s.flush();
      }
      await waitFor(() => rec.flushed.length === 10, 10_000, '10 Flushed');
      expect(emu.deepgram.stats.flushWarnings).toBe(warnings + 5);
      for (let i = 0; i < 10; i++) expectAudioOf(rec.groups[i], sentence(i));
      await s.close();
    } finally {
      emu.deepgram.faults.ttsFlushLimit = undefined;
    }
  });

  it('a socket dropped during a switch is reopened and its groups re-sent, in order', async () => {
    const { s, rec } = await open();
    for (let i = 0; i < 20; i++) {
      s.speak(sentence(i));
      s.flush();
    }
    emu.deepgram.faults.ttsDropOnSpeak = true; // the next Speak anywhere: the new connection's first
    for (let i = 20; i < 25; i++) {
      s.speak(sentence(i));
      s.flush();
    }
    await waitFor(() => rec.flushed.length === 25, 10_000, '25 Flushed');
    expect(emu.deepgram.faults.ttsDropOnSpeak).toBe(false);
    for (let i = 0; i < 25; i++) expectAudioOf(rec.groups[i], sentence(i));
    await s.close();
    await tts.close();
    await waitFor(() => emu.deepgram.stats.ttsOpen === baseline, 5000, `every TTS socket closed (${emu.deepgram.stats.ttsOpen} open, ${baseline} before)`);
    tts = new DeepgramTts(deepgramClient({ apiKey: 'test-key', url: emu.deepgramUrl }), 1);
  });
});
