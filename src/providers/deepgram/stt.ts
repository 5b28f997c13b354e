// Deepgram live speech-to-text through @deepgram/sdk. μ-law 8 kHz goes to
// Deepgram untouched. The SDK's own silent reconnect is off
// (reconnectAttempts: 0): when a stream drops we reconnect ourselves, replay
// the recent audio the old stream had not finalised (bounded), keep the
// timeline continuous, and tell the pipeline.
import type { DeepgramClient } from '@deepgram/sdk';
import { reportInternalError } from '../../guard.js';
import { log } from '../../log.js';
import { providerErrors, wsCloseKind } from '../../metrics/index.js';
import { closeGracefully, closeQuietly, openSocket, reconnectLoop, type StreamSocket } from './lifecycle.js';
import type { SpeechToText, SttEvents, SttOptions, SttStream } from '../types.js';

const BYTES_PER_S = 8000;
/** Audio kept for replay after a drop. */
const REPLAY_MAX_BYTES = 5 * BYTES_PER_S;
const KEEPALIVE_AFTER_MS = 3000;
/**
 * Audio goes to Deepgram in 200 ms messages (ten 20 ms frames; Deepgram
 * recommends sending 20-250 ms at once): each WebSocket message from a
 * client is masked, allocates and costs a syscall (and, in production, a TLS
 * record), and at hundreds of calls per core 50 messages a second per call
 * dominated our CPU. After speech the session asks for every frame at once
 * (`immediate`), so batching never delays the end of a caller's turn; what
 * it delays is an interim result in the middle of speech, by at most 180 ms
 * (a barge-in is held on our own VAD, not on those words).
 */
const BATCH_BYTES = 1600;
/**
 * Silence gate. Audio the VAD calls silence, once it is more than
 * POSTROLL_MS past the caller's last speech, is not streamed (Deepgram bills
 * the audio it receives, and each message costs a syscall); the stream is
 * kept open by KeepAlive, as Deepgram documents for applications that gate
 * audio. The last PREROLL_MS of held audio is sent ahead of the next speech,
 * so the VAD's onset delay and soft first consonants reach the recogniser.
 * The post-roll covers endpointing and utterance_end_ms: both need silence
 * audio after the words to fire.
 */
const PREROLL_BYTES = 400 * (BYTES_PER_S / 1000);
const POSTROLL_MIN_MS = 1500;
/**
 * `immediate` is not honoured for the first SHORT_GAP_MS of quiet after
 * speech: a gap that short is the space between two words far more often
 * than the end of a turn, and no result can depend on it yet (the endpoint
 * needs the endpointing window of silence, the service's last interim comes
 * ~100 ms into the silence). Held, those frames ride in the batch with the
 * next ones instead of each costing a message: on the load's callers (speech
 * with 20-40 ms gaps between words), a fifth of the messages.
 */
const SHORT_GAP_MS = 40;

type Socket = Awaited<ReturnType<DeepgramClient['listen']['v1']['connect']>>;

interface ResultsMsg {
  type: 'Results';
  channel?: { alternatives?: { transcript?: string; confidence?: number }[] };
  is_final?: boolean;
  speech_final?: boolean;
  from_finalize?: boolean;
  start?: number;
  duration?: number;
}

// One shared timer sends KeepAlive on every stream that has been quiet.
const open = new Set<DeepgramSttStream>();
let keepAliveTimer: NodeJS.Timeout | null = null;
function track(s: DeepgramSttStream, on: boolean): void {
  if (on) open.add(s);
  else open.delete(s);
  if (open.size > 0 && !keepAliveTimer) {
    keepAliveTimer = setInterval(() => {
      const now = Date.now();
      for (const st of open) {
        // One stream's failure must not stop the KeepAlive of every other call.
        try {
          if (now - st.lastSendAt >= KEEPALIVE_AFTER_MS) st.keepAlive();
        } catch (err) {
          reportInternalError('timer', err);
        }
      }
    }, 1000);
    keepAliveTimer.unref();
  } else if (open.size === 0 && keepAliveTimer) {
    clearInterval(keepAliveTimer);
    keepAliveTimer = null;
  }
}

/** Streams the shared KeepAlive timer holds (tests and leak checks: back to 0 when no call is up). */
export function sttStreamsOpen(): number {
  return open.size;
}

