// Deepgram Aura-2 text-to-speech over its WebSocket (μ-law 8 kHz, raw).
// Connections are opened ahead of need (a small warm pool per voice) so the
// first sentence of a call does not pay a handshake, and so a stream can move
// to a fresh connection before Deepgram's per-connection flush limit (20 per
// 60 s) instead of waiting for its window (see tts-stream.ts).
import type { DeepgramClient } from '@deepgram/sdk';
import type { TextToSpeech, TtsEvents, TtsOptions, TtsStream } from '../types.js';
import { DeepgramTtsStream, type Socket } from './tts-stream.js';

export const DEFAULT_VOICE = 'aura-2-thalia-en';

async function connectSocket(client: DeepgramClient, voice: string): Promise<Socket> {
  const s = await client.speak.v1.connect({ model: voice, encoding: 'mulaw', sample_rate: '8000', reconnectAttempts: 0 } as never);
  s.connect();
  await s.waitForOpen();
  return s;
}

export class DeepgramTts implements TextToSpeech {
  readonly name = 'deepgram';
  private readonly pool = new Map<string, Promise<Socket>[]>();
  private closed = false;

  constructor(private readonly client: DeepgramClient, private readonly warm = 2) {}

  /** Opens `warm` sockets for the voice ahead of need. */
  prewarm(voice = DEFAULT_VOICE): void {
    const list = this.pool.get(voice) ?? [];
    while (!this.closed && list.length < this.warm) {
      const p = connectSocket(this.client, voice);
      p.catch(() => {
        // A failed warm socket leaves the pool, unless open() already took it
        // (indexOf -1: splice(-1, 1) would drop the newest warm socket instead,
        // leaving it open and unowned).
        const l = this.pool.get(voice);
        const i = l ? l.indexOf(p) : -1;
        if (i >= 0) l!.splice(i, 1);
      });
      list.push(p);
    }
    this.pool.set(voice, list);
  }

  /** An open socket for the voice: a warm one from the pool (refilled behind it), else a new one. */
  private async take(voice: string): Promise<Socket> {
    let socket: Socket | null = null;
    const list = this.pool.get(voice) ?? [];
    while (list.length && !socket) {
      const candidate = await list.shift()!.catch(() => null);
      if (candidate && candidate.readyState === 1) socket = candidate;
    }
    this.prewarm(voice);
    return socket ?? connectSocket(this.client, voice);
  }

  async open(opts: TtsOptions, events: TtsEvents): Promise<TtsStream> {
    const voice = opts.voice ?? DEFAULT_VOICE;
    // Later connections of the stream (a switch before the flush limit, a reopen) come from the pool too.
    if (opts.usage) opts.usage.ttsModel = voice;
    const stream = new DeepgramTtsStream(() => this.take(voice), events, opts.usage);
    stream.start(await this.take(voice));
    return stream;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const list of this.pool.values()) {
      for (const p of list) {
        void p.then((s) => s.close()).catch(() => {});
      }
    }
    this.pool.clear();
  }
}
