// One call, whatever carries it: inbound frames → native decode → VAD → the
// STT stream; agent text → TTS → the playout queue → the transport on the
// shared 20 ms clock. The conversation (src/pipeline) drives it through
// say()/flush()/clear()/hangup() and listens to its events.
import { ulawDecodeInto } from '../media/g711.js';
import { log as rootLog, type Logger } from '../log.js';
import { callsActive, callsTotal, mediaFrames } from '../metrics/index.js';
import type { Providers, SttStream, Transcript, TtsStream } from '../providers/types.js';
import type { CallStore, ResolvedAgent } from '../store/types.js';
import { clock, type Tickable } from './clock.js';
import { EnergyVad } from './energy-vad.js';
import { Playout } from './playout.js';
import type { CallTransport } from './transport.js';

export interface SessionEvents {
  onTranscript?(t: Transcript): void;
  onUtteranceEnd?(): void;
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
}

export class CallSession implements Tickable {
  readonly callId: string;
  readonly transport: CallTransport;
  readonly agent: ResolvedAgent;
  readonly playout: Playout;
  readonly log: Logger;
  events: SessionEvents = {};
  readonly startedAt = performance.now();
  private readonly pcm = new Int16Array(1600);
  private readonly vad = new EnergyVad();
  private stt: SttStream | null = null;
  private tts: TtsStream | null = null;
  /** TTS flush groups awaiting their audio, oldest first. */
  private groups: number[] = [];
  private openGroup: number | null = null;
  private firstByteSeen = new Set<number>();
  private ended = false;
  private readonly framesInCounter;
  private readonly endListeners: ((reason: string) => void)[] = [];
  framesIn = 0;
  private lastSpeechAt = -Infinity;

  constructor(private readonly init: SessionInit) {
    this.callId = init.callId;
    this.transport = init.transport;
    this.agent = init.agent;
    this.log = (init.log ?? rootLog).child({ callId: init.callId, transport: init.transport.kind });
    this.playout = new Playout(init.transport);
    this.framesInCounter = mediaFrames.labels(init.transport.kind, 'in');
    this.playout.onIdle = () => this.events.onAgentIdle?.();
    this.playout.onSegmentStart = (s) => this.events.onSegmentStart?.(s.id, performance.now());
    this.playout.onSegmentHeard = (s) => this.events.onSegmentHeard?.(s.id);
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

  /** Opens the provider streams and joins the pacing clock. */
  async start(): Promise<void> {
    callsActive.inc({ transport: this.transport.kind });
    clock.add(this);
    const cfg = this.agent.config;
    const [stt, tts] = await Promise.allSettled([
      this.init.providers.stt.open(
        { model: cfg.stt?.model, language: cfg.language, endpointingMs: cfg.stt?.endpointingMs ?? 300, utteranceEndMs: 1000 },
        {
          onTranscript: (t) => this.events.onTranscript?.(t),
          onUtteranceEnd: () => this.events.onUtteranceEnd?.(),
          onReconnected: (r) => this.log.warn('speech-to-text reconnected', r),
          onError: (err) => this.events.onProviderError?.('stt', err),
        },
      ),
      this.init.providers.tts.open(
        { voice: cfg.voice },
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
    this.framesIn++;
    this.framesInCounter.inc();
    const n = ulawDecodeInto(ulaw, this.pcm);
    const v = this.vad.process(this.pcm, n);
    const now = performance.now();
    if (v.change === 'start') this.events.onSpeechStart?.(now);
    else if (v.change === 'end') this.events.onSpeechEnd?.(now - 300);
    if (v.speech) this.lastSpeechAt = now;
    // The quiet frames that may end a turn go out at once (the STT's endpointing
    // counts them); loud frames and long silence are batched.
    this.stt?.send(ulaw, !v.loud && now - this.lastSpeechAt < 600);
  }

  dtmf(digit: string): void {
    if (!this.ended) this.events.onDtmf?.(digit);
  }

  get callerSpeaking(): boolean {
    return this.vad.speaking;
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

  resume(): void {
    this.playout.paused = false;
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

  private readonly tickPlayout = () => this.playout.tick();
  private readonly kickPlayout = () => this.playout.tick(false);

  tick(): void {
    if (this.ended) return;
    if (this.transport.batch) this.transport.batch(this.tickPlayout);
    else this.playout.tick();
  }

  onMarkPlayed(name: string): boolean {
    return this.playout.onMarkPlayed(name);
  }

  /** Ends the session (idempotent): releases streams and the clock slot, records the outcome. */
  async end(reason: string, outcome = 'completed'): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    clock.delete(this);
    callsActive.dec({ transport: this.transport.kind });
    callsTotal.inc({ transport: this.transport.kind, outcome });
    this.events.onEnd?.(reason);
    for (const fn of this.endListeners) fn(reason);
    await Promise.allSettled([
      this.init.calls.updateCallStatus(this.callId, 'completed', reason).catch((err) => this.log.warn('call record update failed', { err })),
      this.stt?.close(),
      this.tts?.close(),
    ]);
    this.log.info('call ended', { reason, framesIn: this.framesIn, framesOut: this.playout.framesSent });
  }
}