export class DeepgramSttStream implements SttStream {
  lastSendAt = Date.now();
  private socket: Socket | null = null;
  private closed = false;
  private reconnecting = false;
  private attempt = 0;
  /** Call-timeline position (bytes) where the current connection's audio starts. */
  private offsetBytes = 0;
  /** Audio given to send() so far: the call's timeline in bytes. */
  private receivedBytes = 0;
  /** Timeline position (bytes) up to which Deepgram has finalised. */
  private finalisedBytes = 0;
  /**
   * The last REPLAY_MAX_BYTES of audio, in one ring per stream. Keeping each
   * sent message for 5 s instead meant buffers that outlived the young
   * generation: at 200 calls ~1.6 MB/s of promoted external memory, which is
   * what made V8 run a full mark-compact (and its pause) every ~15 s.
   */
  private readonly ring = new Uint8Array(REPLAY_MAX_BYTES);
  /** Bytes of the ring in use (the last min(receivedBytes, REPLAY_MAX_BYTES) of the timeline). */
  private replayBytes = 0;

  /** Silence gate (see PREROLL_BYTES): audio given so far, where the last speech ended, the held pre-roll. */
  private readonly gate: boolean;
  private readonly postrollBytes: number;
  /** Quiet after speech shorter than this (bytes) does not send at once (see SHORT_GAP_MS). */
  private readonly shortGapBytes: number;
  private givenBytes = 0;
  /** Closed from the start: nothing has been said yet (the pre-roll keeps the first words). */
  private lastSpeechBytes = -Infinity;
  private gateOpen = false;
  private readonly preroll = new Uint8Array(PREROLL_BYTES);
  private prerollAt = 0;
  private prerollFill = 0;

  constructor(private readonly client: DeepgramClient, private readonly opts: SttOptions, private readonly events: SttEvents, gate = true) {
    this.gate = gate;
    this.postrollBytes = Math.max(POSTROLL_MIN_MS, (opts.utteranceEndMs ?? 1000) + 500) * (BYTES_PER_S / 1000);
    // A very short endpointing window could end the turn inside the gap: hold at most half of it.
    this.shortGapBytes = Math.min(SHORT_GAP_MS, (opts.endpointingMs ?? 300) / 2) * (BYTES_PER_S / 1000);
  }

  async connect(): Promise<void> {
    const o = this.opts;
    const socket = await this.client.listen.v1.connect({
      model: o.model ?? 'nova-3',
      language: o.language ?? 'en-US',
      encoding: 'mulaw',
      sample_rate: 8000,
      channels: 1,
      interim_results: 'true',
      endpointing: o.endpointingMs ?? 300,
      utterance_end_ms: o.utteranceEndMs ?? 1000,
      vad_events: 'true',
      smart_format: 'true',
      punctuate: 'true',
      ...(o.keyterms?.length ? { keyterm: o.keyterms } : {}),
      reconnectAttempts: 0,
    } as never);
    const offset = this.offsetBytes / BYTES_PER_S;
    // SDK event callbacks run under the guard: a throw (here or in the
    // pipeline's handlers) ends this call through onError, never the process.
    const failed = (err: unknown) => {
      if (!this.closed) this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
    };
    await openSocket(socket as unknown as StreamSocket, 'deepgram stt', (m) => this.onMessage(m, offset), (e) => this.onClose(socket, e), failed);
    if (this.closed) {
      // close() ran while this (re)connection was opening: the socket must not
      // outlive the stream (the shared KeepAlive would keep it open forever).
      closeQuietly(socket);
      return;
    }
    this.socket = socket;
    track(this, true);
  }

  private onMessage(m: { type?: string }, offsetS: number): void {
    if (m.type === 'Results') {
      const r = m as ResultsMsg;
      const alt = r.channel?.alternatives?.[0];
      const start = (r.start ?? 0) + offsetS;
      const duration = r.duration ?? 0;
      if (r.is_final) this.finalisedBytes = Math.max(this.finalisedBytes, Math.round((start + duration) * BYTES_PER_S));
      const text = alt?.transcript ?? '';
      if (!text && r.is_final && !r.speech_final) return; // empty finals on silence
      this.events.onTranscript({
        text,
        isFinal: !!r.is_final,
        speechFinal: !!r.speech_final,
        fromFinalize: !!r.from_finalize,
        start,
        duration,
        confidence: alt?.confidence ?? 0,
      });
    } else if (m.type === 'UtteranceEnd') {
      this.events.onUtteranceEnd?.(((m as { last_word_end?: number }).last_word_end ?? 0) + offsetS);
    } else if (m.type === 'SpeechStarted') {
      this.events.onSpeechStarted?.(((m as { timestamp?: number }).timestamp ?? 0) + offsetS);
    }
  }

