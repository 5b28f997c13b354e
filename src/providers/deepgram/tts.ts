// Deepgram Aura-2 text-to-speech over its WebSocket (μ-law 8 kHz, raw).
// Connections are opened ahead of need (a small warm pool per voice) so the
// first sentence of a call does not pay a handshake. Speak per sentence,
// Flush within the service's limit (20 per 60 s), Clear on barge-in; audio
// after a Clear is dropped until Cleared arrives. A dropped socket is
// reopened and the text not yet synthesised is sent again.
import type { DeepgramClient } from '@deepgram/sdk';
import { checkpoint } from '../../checkpoint.js';
import { guard, reportInternalError } from '../../guard.js';
import { log } from '../../log.js';
import { providerErrors, wsCloseKind } from '../../metrics/index.js';
import type { TextToSpeech, TtsEvents, TtsOptions, TtsStream } from '../types.js';

type Socket = Awaited<ReturnType<DeepgramClient['speak']['v1']['connect']>>;

const FLUSH_LIMIT = 20;
const FLUSH_WINDOW_MS = 60_000;
export const DEFAULT_VOICE = 'aura-2-thalia-en';

async function connectSocket(client: DeepgramClient, voice: string): Promise<Socket> {
  const s = await client.speak.v1.connect({ model: voice, encoding: 'mulaw', sample_rate: '8000', reconnectAttempts: 0 } as never);
  s.connect();
  await s.waitForOpen();
  return s;
}

/**
 * The SDK hands every binary message to its listeners as a Blob (its
 * binaryAwareHandler wraps the ArrayBuffer the WebSocket delivered), and a
 * Blob gives its bytes back only asynchronously, through a copy: at a few
 * hundred calls that is several percent of a core and a steady stream of
 * garbage. The pinned SDK version (5.13) keeps the WebSocket and that handler
 * on the socket object; where both are there, binary messages are taken from
 * the WebSocket directly and text messages still go through the SDK's
 * handler. Returns false (and changes nothing) when the SDK is shaped
 * differently: audio then arrives as Blobs, slower but the same.
 */
function rawAudio(socket: Socket, onAudio: (bytes: Uint8Array) => void, onError: (err: unknown) => void): boolean {
  type Listener = (event: { data: unknown }) => void;
  const inner = socket as unknown as {
    socket?: { addEventListener?: (type: string, l: Listener) => void; removeEventListener?: (type: string, l: Listener) => void };
    binaryAwareHandler?: Listener;
  };
  const ws = inner.socket;
  const sdkHandler = inner.binaryAwareHandler;
  if (!ws || typeof ws.addEventListener !== 'function' || typeof ws.removeEventListener !== 'function' || typeof sdkHandler !== 'function') return false;
  ws.removeEventListener('message', sdkHandler);
  ws.addEventListener('message', guard('provider', (event: { data: unknown }) => {
    checkpoint();
    if (event.data instanceof ArrayBuffer) onAudio(new Uint8Array(event.data));
    else sdkHandler(event);
  }, onError));
  return true;
}

class DeepgramTtsStream implements TtsStream {
  private socket: Socket | null = null;
  private closed = false;
  /** Text sent since the last Flushed: re-sent if the socket drops. */
  private unconfirmed: string[] = [];
  private flushesPending = 0;
  private dropAudio = false;
  private chain: Promise<void> = Promise.resolve();
  private flushTimes: number[] = [];
  private deferredFlush: NodeJS.Timeout | null = null;

  constructor(private readonly client: DeepgramClient, private readonly voice: string, private readonly events: TtsEvents) {}

  /** Whether this socket's audio comes straight from the WebSocket (see rawAudio). */
  raw = false;

  /** A handler of this stream threw: end this call (through the pipeline), nothing else. */
  private readonly failed = (err: unknown): void => {
    if (this.closed) return;
    this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
  };

  private readonly chainFailed = (err: unknown): void => {
    reportInternalError('provider', err);
    this.failed(err);
  };

