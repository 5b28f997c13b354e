// One call, whatever carries it: inbound frames → the native media channel
// (decode + VAD in one call per frame) → speech events, and the untouched
// frames → the STT stream; agent text → TTS → the playout queue → the
// transport on the shared 20 ms clock. The conversation (src/pipeline) drives it through
// say()/flush()/clear()/hangup() and listens to its events.
import { Framer } from '../media/framer.js';
import { FRAME_END, FRAME_SPEECH, FRAME_START, MediaChannel } from '../media/media-channel.js';
import { log as rootLog, type Logger } from '../log.js';
import { guarded, reportInternalError } from '../guard.js';
import { callsActive, callsTotal, hotCounter, mediaFrames } from '../metrics/index.js';
import type { Providers, SttStream, SttTurn, Transcript, TtsStream } from '../providers/types.js';
import type { CallStore, ResolvedAgent } from '../store/types.js';
import { CallUsage } from '../usage/meter.js';
import { clock, type Tickable } from './clock.js';
import { Playout } from './playout.js';
import type { PauseReason } from './gaps.js';
import type { CallTransport } from './transport.js';
import type { CallRecorder } from '../recordings/recorder.js';

export interface SessionEvents {
  onTranscript?(t: Transcript): void;
  onUtteranceEnd?(): void;
  /** A turn event from an STT with its own end-of-turn model (Flux). */
  onSttTurn?(t: SttTurn): void;
  onSpeechStart?(atMs: number): void;
  onSpeechEnd?(atMs: number): void;
  onDtmf?(digit: string): void;
  /** The agent's audio has been completely heard. */
  onAgentIdle?(): void;
  onSegmentStart?(segmentId: number, atMs: number): void;
  /** Every frame of the segment has been heard by the caller. */
  onSegmentHeard?(segmentId: number): void;
  onTtsFirstByte?(segmentId: number, atMs: number): void;
  onProviderError?(which: 'stt' | 'tts', err: Error): void;
  onEnd?(reason: string): void;
}

export interface SessionInit {
  callId: string;
  transport: CallTransport;
  agent: ResolvedAgent;
  providers: Providers;
  calls: CallStore;
  log?: Logger;
  /** Outbound calls are counted in aybiza_calls_total by the dialer (src/outbound/dialer.ts), once, with their final status. */
  direction?: 'inbound' | 'outbound';
}

/**
 * Screening of an outbound call for an answering machine
 * (src/pipeline/voicemail.ts): it sees every inbound frame's media code
 * (with beep detection on) and every transcript; the conversation holds its
 * greeting and the caller's events until `converse` settles (true: talk).
 */
export interface CallScreen {
  frame(code: number, now: number): void;
  /** The STT's words (Nova-3 transcripts, Flux turn updates); isFinal: they will not change. */
  transcript(text: string, isFinal: boolean): void;
  readonly converse: Promise<boolean>;
}

const framesIn = { twilio: hotCounter(mediaFrames, 'twilio', 'in'), sip: hotCounter(mediaFrames, 'sip', 'in') };

// Silence that ends the caller's speech (the VAD's hangover into 'end').
const SILENCE_MS = 300;

export class CallSession implements Tickable {
  readonly callId: string;
  readonly transport: CallTransport;
  readonly agent: ResolvedAgent;
  readonly playout: Playout;
  readonly log: Logger;
  events: SessionEvents = {};
  readonly startedAt = performance.now();
  /** What the call uses of billed services, counted by the provider streams; priced and stored at hang-up. */
  readonly usage = new CallUsage();
  /** When start() ran: the call's media time (telephony minutes) runs from here to end(). */
  private mediaStartedAt = 0;
  private readonly media = new MediaChannel({ minSilenceMs: SILENCE_MS });
  private readonly framer = new Framer(160);
  private speaking = false;
  private stt: SttStream | null = null;
  private tts: TtsStream | null = null;
  /** TTS flush groups awaiting their audio, oldest first. */
  private groups: number[] = [];
  private openGroup: number | null = null;
  private firstByteSeen = new Set<number>();
  private ended = false;
  /** start() ran: the session is in callsActive and on the clock. */
  private started = false;
  private readonly framesInCounter;
  private readonly endListeners: ((reason: string) => void)[] = [];
  framesIn = 0;
  private lastSpeechAt = -Infinity;
  /** What the reply in progress is producing (for pause attribution); null: nothing more to say. */
  private replyWait: 'llm_tokens' | 'tool' | null = null;
  /** How late the current clock slot runs (ms). */
  private slotLateMs = 0;
  /** The call's recording (src/recordings), when its agent has one: both sides as heard, on this session's clock. */
  private recorder: CallRecorder | null = null;

  constructor(private readonly init: SessionInit) {
    this.callId = init.callId;
    this.transport = init.transport;
    this.agent = init.agent;
    this.log = (init.log ?? rootLog).child({ callId: init.callId, transport: init.transport.kind });
    this.playout = new Playout(init.transport);
    this.framesInCounter = framesIn[init.transport.kind];
    this.playout.onIdle = () => this.events.onAgentIdle?.();
    this.playout.onSegmentStart = (s) => this.events.onSegmentStart?.(s.id, performance.now());
    this.playout.onSegmentHeard = (s) => this.events.onSegmentHeard?.(s.id);
    this.playout.pauseReason = () => this.waitReason();
  }

