// Deepgram Flux (listen v2, ../shared/reference/deepgram-flux.md) through
// @deepgram/sdk: conversational STT whose model reports the end of the
// caller's turn itself (StartOfTurn, Update, EagerEndOfTurn, TurnResumed,
// EndOfTurn), delivered to the pipeline as SttEvents.onTurn.
//
// Audio: the call's μ-law 8 kHz goes out untouched (Flux accepts
// encoding=mulaw&sample_rate=8000; upsampling adds no information) in 80 ms
// messages of 640 B, the chunk size Deepgram recommends for Flux.
// Everything is sent, silence included, unlike the Nova-3 stream's silence
// gate: Flux runs on audio time, so an end of turn (and its eot_timeout_ms)
// only comes while audio keeps arriving, and v2 has no KeepAlive to hold a
// gated stream open (KeepAlive and Finalize are fatal errors on v2). A
// continuous stream is also what Flux's EOT model is trained on.
import type { DeepgramClient } from '@deepgram/sdk';
import { log } from '../../log.js';
import { providerErrors, wsCloseKind } from '../../metrics/index.js';
import { closeGracefully, closeQuietly, openSocket, reconnectLoop, type StreamSocket } from './lifecycle.js';
import type { SpeechToText, SttEvents, SttOptions, SttStream, SttTurn } from '../types.js';

const BYTES_PER_S = 8000;
/** 80 ms of μ-law 8 kHz (four 20 ms frames). */
const CHUNK_BYTES = 640;
const TURN_EVENTS = new Set<SttTurn['event']>(['StartOfTurn', 'Update', 'EagerEndOfTurn', 'TurnResumed', 'EndOfTurn']);
const TRIGGERS = new Set(['model', 'timeout', 'manual']);
/**
 * eager_eot_threshold when the agent sets none: Flux sends no
 * EagerEndOfTurn unless it is set, and preemptive generation (on by
 * default) starts on it. 0.5 is the cautious end of the range quoted for
 * it, 0.3–0.5 for ~150–250 ms saved at ~50–70 % more LLM calls
 * (developers.telnyx.com/docs/voice/stt/websocket-streaming/parameters/end-of-turn);
 * lower fires earlier and is resumed more often. Not set when the agent's
 * eot_threshold is not above it (the eager signal would come no earlier).
 */
export const DEFAULT_EAGER_EOT_THRESHOLD = 0.5;
const DEFAULT_EOT_THRESHOLD = 0.7;

/** The eager_eot_threshold sent for the agent's settings (undefined: none, no eager events). */
export function eagerThreshold(o: Pick<SttOptions, 'eotThreshold' | 'eagerEotThreshold'>): number | undefined {
  if (o.eagerEotThreshold !== undefined) return o.eagerEotThreshold;
  return (o.eotThreshold ?? DEFAULT_EOT_THRESHOLD) > DEFAULT_EAGER_EOT_THRESHOLD ? DEFAULT_EAGER_EOT_THRESHOLD : undefined;
}

type Socket = Awaited<ReturnType<DeepgramClient['listen']['v2']['connect']>>;

interface TurnInfoMsg {
  type: 'TurnInfo';
  event?: string;
  turn_index?: number;
  transcript?: string;
  audio_window_start?: number;
  audio_window_end?: number;
  end_of_turn_confidence?: number;
  trigger?: string;
}

/** True for the models that run on listen v2 (flux-general-en, flux-general-multi). */
export function isFluxModel(model: string | undefined): boolean {
  return !!model && model.startsWith('flux-');
}

export class FluxSttStream implements SttStream {
  private socket: Socket | null = null;
  private closed = false;
  private reconnecting = false;
  private attempt = 0;
  /** Call-timeline seconds where the current connection's audio starts. */
  private offsetS = 0;
  /** Turns ended on earlier connections (turn_index restarts at 0 on a new one). */
  private turnBase = 0;
  private turnsHere = 0;
  private receivedBytes = 0;
  private readonly chunk = new Uint8Array(CHUNK_BYTES);
  private fill = 0;

  constructor(private readonly client: DeepgramClient, private readonly opts: SttOptions, private readonly events: SttEvents) {}

  async connect(): Promise<void> {
    const o = this.opts;
    const eager = eagerThreshold(o);
    const socket = await this.client.listen.v2.connect({
      model: (o.model ?? 'flux-general-en') as never,
      encoding: 'mulaw',
      sample_rate: 8000,
      ...(o.eotThreshold !== undefined ? { eot_threshold: o.eotThreshold } : {}),
      ...(eager !== undefined ? { eager_eot_threshold: eager } : {}),
      ...(o.eotTimeoutMs !== undefined ? { eot_timeout_ms: o.eotTimeoutMs } : {}),
      ...(o.keyterms?.length ? { keyterm: o.keyterms } : {}),
      // A dropped socket must not silently become a new session: we reconnect ourselves.
      reconnectAttempts: 0,
    } as never);
    const offsetS = this.offsetS;
    const failed = (err: unknown) => {
      if (!this.closed) this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
    };
    await openSocket(socket as unknown as StreamSocket, 'deepgram flux', (m) => this.onMessage(m, offsetS), (e) => this.onClose(socket, e), failed);
    if (this.closed) {
      closeQuietly(socket);
      return;
    }
    this.turnBase += this.turnsHere;
    this.turnsHere = 0;
    this.socket = socket;
  }