  private onClose(socket: Socket, e: { code?: number; reason?: string }): void {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.closed) return;
    providerErrors.inc({ provider: 'stt', kind: wsCloseKind(e.code) });
    log.warn('deepgram stt stream dropped; reconnecting', { code: e.code, reason: e.reason });
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting || this.closed) return;
    this.reconnecting = true;
    const ok = await reconnectLoop('deepgram stt', () => this.closed, async () => {
      this.attempt++;
      // The new stream starts where the old one stopped finalising (bounded by
      // the replay buffer); everything from there on is sent again.
      const unfinalised = Math.max(0, Math.min(this.replayBytes, this.receivedBytes - this.finalisedBytes));
      this.offsetBytes = this.receivedBytes - unfinalised;
      await this.connect();
      if (this.closed || !this.socket) return true;
      const replayBytes = this.receivedBytes - this.offsetBytes; // includes audio that arrived while connecting
      for (const chunk of this.tail(replayBytes)) this.socket.sendMedia(chunk);
      // Replayed audio is streamed (and billed) again.
      if (this.opts.usage) this.opts.usage.sttAudioBytes += Math.min(replayBytes, this.replayBytes);
      this.events.onReconnected?.({ attempt: this.attempt, replayedMs: Math.round((replayBytes / BYTES_PER_S) * 1000) });
      return true;
    });
    this.reconnecting = false;
    if (!ok && !this.closed) this.events.onError?.(new Error('speech-to-text unavailable: reconnect attempts exhausted'));
  }

  /** Appends sent audio to the ring (and the timeline). */
  private remember(audio: Uint8Array): void {
    const at = this.receivedBytes % REPLAY_MAX_BYTES;
    const first = Math.min(audio.length, REPLAY_MAX_BYTES - at);
    if (first === audio.length) this.ring.set(audio, at);
    else {
      this.ring.set(audio.subarray(0, first), at);
      this.ring.set(audio.subarray(first), 0);
    }
    this.receivedBytes += audio.length;
    this.replayBytes = Math.min(REPLAY_MAX_BYTES, this.replayBytes + audio.length);
  }

  /** The last `bytes` of audio (at most what the ring holds), as fresh message-sized copies. */
  private tail(bytes: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const end = this.receivedBytes;
    for (let p = end - Math.min(bytes, this.replayBytes); p < end; p += BATCH_BYTES) {
      const chunk = new Uint8Array(Math.min(BATCH_BYTES, end - p));
      for (let k = 0; k < chunk.length; ) {
        const q = (p + k) % REPLAY_MAX_BYTES;
        const n = Math.min(chunk.length - k, REPLAY_MAX_BYTES - q);
        chunk.set(this.ring.subarray(q, q + n), k);
        k += n;
      }
      out.push(chunk);
    }
    return out;
  }

  private readonly batch = Buffer.alloc(BATCH_BYTES);
  private batchFill = 0;

  /**
   * One frame (or more) of the caller's audio. `speech`: the VAD's verdict
   * for it; when given (and the gate is on), long silence is held back (see
   * PREROLL_BYTES). `immediate` sends what is batched now (not inside a
   * short gap after speech: see SHORT_GAP_MS).
   */
  send(ulaw: Uint8Array, immediate = false, speech?: boolean): void {
    if (this.closed || ulaw.length === 0) return;
    if (speech !== undefined) {
      this.givenBytes += ulaw.length;
      if (speech) this.lastSpeechBytes = this.givenBytes;
      else if (immediate && this.givenBytes - this.lastSpeechBytes <= this.shortGapBytes) immediate = false;
    }
    if (this.gate && speech !== undefined) {
      const open = speech || this.givenBytes - this.lastSpeechBytes <= this.postrollBytes;
      if (!open) {
        if (this.gateOpen) {
          this.gateOpen = false;
          this.flushBatch();
        }
        this.hold(ulaw);
        return;
      }
      if (!this.gateOpen) {
        this.gateOpen = true;
        this.releasePreroll();
      }
    }
    this.append(ulaw, immediate);
  }

  /** Audio into the batch; whole batches are sent. */
  private append(ulaw: Uint8Array, immediate: boolean): void {
    if (this.batchFill + ulaw.length < BATCH_BYTES) {
      // The usual case, a frame that does not complete the batch: no view of it.
      this.batch.set(ulaw, this.batchFill);
      this.batchFill += ulaw.length;
      if (immediate) this.flushBatch();
      return;
    }
    let off = 0;
    while (off < ulaw.length) {
      const n = Math.min(BATCH_BYTES - this.batchFill, ulaw.length - off);
      this.batch.set(ulaw.subarray(off, off + n), this.batchFill);
      this.batchFill += n;
      off += n;
      if (this.batchFill === BATCH_BYTES) this.flushBatch();
    }
    if (immediate) this.flushBatch();
  }

  /** Keeps the last PREROLL_BYTES of held-back audio. */
  private hold(ulaw: Uint8Array): void {
    const src = ulaw.length > PREROLL_BYTES ? ulaw.subarray(ulaw.length - PREROLL_BYTES) : ulaw;
    for (let off = 0; off < src.length; ) {
      const n = Math.min(src.length - off, PREROLL_BYTES - this.prerollAt);
      this.preroll.set(src.subarray(off, off + n), this.prerollAt);
      this.prerollAt = (this.prerollAt + n) % PREROLL_BYTES;
      off += n;
    }
    this.prerollFill = Math.min(PREROLL_BYTES, this.prerollFill + src.length);
  }

  /** The held pre-roll goes out ahead of the speech that opened the gate. */
  private releasePreroll(): void {
    if (this.prerollFill === 0) return;
    const start = (this.prerollAt - this.prerollFill + PREROLL_BYTES) % PREROLL_BYTES;
    const first = Math.min(this.prerollFill, PREROLL_BYTES - start);
    this.append(this.preroll.subarray(start, start + first), false);
    if (first < this.prerollFill) this.append(this.preroll.subarray(0, this.prerollFill - first), false);
    this.prerollFill = 0;
  }

  private flushBatch(): void {
    if (this.batchFill === 0) return;
    // A copy of its own: short-lived (the WebSocket client masks it into its
    // frame), so it dies young instead of pinning memory. From Node's buffer
    // pool: a typed array of its own would be a malloc and free per message.
    const audio = Buffer.allocUnsafe(this.batchFill);
    this.batch.copy(audio, 0, 0, this.batchFill);
    this.batchFill = 0;
    this.remember(audio);
    if (this.socket && !this.reconnecting) {
      try {
        this.socket.sendMedia(audio);
        this.lastSendAt = Date.now();
        if (this.opts.usage) this.opts.usage.sttAudioBytes += audio.length;
      } catch {
        /* closing: the close handler reconnects and replays */
      }
    }
  }

  finalize(): void {
    this.flushBatch();
    try {
      this.socket?.sendFinalize({ type: 'Finalize' });
    } catch {
      /* not open */
    }
  }

  keepAlive(): void {
    try {
      this.socket?.sendKeepAlive({ type: 'KeepAlive' });
      this.lastSendAt = Date.now();
    } catch {
      /* not open */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flushBatch();
    this.closed = true;
    track(this, false);
    const s = this.socket;
    if (!s) return;
    await closeGracefully(s as unknown as StreamSocket);
    this.socket = null;
  }
}

export class DeepgramStt implements SpeechToText {
  readonly name = 'deepgram';
  /** `silenceGate`: hold back long silence (STT_SILENCE_GATE, on by default; see PREROLL_BYTES). */
  constructor(private readonly client: DeepgramClient, private readonly silenceGate = true) {}

  async open(opts: SttOptions, events: SttEvents): Promise<SttStream> {
    if (opts.usage) opts.usage.sttModel = opts.model ?? 'nova-3';
    const s = new DeepgramSttStream(this.client, opts, events, this.silenceGate);
    await s.connect();
    return s;
  }
}