  attach(socket: Socket): void {
    this.socket = socket;
    this.raw = rawAudio(socket, (bytes) => this.audio(bytes), this.failed);
    // SDK event callbacks run under the guard: a throw ends this call, never the process.
    socket.on('message', guard('provider', (m: unknown) => {
      if (m instanceof Blob) {
        // Blob → bytes is async: chain to keep audio and control messages in order.
        this.chain = this.chain.then(async () => this.audio(new Uint8Array(await m.arrayBuffer()))).catch(this.chainFailed);
        return;
      }
      const msg = m as { type?: string; sequence_id?: number; description?: string };
      // With raw audio everything is synchronous, in arrival order already.
      if (this.raw) this.control(msg);
      else this.chain = this.chain.then(() => this.control(msg)).catch(this.chainFailed);
    }, this.failed));
    socket.on('close', guard('provider', (e: { code?: number; reason?: string }) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (this.closed) return;
      providerErrors.inc({ provider: 'tts', kind: wsCloseKind(e.code) });
      log.warn('deepgram tts socket dropped; reopening', { code: e.code });
      void this.reopen();
    }));
    socket.on('error', guard('provider', (err: unknown) => log.debug('deepgram tts socket error', { err })));
  }

  private audio(bytes: Uint8Array): void {
    if (!this.dropAudio && !this.closed) this.events.onAudio(bytes);
  }

  private control(msg: { type?: string; sequence_id?: number; description?: string }): void {
    if (msg.type === 'Flushed') {
      this.flushesPending = Math.max(0, this.flushesPending - 1);
      if (this.flushesPending === 0) this.unconfirmed = [];
      if (!this.dropAudio) this.events.onFlushed?.(msg.sequence_id ?? 0);
    } else if (msg.type === 'Cleared') {
      this.dropAudio = false;
      this.events.onCleared?.();
    } else if (msg.type === 'Warning') {
      log.warn('deepgram tts warning', { description: msg.description });
    }
  }

  private async reopen(): Promise<void> {
    for (const delay of [0, 200, 600]) {
      if (this.closed) return;
      if (delay) await new Promise((r) => setTimeout(r, delay));
      try {
        const socket = await connectSocket(this.client, this.voice);
        if (this.closed) {
          // close() ran while reopening: the new socket must not outlive the stream.
          try {
            socket.close();
          } catch {
            /* already closed */
          }
          return;
        }
        this.attach(socket);
        const text = this.unconfirmed.join('');
        if (text) {
          this.socket!.sendText({ type: 'Speak', text });
          if (this.flushesPending > 0) this.socket!.sendFlush({ type: 'Flush' });
        }
        return;
      } catch (err) {
        providerErrors.inc({ provider: 'tts', kind: 'reconnect_failed' });
        log.warn('deepgram tts reconnect failed', { err: (err as Error).message });
      }
    }
    this.events.onError?.(new Error('text-to-speech unavailable'));
  }

  speak(text: string): void {
    if (this.closed || !text) return;
    const chunk = /\s$/.test(text) ? text : text + ' ';
    this.unconfirmed.push(chunk);
    try {
      this.socket?.sendText({ type: 'Speak', text: chunk });
    } catch {
      /* reopening: re-sent from `unconfirmed` */
    }
  }

  flush(): void {
    if (this.closed) return;
    const now = Date.now();
    this.flushTimes = this.flushTimes.filter((t) => now - t < FLUSH_WINDOW_MS);
    if (this.flushTimes.length >= FLUSH_LIMIT) {
      // Over the service's limit: flush once when the window allows.
      if (!this.deferredFlush) {
        this.deferredFlush = setTimeout(guard('timer', () => {
          this.deferredFlush = null;
          this.flush();
        }, this.failed), FLUSH_WINDOW_MS - (now - this.flushTimes[0]) + 10);
      }
      return;
    }
    this.flushTimes.push(now);
    this.flushesPending++;
    try {
      this.socket?.sendFlush({ type: 'Flush' });
    } catch {
      /* reopening: the flush is re-sent */
    }
  }

  clear(): void {
    if (this.closed) return;
    this.dropAudio = true;
    this.unconfirmed = [];
    this.flushesPending = 0;
    if (this.deferredFlush) clearTimeout(this.deferredFlush);
    this.deferredFlush = null;
    try {
      this.socket?.sendClear({ type: 'Clear' });
    } catch {
      this.dropAudio = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deferredFlush) clearTimeout(this.deferredFlush);
    const s = this.socket;
    this.socket = null;
    try {
      s?.sendClose({ type: 'Close' });
    } catch {
      /* already closed */
    }
    try {
      s?.close();
    } catch {
      /* already closed */
    }
  }
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

  async open(opts: TtsOptions, events: TtsEvents): Promise<TtsStream> {
    const voice = opts.voice ?? DEFAULT_VOICE;
    const stream = new DeepgramTtsStream(this.client, voice, events);
    let socket: Socket | null = null;
    const list = this.pool.get(voice) ?? [];
    while (list.length && !socket) {
      const candidate = await list.shift()!.catch(() => null);
      if (candidate && candidate.readyState === 1) socket = candidate;
    }
    this.prewarm(voice);
    stream.attach(socket ?? (await connectSocket(this.client, voice)));
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