  private onMessage(m: { type?: string }, offsetS: number): void {
    if (m.type === 'TurnInfo') {
      const t = m as TurnInfoMsg;
      const event = t.event as SttTurn['event'];
      if (!TURN_EVENTS.has(event)) return; // a newer event type: ignored, as the SDK's union allows
      const turn: SttTurn = {
        event,
        text: t.transcript ?? '',
        turnIndex: this.turnBase + (t.turn_index ?? 0),
        confidence: t.end_of_turn_confidence ?? 0,
        start: (t.audio_window_start ?? 0) + offsetS,
        end: (t.audio_window_end ?? 0) + offsetS,
      };
      if (event === 'EndOfTurn') {
        this.turnsHere = (t.turn_index ?? 0) + 1;
        if (t.trigger && TRIGGERS.has(t.trigger)) turn.trigger = t.trigger as SttTurn['trigger'];
      }
      this.events.onTurn?.(turn);
    } else if (m.type === 'Error') {
      // Fatal: the service closes the socket next, and the close reconnects.
      const e = m as { code?: string; description?: string };
      log.warn('deepgram flux error', { code: String(e.code).slice(0, 64), description: String(e.description).slice(0, 200) });
    } else if (m.type === 'ConfigureFailure') {
      log.warn('deepgram flux configure refused', { code: String((m as { code?: string }).code).slice(0, 64) });
    }
  }

  private onClose(socket: Socket, e: { code?: number; reason?: string }): void {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.closed) return;
    providerErrors.inc({ provider: 'stt', kind: wsCloseKind(e.code) });
    log.warn('deepgram flux stream dropped; reconnecting', { code: e.code, reason: e.reason });
    void this.reconnect();
  }

  /**
   * A new session from the current audio on. Unlike Nova-3's stream nothing
   * is replayed: Flux's turn state cannot be rebuilt from a tail of audio, so
   * the turn in progress starts again with the caller's next words.
   */
  private async reconnect(): Promise<void> {
    if (this.reconnecting || this.closed) return;
    this.reconnecting = true;
    const ok = await reconnectLoop('deepgram flux', () => this.closed, async (attempt) => {
      this.offsetS = this.receivedBytes / BYTES_PER_S;
      await this.connect();
      if (this.closed || !this.socket) return true;
      this.reconnecting = false;
      this.events.onReconnected?.({ attempt, replayedMs: 0 });
      return true;
    });
    this.reconnecting = false;
    if (!ok) this.events.onError?.(new Error('speech-to-text unavailable: reconnect attempts exhausted'));
  }

  /**
   * Every frame, speech or not, in 80 ms messages. `immediate` and `speech`
   * are ignored: Flux decides the end of turn on audio time, and a partial
   * message would only break the recommended chunking (at most 60 ms of
   * audio waits for its message).
   */
  send(ulaw: Uint8Array): void {
    if (this.closed) return;
    let off = 0;
    while (off < ulaw.length) {
      const n = Math.min(CHUNK_BYTES - this.fill, ulaw.length - off);
      this.chunk.set(ulaw.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === CHUNK_BYTES) this.flush();
    }
  }

  private flush(): void {
    if (this.fill === 0) return;
    const audio = this.chunk.slice(0, this.fill);
    this.fill = 0;
    this.receivedBytes += audio.length;
    if (!this.socket || this.reconnecting) return; // lost: a new session starts from the audio after it
    try {
      this.socket.sendMedia(audio);
      if (this.opts.usage) this.opts.usage.sttAudioBytes += audio.length;
    } catch {
      /* closing: the close handler reconnects */
    }
  }

  /** Flux ends turns itself; ForceEndTurn needs server-side enablement (reference §4), so nothing is sent. */
  finalize(): void {}

  /** A WebSocket ping (v2's way to keep an idle socket; the stream is never idle while a call sends audio). */
  keepAlive(): void {
    try {
      (this.socket as unknown as { ping?: () => void } | null)?.ping?.();
    } catch {
      /* not open */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    const s = this.socket;
    this.socket = null;
    if (s) await closeGracefully(s as unknown as StreamSocket);
  }
}

export class FluxStt implements SpeechToText {
  readonly name = 'deepgram-flux';
  constructor(private readonly client: DeepgramClient) {}

  async open(opts: SttOptions, events: SttEvents): Promise<SttStream> {
    if (opts.usage) opts.usage.sttModel = opts.model ?? 'flux-general-en';
    const s = new FluxSttStream(this.client, opts, events);
    await s.connect();
    return s;
  }
}