  /**
   * The conversation says what its reply is doing: 'llm_tokens' while the
   * model streams, 'tool' while a tool runs, null once the reply has said
   * everything. A silence in the agent's voice is then attributed to it.
   */
  replyState(state: 'llm_tokens' | 'tool' | null): void {
    this.replyWait = state;
    this.playout.expectMore = state !== null;
  }

  /** A new reply starts (its segments are told apart from earlier speech still playing). */
  beginReply(): void {
    this.playout.beginReply();
    this.replyState('llm_tokens');
  }

  /** What the agent's voice is waiting for right now (called on empty slots only). */
  private waitReason(): PauseReason {
    const waiting = this.groups[0];
    if (waiting !== undefined) {
      // Flushed by us; no audio yet and the stream deferred the flush: the flush window.
      return this.tts?.flushDeferred && !this.firstByteSeen.has(waiting) ? 'flush_window' : 'tts_audio';
    }
    if (this.openGroup !== null) return 'unflushed_text';
    return this.replyWait ?? 'other';
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Runs fn when the session ends (owners release what they hold for the call). */
  whenEnded(fn: (reason: string) => void): void {
    this.endListeners.push(fn);
  }

  now(): number {
    return performance.now();
  }

  /** The answering-machine screening in progress, if any (see CallScreen). */
  screening: CallScreen | null = null;

  /** Starts screening this call (beep detection on from here); null stops it. */
  screen(s: CallScreen | null): void {
    if (this.ended) return;
    this.screening = s;
    this.media.detectBeep(s !== null);
  }

  /** Records the call from here on: the caller's frames as received, the agent's as sent. */
  record(r: CallRecorder): void {
    this.recorder = r;
    this.playout.onFrameSent = (audio, offset) => r.agent(audio, offset, 160);
  }

  /** Opens the provider streams and joins the pacing clock. */
  async start(): Promise<void> {
    if (this.ended) return;
    this.started = true;
    this.mediaStartedAt = performance.now();
    callsActive.inc({ transport: this.transport.kind });
    clock.add(this);
    const cfg = this.agent.config;
    const [stt, tts] = await Promise.allSettled([
      this.init.providers.stt.open(
        {
          model: cfg.stt?.model, language: cfg.language, endpointingMs: cfg.stt?.endpointingMs ?? 300, utteranceEndMs: 1000,
          eotThreshold: cfg.stt?.eotThreshold, eagerEotThreshold: cfg.stt?.eagerEotThreshold, eotTimeoutMs: cfg.stt?.eotTimeoutMs,
          usage: this.usage,
        },
        {
          onTranscript: (t) => {
            this.screening?.transcript(t.text, t.isFinal);
            this.events.onTranscript?.(t);
          },
          onTurn: (t) => {
            this.screening?.transcript(t.text, t.event === 'EndOfTurn');
            this.events.onSttTurn?.(t);
          },
          onUtteranceEnd: () => this.events.onUtteranceEnd?.(),
          onReconnected: (r) => this.log.warn('speech-to-text reconnected', r),
          onError: (err) => this.events.onProviderError?.('stt', err),
        },
      ),
      this.init.providers.tts.open(
        { voice: cfg.voice, usage: this.usage },
        {
          onAudio: (a) => this.onTtsAudio(a),
          onFlushed: () => {
            const id = this.groups.shift();
            if (id !== undefined) this.playout.endSegment(id);
          },
          onError: (err) => this.events.onProviderError?.('tts', err),
        },
      ),
    ]);
    if (stt.status === 'fulfilled') this.stt = stt.value;
    if (tts.status === 'fulfilled') this.tts = tts.value;
    if (this.ended) {
      await this.stt?.close();
      await this.tts?.close();
      return;
    }
    if (stt.status === 'rejected') this.events.onProviderError?.('stt', stt.reason as Error);
    if (tts.status === 'rejected') this.events.onProviderError?.('tts', tts.reason as Error);
  }

  get ready(): { stt: boolean; tts: boolean } {
    return { stt: this.stt !== null, tts: this.tts !== null };
  }

  /** One inbound μ-law frame from the caller (any length up to 200 ms). */
  inbound(ulaw: Uint8Array): void {
    if (this.ended) return;
    this.recorder?.caller(ulaw);
    this.framesIn++;
    this.framesInCounter.inc();
    const now = performance.now();
    let speech = false;
    // Twilio sends 20 ms frames; anything else is re-framed for the VAD.
    if (ulaw.length === 160 && this.framer.buffered === 0) speech = this.frame(ulaw, now);
    else for (const f of this.framer.push(ulaw)) speech = this.frame(f, now);
    // The quiet frames that may end a turn go out at once (the STT's endpointing
    // counts them); speech and long silence are batched.
    this.stt?.send(ulaw, !speech && now - this.lastSpeechAt < 600, speech);
  }

  /** Runs one 20 ms frame through the media channel; returns its speech flag. */
  private frame(f: Uint8Array, now: number): boolean {
    const code = this.media.process(f);
    this.screening?.frame(code, now);
    if (code & FRAME_START) {
      this.speaking = true;
      this.events.onSpeechStart?.(now);
    } else if (code & FRAME_END) {
      this.speaking = false;
      this.events.onSpeechEnd?.(now - SILENCE_MS);
    }
    const speech = (code & FRAME_SPEECH) !== 0;
    if (speech) this.lastSpeechAt = now;
    return speech;
  }

  dtmf(digit: string): void {
    if (!this.ended) this.events.onDtmf?.(digit);
  }

  get callerSpeaking(): boolean {
    return this.speaking;
  }

  /** When the VAD last heard the caller's speech (performance.now ms; -Infinity: never). */
  get lastCallerSpeechAt(): number {
    return this.lastSpeechAt;
  }

  /** Queues text for the agent's voice; it is synthesised at the next flush(). */
  say(text: string): number {
    if (this.openGroup === null) {
      this.openGroup = this.playout.beginSegment('');
    }
    this.playout.appendText(this.openGroup, text.endsWith(' ') ? text : text + ' ');
    this.tts?.speak(text);
    return this.openGroup;
  }

  /** Synthesises everything said since the last flush as one playout segment. */
  flush(): number | null {
    if (this.openGroup === null) return null;
    const id = this.openGroup;
    this.groups.push(id);
    this.openGroup = null;
    if (this.tts) this.tts.flush();
    else this.playout.endSegment(id);
    return id;
  }

  private onTtsAudio(a: Uint8Array): void {
    const id = this.groups[0];
    if (id === undefined) return; // audio after a clear
    if (!this.firstByteSeen.has(id)) {
      this.firstByteSeen.add(id);
      this.events.onTtsFirstByte?.(id, performance.now());
    }
    this.playout.push(id, a);
    // Audio after a pause goes out now, not at the next clock slot: the first
    // frame of a reply is on the latency critical path.
    if (this.playout.idleSinceMs() >= 0 && !this.ended) {
      if (this.transport.batch) this.transport.batch(this.kickPlayout);
      else this.playout.tick(false);
    }
  }

  /** Holds outbound audio (a possible barge-in) without dropping it. */
  pause(): void {
    this.playout.paused = true;
  }

  /** Releases held audio: it goes out now, not at the next clock slot (the wait ends here). */
  resume(): void {
    if (!this.playout.paused) return;
    this.playout.paused = false;
    if (this.ended) return;
    if (this.transport.batch) this.transport.batch(this.kickPlayout);
    else this.playout.tick(false);
  }

  /** Barge-in: stop speaking now. Returns what the caller heard of each segment. */
  clear(): ReturnType<Playout['clear']> {
    this.tts?.clear();
    this.groups = [];
    this.openGroup = null;
    return this.playout.clear();
  }

  /** The STT should finalise what it has (the pipeline committed the turn early). */
  finalizeStt(): void {
    this.stt?.finalize();
  }

  private readonly tickPlayout = () => this.playout.tick(true, this.slotLateMs);
  private readonly kickPlayout = () => this.playout.tick(false);

  tick(slot: number, lateMs = 0): void {
    if (this.ended) return;
    this.recorder?.tick(slot);
    this.slotLateMs = lateMs;
    if (this.transport.batch) this.transport.batch(this.tickPlayout);
    else this.playout.tick(true, lateMs);
  }

  /** Our tick threw (the clock took us off it): end this call only. */
  tickFailed(): void {
    void this.end('internal error', 'failed').catch((err) => reportInternalError('call', err));
  }

  onMarkPlayed(name: string): boolean {
    return this.playout.onMarkPlayed(name);
  }

  /** Ends the session (idempotent): releases streams and the clock slot, records the outcome. */
  async end(reason: string, outcome = 'completed'): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    clock.delete(this);
    this.media.close();
    if (this.started) callsActive.dec({ transport: this.transport.kind });
    if (this.init.direction !== 'outbound') callsTotal.inc({ transport: this.transport.kind, outcome, direction: 'inbound' });
    // Each owner releases what it holds even if another's release throws.
    guarded('call', () => this.events.onEnd?.(reason));
    for (const fn of this.endListeners) guarded('call', () => fn(reason));
    await Promise.allSettled([
      this.init.calls.updateCallStatus(this.callId, 'completed', reason).catch((err) => this.log.warn('call record update failed', { err })),
      this.stt?.close(),
      this.tts?.close(),
    ]);
    // Priced once the streams have sent their last audio and text (src/usage).
    if (this.started) {
      const metered = this.usage.metered(this.transport.kind, this.init.direction ?? 'inbound', performance.now() - this.mediaStartedAt);
      await this.init.calls.recordUsage?.(this.callId, metered).catch((err) => this.log.warn('call usage not stored', { err }));
    }
    this.log.info('call ended', { reason, framesIn: this.framesIn, framesOut: this.playout.framesSent, ...this.playout.gaps.summary() });
  }
}
