// Deepgram provider leaks and guards (issue 13 items 15 and 1), with a fake
// SDK client whose sockets open when the test says so:
// - an STT reconnect that completes after close() must not attach its socket
//   (the shared KeepAlive would keep it open forever);
// - a failed warm TTS socket must not take a good one out of the pool (which
//   then stays open, owned by nobody);
// - a throwing event handler ends the stream's call through onError, not the process.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DeepgramClient } from '@deepgram/sdk';
import { DeepgramStt, sttStreamsOpen } from '../../src/providers/deepgram/stt.js';
import { DeepgramTts } from '../../src/providers/deepgram/tts.js';
import { internalErrors } from '../../src/metrics/index.js';

class FakeSocket extends EventEmitter {
  readyState = 0;
  closed = false;
  sent: string[] = [];
  private opened!: () => void;
  private failed!: (err: Error) => void;
  private readonly openPromise = new Promise<void>((resolve, reject) => {
    this.opened = resolve;
    this.failed = reject;
  });

  connect(): void {}
  waitForOpen(): Promise<void> {
    return this.openPromise;
  }
  open(): void {
    this.readyState = 1;
    this.opened();
  }
  fail(): void {
    this.readyState = 3;
    this.failed(new Error('connect failed'));
  }
  /** The far end drops the connection. */
  drop(code = 1011): void {
    this.readyState = 3;
    this.emit('close', { code });
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.readyState = 3;
    this.emit('close', { code: 1000 });
  }
  sendMedia(): void {}
  sendKeepAlive(): void {}
  sendFinalize(): void {}
  sendCloseStream(): void {
    this.close();
  }
  sendText(m: { text: string }): void {
    this.sent.push(m.text);
  }
  sendFlush(): void {}
  sendClear(): void {}
  sendClose(): void {}
}

/** A client whose every connect() hands out the next FakeSocket; `auto` opens it at once. */
function fakeClient(auto: boolean) {
  const sockets: FakeSocket[] = [];
  const connect = async () => {
    const s = new FakeSocket();
    sockets.push(s);
    if (auto) queueMicrotask(() => s.open());
    return s;
  };
  const client = { listen: { v1: { connect } }, speak: { v1: { connect } } } as unknown as DeepgramClient;
  return { client, sockets };
}

const tick = () => new Promise((r) => setTimeout(r, 5));
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await tick();
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

async function internal(where: string): Promise<number> {
  return (await internalErrors.get()).values.find((v) => v.labels.where === where)?.value ?? 0;
}

describe('Deepgram STT', () => {
  it('a reconnect that completes after close() closes its socket and leaves nothing on the KeepAlive timer', async () => {
    const { client, sockets } = fakeClient(false);
    const openBefore = sttStreamsOpen();
    const opening = new DeepgramStt(client).open({}, { onTranscript: () => {} });
    await until(() => sockets.length === 1, 'the first socket');
    sockets[0].open();
    const stream = await opening;
    expect(sttStreamsOpen()).toBe(openBefore + 1);

    sockets[0].drop(); // the stream drops: a reconnect starts at once
    await until(() => sockets.length === 2, 'the reconnect');
    await stream.close(); // the call ends while the new socket is still opening
    expect(sttStreamsOpen()).toBe(openBefore);
    sockets[1].open(); // ... and then it opens
    await until(() => sockets[1].closed, 'the late socket to be closed');
    expect(sttStreamsOpen()).toBe(openBefore);
  });

  it('a throwing transcript handler ends that stream through onError and is counted, nothing escapes', async () => {
    const { client, sockets } = fakeClient(true);
    const errors: Error[] = [];
    const before = await internal('provider');
    const stream = await new DeepgramStt(client).open({}, {
      onTranscript: () => {
        throw new Error('handler bug');
      },
      onError: (err) => errors.push(err),
    });
    const results = { type: 'Results', is_final: true, speech_final: true, channel: { alternatives: [{ transcript: 'hello', confidence: 0.9 }] } };
    expect(() => sockets[0].emit('message', results)).not.toThrow();
    expect(errors.map((e) => e.message)).toEqual(['handler bug']);
    expect(await internal('provider')).toBe(before + 1);
    await stream.close();
  });
});

describe('Deepgram TTS pool', () => {
  it('a warm socket that fails after open() took it does not evict another warm socket; close() leaves no socket open', async () => {
    const { client, sockets } = fakeClient(false);
    const tts = new DeepgramTts(client, 2);
    tts.prewarm();
    await until(() => sockets.length === 2, 'two warm sockets');
    sockets[1].open(); // the second warm socket is ready; the first is still connecting
    const opening = tts.open({}, { onAudio: () => {} }); // takes the first (pending) one
    await tick();
    sockets[0].fail(); // ... which then fails
    let stream: Awaited<typeof opening> | undefined;
    void opening.then((s) => (stream = s));
    await until(() => {
      for (const s of sockets) if (s.readyState === 0) s.open();
      return stream !== undefined;
    }, 'open() to finish');
    if (!stream) throw new Error('unreachable');
    // Every socket that opened is either in use, in the pool, or closed on close().
    await stream.close();
    await tts.close();
    await tick();
    const leaked = sockets.filter((s) => s.readyState === 1 && !s.closed);
    expect(leaked).toEqual([]);
  });

  it('a throwing TTS handler ends that stream through onError and is counted', async () => {
    const { client, sockets } = fakeClient(true);
    const tts = new DeepgramTts(client, 0);
    const errors: Error[] = [];
    const before = await internal('provider');
    const stream = await tts.open({}, {
      onAudio: () => {},
      onFlushed: () => {
        throw new Error('flushed handler bug');
      },
      onError: (err) => errors.push(err),
    });
    stream.speak('Hello there.');
    stream.flush();
    expect(() => sockets[0].emit('message', { type: 'Flushed', sequence_id: 0 })).not.toThrow();
    await tick(); // control messages are chained (in order with Blob audio)
    expect(errors.map((e) => e.message)).toEqual(['flushed handler bug']);
    expect(await internal('provider')).toBe(before + 1);
    await stream.close();
    await tts.close();
  });
});
