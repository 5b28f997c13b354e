// The conversation on one call: caller turns (STT + VAD, src/pipeline/
// turn-taking) → Bedrock streaming → sentence splitter → TTS → paced
// playout, with barge-in, tools, call policies and a latency timeline per
// turn. It drives a CallSession and never knows which transport carries it.
import { bargeIns, countBadInput, preemptiveTotal, providerErrors } from '../metrics/index.js';
import { guard, reportInternalError } from '../guard.js';
import type { CallSession } from '../call/session.js';
import { clock, type Tickable } from '../call/clock.js';
import type { ChatMessage, ContentBlock, LanguageModel, LlmEvent, SttTurn, TextToSpeech } from '../providers/types.js';
import type { CallStore, TurnRecord } from '../store/types.js';
import { synthesize } from '../providers/emulators/voice.js';
import { isFluxModel } from '../providers/deepgram/flux.js';
import { SentenceSplitter } from './sentences.js';
import { TurnDetector, DEFAULT_TURN_SETTINGS, type TurnCommit, type TurnSettings } from './turn-taking.js';
import { TurnTimeline } from './timeline.js';
import { FirstClauseSynth, normaliseWords, replay, type Preemptive } from './preemptive.js';
import { callWebhookTool, sendDtmf, toolSpecs, type ToolNetwork } from './tools.js';
import { decideTransfer, maskTarget } from './transfer-policy.js';
import { recalled } from '../postcall/recall.js';

export interface ConversationOptions {
  llm: LanguageModel;
  /**
   * Synthesises a preemptive reply's first clause before the turn is
   * confirmed, on a stream of its own, held and never played unless the
   * turn is confirmed (./preemptive.ts). Absent: the clause waits for the
   * confirmation.
   */
  tts?: TextToSpeech;
  calls: CallStore;
  turn?: TurnSettings;
  /** Caller speech over the agent for this long (without words yet) is a barge-in. */
  bargeInMinMs?: number;
  /** A VAD onset with no words and no sustained speech within this window is a false interruption. */
  falseInterruptionMs?: number;
  repromptAfterMs?: number;
  maxReprompts?: number;
  maxCallMs?: number;
  /** Say this while a slow tool runs. */
  fillerAfterMs?: number;
  /** Where HTTP tools may connect (TOOLS_ALLOW_PRIVATE_NETWORKS); default: public addresses only. */
  toolNetwork?: ToolNetwork;
  /** The tenant's outbound guards for a transfer target (src/outbound/guards.ts): a refusal code, or null to go ahead. */
  checkTransfer?(tenantId: string, target: string): Promise<string | null>;
}

/** Session events that come from the caller (held while an answering-machine screening decides). */
const CALLER_EVENTS = ['onTranscript', 'onSttTurn', 'onUtteranceEnd', 'onSpeechStart', 'onSpeechEnd', 'onDtmf'] as const;

const APOLOGY = "I'm sorry, we're having technical difficulties. Please call back later. Goodbye.";
const BACKCHANNEL = /^(m+-?h+m+|mhm+|uh-?huh|yeah|yes|ok(ay)?|right|sure|hmm+|uh+|um+)[.!?,]*$/i;

interface Reply {
  seq: number;
  userText: string;
  abort: AbortController;
  splitter: SentenceSplitter;
  timeline: TurnTimeline;
  chunks: number;
  flushes: number;
  segments: number[];
  segmentText: Map<number, string>;
  heard: Set<number>;
  llmDone: boolean;
  endCall: boolean;
  finished: boolean;
  /** Its first audio arrived while the agent's earlier speech was still playing, at this time. */
  queuedBehindAt?: number;
  /** The preemptive generation this reply adopted: its first LLM round replays that stream. */
  pre?: Preemptive;
  /** Chunks waiting until the pre-synthesised first clause is all queued (null: none waiting). */
  held: string[] | null;
}

export { normaliseWords };

export class Conversation implements Tickable {
  readonly history: ChatMessage[] = [];
  private readonly detector: TurnDetector;
  private reply: Reply | null = null;
  private seq = 0;
  /** A suspected barge-in: output held since `at`; `quietAt`: the caller's speech ended (VAD). */
  private pendingBargeIn: { at: number; words: boolean; quietAt?: number } | null = null;
  private lastActivity = performance.now();
  private reprompts = 0;
  private endAfterIdle: string | null = null;
  private ending = false;
  private lastFinalAt = 0;
  private dtmf = '';
  private lastDtmfAt = 0;
  /** The preemptive generation in flight, not yet confirmed or discarded. */
  private pre: Preemptive | null = null;
  private readonly o: Required<Omit<ConversationOptions, 'llm' | 'calls' | 'turn' | 'toolNetwork' | 'tts' | 'checkTransfer'>>;

  constructor(readonly session: CallSession, private readonly opts: ConversationOptions) {
    this.o = {
      bargeInMinMs: opts.bargeInMinMs ?? 500,
      falseInterruptionMs: opts.falseInterruptionMs ?? 700,
      repromptAfterMs: opts.repromptAfterMs ?? 10_000,
      maxReprompts: opts.maxReprompts ?? 2,
      maxCallMs: opts.maxCallMs ?? 15 * 60_000,
      fillerAfterMs: opts.fillerAfterMs ?? 1000,
    };
    const endpointing = session.agent.config.stt?.endpointingMs;
    // Flux signals an early end of turn itself (EagerEndOfTurn); Nova-3 gets ours (a stable text in silence).
    const novaEager = session.agent.config.preemptive !== false && !isFluxModel(session.agent.config.stt?.model);
    this.detector = new TurnDetector(
      (c) => this.onCommit(c),
      opts.turn ?? { ...DEFAULT_TURN_SETTINGS, ...(endpointing ? { silenceMs: Math.max(200, endpointing) } : {}) },
      novaEager ? (text) => this.startPreemptive(text) : null,
    );
    Object.assign(session.events, {
      onTranscript: (t: { text: string; isFinal: boolean; speechFinal: boolean }) => this.onTranscript(t.text, t.isFinal, t.speechFinal),
      onSttTurn: (t: SttTurn) => this.onSttTurn(t),
      onUtteranceEnd: () => {
        this.detector.utteranceEnd();
        this.detector.tick(performance.now());
      },
      onSpeechStart: () => this.onSpeechStart(),
      onSpeechEnd: (at: number) => {
        this.detector.speechEnd(at);
        if (this.pendingBargeIn) this.pendingBargeIn.quietAt ??= performance.now();
      },
      onDtmf: (d: string) => {
        this.dtmf += d;
        this.lastDtmfAt = performance.now();
      },
      onTtsFirstByte: (id: number, at: number) => this.onTtsFirstByte(id, at),
      onSegmentStart: (id: number, at: number) => this.onSegmentStart(id, at),
      onSegmentHeard: (id: number) => this.onSegmentHeard(id),
      onAgentIdle: () => this.onAgentIdle(),
      onProviderError: (which: string, err: Error) => this.fail(`${which} failed: ${err.message}`),
      onEnd: () => this.stop(),
    });
    session.whenEnded(() => this.stop());
    (session as unknown as { conversation: Conversation }).conversation = this;
  }

  private get system(): string {
    const c = this.session.agent.config;
    return `${c.prompt}\n\nYou are speaking on a phone call: answer in short spoken sentences, no lists or markdown.` +
      (c.greeting ? `\nYou opened the call by saying: "${c.greeting}"` : '') +
      recalled(this.session);
  }

  /**
   * Joins the clock and speaks the greeting. On a call screened for an
   * answering machine (src/pipeline/voicemail.ts) both wait for who
   * answered, and the caller's events meanwhile ("Hello?", the machine's
   * greeting) are not turns: on a person the conversation starts afresh,
   * otherwise it never starts.
   */
  start(): void {
    const screen = this.session.screening;
    if (!screen) return this.begin();
    const held = CALLER_EVENTS.map((k) => [k, this.session.events[k]] as const);
    for (const [k] of held) this.session.events[k] = undefined;
    void screen.converse.then((converse) => {
      if (!converse || this.stopped || this.session.isEnded) return;
      for (const [k, fn] of held) (this.session.events as Record<string, unknown>)[k] = fn;
      this.detector.reset();
      this.lastActivity = performance.now();
      this.begin();
    }).catch((err) => reportInternalError('call', err));
  }

  private begin(): void {
    clock.add(this);
    void this.opts.llm.warm?.();
    const greeting = this.session.agent.config.greeting;
    if (greeting) {
      this.session.say(greeting);
      this.session.flush();
      void this.opts.calls.addTranscript(this.session.callId, 'agent', greeting).catch(() => {});
    }
  }

  private stopped = false;

  /** Our clock tick threw: end this call (the clock already took us off it). */
  tickFailed(): void {
    void this.session.end('internal error', 'failed').catch((err) => reportInternalError('call', err));
  }

  /**
   * The call ended (hang-up, provider failure, maximum duration, shutdown).
   * A reply in flight is stored as a turn with what the caller heard of it;
   * words the caller said that no reply answered yet are stored too.
   */
  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clock.delete(this);
    this.discardPreemptive();
    if (this.reply && !this.reply.finished) this.abandonReply(this.session.playout.heard().segments);
    this.reply?.abort.abort();
    const unanswered = this.detector.text.trim();
    if (unanswered && !this.reply) {
      const seq = ++this.seq;
      void this.storeTurn({ seq, userText: unanswered, assistantText: '', interrupted: true, latencies: {} });
      this.turns.push({ seq, user: unanswered, agent: '', interrupted: true, latencies: {} });
    }
  }

  /** Ends the reply in flight without a barge-in; the turn keeps what the caller heard. */
  private abandonReply(segments: HeardSegment[]): void {
    const r = this.reply;
    if (!r || r.finished) return;
    r.abort.abort();
    this.finishReply(r, true, heardText(r, segments));
  }

  /**
   * Writes a turn; a failed write is retried with backoff (the write is an
   * upsert on (call, seq), so a retry never duplicates), then logged and
   * counted in aybiza_internal_errors_total{where="store"}: never dropped
   * silently.
   */
  private async storeTurn(t: TurnRecord): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.opts.calls.addTurn(this.session.callId, t);
        return;
      } catch (err) {
        if (attempt > TURN_RETRY_MS.length) {
          reportInternalError('store', err, { callId: this.session.callId, seq: t.seq });
          this.session.log.error('turn not stored after retries', { seq: t.seq, attempts: attempt, err: (err as Error).message });
          return;
        }
        this.session.log.warn('turn write failed; retrying', { seq: t.seq, attempt, err: (err as Error).message });
        await new Promise((resolve) => setTimeout(resolve, TURN_RETRY_MS[attempt - 1]));
      }
    }
  }

  private forSegment(id: number): Reply | null {
    return this.reply && this.reply.segments.includes(id) ? this.reply : null;
  }

  private get agentSpeaking(): boolean {
    return this.reply !== null && !this.reply.finished && (this.session.playout.speaking || !this.reply.llmDone);
  }

  // ---- caller side -----------------------------------------------------

  private onTranscript(text: string, isFinal: boolean, speechFinal: boolean): void {
    const words = text.trim();
    if (words) {
      this.lastActivity = performance.now();
      this.reprompts = 0;
    }
    if (isFinal) this.lastFinalAt = performance.now();
    if (this.pendingBargeIn && words && !BACKCHANNEL.test(words)) this.confirmBargeIn();
    else if (this.pendingBargeIn && words) this.pendingBargeIn.words = false;
    this.detector.transcript(text, isFinal, speechFinal);
    // The caller's words moved away from what the preemptive generation answers: it is void.
    const now = normaliseWords(this.detector.text);
    if (this.pre && now && now !== this.pre.key) this.discardPreemptive();
    // The endpoint may complete the turn: commit now, not at the next 20 ms
    // tick (that wait would sit on every turn's critical path).
    if (isFinal) this.detector.tick(performance.now());
  }

  /** Sees every turn event of an STT with its own end-of-turn model, after the conversation acted on it (tests, diagnostics). */
  sttTurnObserver: ((t: SttTurn) => void) | null = null;

  /**
   * Turn events from an STT that models the end of turn (Deepgram Flux).
   * The words of StartOfTurn/Update/EagerEndOfTurn/TurnResumed are the
   * turn's live text: they confirm a barge-in only once our VAD has heard
   * the caller (onSpeechStart holds the agent's audio first), so noise the
   * model transcribes does not cut the agent off. EndOfTurn commits the turn.
   */
  private onSttTurn(t: SttTurn): void {
    if (t.event === 'EndOfTurn') {
      this.lastFinalAt = performance.now();
      // While the agent talks, a turn our VAD never heard is not the caller (echo, background voices).
      if (this.agentSpeaking && !this.detector.heardSpeech) this.detector.reset();
      else this.detector.modelEndOfTurn(t.text, performance.now(), this.session.lastCallerSpeechAt);
      // No reply adopted it (no words, echo, the call ending): void.
      this.discardPreemptive();
    } else {
      this.onTranscript(t.text, false, false);
      if (t.event === 'EagerEndOfTurn') this.onEagerEndOfTurn(t.text);
      else if (t.event === 'TurnResumed') this.onTurnResumed();
    }
    this.sttTurnObserver?.(t);
  }

  /** Flux expects the turn to end with `text` (EagerEndOfTurn): preemptive generation starts (nothing is played). */
  protected onEagerEndOfTurn(text: string): void {
    if (this.session.agent.config.preemptive !== false) this.startPreemptive(text);
  }

  /** The caller went on after an EagerEndOfTurn: the preemptive generation is void. */
  protected onTurnResumed(): void {
    this.discardPreemptive();
  }

  /**
   * Starts the LLM for tentative caller words, on the history as it would be
   * once they are committed, without touching the history, the transcript,
   * the reply's splitter or the call's TTS stream; its first clause is
   * synthesised on a stream of its own and held (presynthesise). Only between
   * replies (not while the agent talks or the call is ending).
   */
  private startPreemptive(text: string): void {
    const key = normaliseWords(text);
    if (!key || this.stopped || this.ending || (this.reply && !this.reply.finished)) return;
    // The same words again: keep the request in flight (one that asked for a tool would ask again).
    if (this.pre && this.pre.key === key) return;
    this.discardPreemptive();
    const p: Preemptive = {
      text, key, abort: new AbortController(), requestAt: performance.now(), events: [], done: false, unusable: false, adopted: false, wake: null,
      splitter: new SentenceSplitter(), synth: null,
    };
    this.pre = p;
    const cfg = this.session.agent.config;
    const last = this.history[this.history.length - 1];
    const messages: ChatMessage[] = last?.role === 'user'
      ? [...this.history.slice(0, -1), { role: 'user', content: [...last.content, { text }] }]
      : [...this.history, { role: 'user', content: [{ text }] }];
    const push = (ev: LlmEvent) => {
      p.events.push({ ev, at: performance.now() });
      p.wake?.();
      if (ev.type === 'text' && !p.synth && !p.adopted) this.presynthesise(p, p.splitter.push(ev.text)[0]);
    };
    void (async () => {
      try {
        for await (const ev of this.opts.llm.stream(
          { system: this.system, messages, tools: toolSpecs(cfg.tools), model: cfg.llm?.model, temperature: cfg.llm?.temperature, maxTokens: cfg.llm?.maxTokens, usage: this.session.usage },
          p.abort.signal,
        )) {
          if (p.abort.signal.aborted) return;
          if (ev.type === 'toolUse' && !p.adopted) {
            // Tools run only for a confirmed turn: stop here; the confirmed turn starts afresh.
            p.unusable = true;
            p.abort.abort();
            p.synth?.close();
            return;
          }
          push(ev);
        }
      } catch (err) {
        p.error = err as Error;
        if (!p.abort.signal.aborted) p.unusable = true;
      } finally {
        p.done = true;
        // A reply shorter than a clause: the whole of it is the first chunk.
        if (!p.synth && !p.adopted && !p.unusable && !p.abort.signal.aborted) this.presynthesise(p, p.splitter.flush()[0]);
        p.wake?.();
      }
    })();
  }

  /** Starts the synthesis of a preemptive generation's first clause (held, not played), when there is a TTS to do it. */
  private presynthesise(p: Preemptive, clause: string | undefined): void {
    if (!clause || !this.opts.tts || this.pre !== p) return;
    p.synth = new FirstClauseSynth(clause, this.meteredTts(this.opts.tts), this.session.agent.config.voice);
  }

  /** The TTS with this call's usage meter on every stream it opens (a held clause is billed whether or not it is played). */
  private meteredTts(tts: TextToSpeech): TextToSpeech {
    const usage = this.session.usage;
    return { name: tts.name, open: (o, e) => tts.open({ ...o, usage }, e) };
  }

  /** Aborts the preemptive generation in flight, if any (counted discarded). */
  private discardPreemptive(): void {
    const p = this.pre;
    if (!p) return;
    this.pre = null;
    p.abort.abort();
    p.synth?.close();
    preemptiveTotal.inc({ outcome: 'discarded' });
  }

  /** The preemptive generation for the confirmed words `text`, counted used; any other is discarded. */
  private adoptPreemptive(text: string): Preemptive | null {
    const p = this.pre;
    if (!p || p.unusable || p.abort.signal.aborted || p.key !== normaliseWords(text)) {
      this.discardPreemptive();
      return null;
    }
    this.pre = null;
    p.adopted = true;
    preemptiveTotal.inc({ outcome: 'used' });
    return p;
  }

  private onSpeechStart(): void {
    this.lastActivity = performance.now();
    this.detector.speechStart();
    if (this.agentSpeaking && !this.pendingBargeIn && !this.endAfterIdle) {
      // Tentative: hold the agent's audio until words or sustained speech confirm it.
      this.pendingBargeIn = { at: performance.now(), words: false };
      this.session.pause();
    }
  }

  /** Ends a hold on the agent's output: its time goes to the reply's timeline as waits. */
  private endHold(now: number): void {
    const p = this.pendingBargeIn;
    this.pendingBargeIn = null;
    if (!p || !this.reply) return;
    const quiet = p.quietAt !== undefined && p.quietAt < now ? p.quietAt : now;
    this.reply.timeline.span('barge_in_check', p.at, quiet);
    this.reply.timeline.span('false_interruption', quiet, now);
  }

  private confirmBargeIn(): void {
    const r = this.reply;
    this.endHold(performance.now());
    if (!r || r.finished) {
      this.session.resume();
      return;
    }
    bargeIns.inc();
    r.abort.abort();
    // Clear before releasing the hold: resume() sends what is queued at once,
    // and the caller would hear up to the transport's lead of the reply they
    // just interrupted.
    const cleared = this.session.clear();
    this.session.resume();
    const heard = heardText(r, cleared.segments);
    this.session.log.info('barge-in', { heardMs: Math.round(cleared.heardMs), heard });
    this.finishReply(r, true, heard);
  }

  private onCommit(c: TurnCommit): void {
    if (this.ending) return this.discardPreemptive();
    if (this.agentSpeaking && BACKCHANNEL.test(c.text)) return this.discardPreemptive(); // "mm-hm" while the agent talks
    if (this.reply && !this.reply.finished) this.confirmBargeIn();
    // Committed on our own silence before the STT endpointed: have it finalise what it holds.
    if (c.reason === 'silence') this.session.finalizeStt();
    this.startReply(c.text, c);
  }

  tick(): void {
    const now = performance.now();
    this.detector.tick(now);
    const p = this.pendingBargeIn;
    if (p) {
      if (this.session.callerSpeaking && now - p.at >= this.o.bargeInMinMs) this.confirmBargeIn();
      else if (!this.session.callerSpeaking && now - p.at >= this.o.falseInterruptionMs) {
        // A cough or "mm-hm": keep the reply.
        this.endHold(now);
        this.session.resume();
        this.detector.reset();
      }
    }
    if (this.dtmf && now - this.lastDtmfAt > 1500 && !this.ending) {
      const digits = this.dtmf.split('').join(' ');
      this.dtmf = '';
      if (this.reply && !this.reply.finished) this.confirmBargeIn();
      this.startReply(`(pressed on the keypad) ${digits}`, null);
    }
    if (this.ending) return;
    if (now - this.session.startedAt > this.o.maxCallMs) {
      this.policy('We have reached the time limit for this call. Goodbye.', 'maximum call duration');
    } else if (!this.reply && !this.session.callerSpeaking && !this.detector.text && !this.session.playout.speaking && now - this.lastActivity > this.o.repromptAfterMs) {
      this.lastActivity = now;
      if (this.reprompts++ < this.o.maxReprompts) this.sayPolicy('Are you still there?');
      else this.policy("I haven't heard from you, so I'll end the call now. Goodbye.", 'caller silent');
    }
  }

  // ---- agent side --------------------------------------------------------

  private pushUser(blocks: ContentBlock[]): void {
    const last = this.history[this.history.length - 1];
    if (last?.role === 'user') last.content.push(...blocks);
    else this.history.push({ role: 'user', content: blocks });
  }

  private startReply(text: string, c: TurnCommit | null): void {
    this.lastActivity = performance.now();
    const pre = this.adoptPreemptive(text) ?? undefined;
    const r: Reply = {
      pre, seq: ++this.seq, userText: text, abort: pre?.abort ?? new AbortController(), splitter: new SentenceSplitter(), timeline: new TurnTimeline(),
      chunks: 0, flushes: 0, segments: [], segmentText: new Map(), heard: new Set(), llmDone: false, endCall: false, finished: false, held: null,
    };
    if (c) {
      r.timeline.mark('speechEnd', c.speechEndMs);
      if (this.lastFinalAt) r.timeline.mark('sttFinal', Math.min(this.lastFinalAt, c.commitMs));
      r.timeline.mark('commit', c.commitMs);
    }
    this.reply = r;
    this.session.beginReply();
    this.pushUser([{ text }]);
    void this.opts.calls.addTranscript(this.session.callId, 'caller', text).catch(() => {});
    void this.runLlm(r).catch((err: Error) => {
      // A bug of ours while iterating the model's stream (not a provider
      // error) is counted as an internal error; either way only this call ends.
      if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) reportInternalError('provider', err);
      if (r.abort.signal.aborted) return;
      providerErrors.inc({ provider: 'llm', kind: 'gave_up' });
      this.fail(`language model failed: ${err.message}`);
    }).finally(() => {
      // Aborted without a barge-in (a policy took over): nothing more to say.
      if (this.reply === r) this.session.replyState(null);
    });
  }

  private speak(r: Reply, chunk: string): void {
    if (r.finished || r.abort.signal.aborted) return;
    if (r.chunks++ === 0) {
      r.timeline.mark('firstSentence', performance.now());
      const synth = r.pre?.synth;
      if (synth?.usableFor(chunk)) return this.playSynthesised(r, chunk, synth);
    }
    if (r.held) r.held.push(chunk);
    else this.say(r, chunk);
  }

  private say(r: Reply, chunk: string): void {
    const id = this.session.say(chunk);
    if (!r.segments.includes(id)) r.segments.push(id);
    r.segmentText.set(id, (r.segmentText.get(id) ?? '') + chunk + ' ');
    this.flushWhenDue(r);
  }

  /**
   * The reply's first chunk was synthesised before the turn was confirmed
   * (FirstClauseSynth): its audio becomes the reply's first segment, sent as
   * it is there. Later chunks wait until all of it is queued (the playout
   * takes audio in arrival order, so two streams must not interleave), then
   * go to the call's own TTS stream.
   */
  private playSynthesised(r: Reply, chunk: string, synth: FirstClauseSynth): void {
    const playout = this.session.playout;
    const id = playout.beginSegment(chunk + ' ');
    r.segments.push(id);
    r.segmentText.set(id, chunk + ' ');
    r.flushes++;
    r.timeline.mark('ttsRequest', synth.requestAt);
    r.held = [];
    synth.attach({
      audio: (bytes, firstByteAt) => {
        if (r.finished || r.abort.signal.aborted) return;
        this.onTtsFirstByte(id, firstByteAt);
        playout.push(id, bytes);
        this.kickPlayout();
      },
      end: () => {
        playout.endSegment(id);
        const held = r.held ?? [];
        r.held = null;
        if (r.finished || r.abort.signal.aborted) return;
        this.kickPlayout();
        for (const c of held) this.say(r, c);
        // The LLM finished meanwhile: its last flush found nothing said yet.
        if (r.llmDone) {
          this.session.flush();
          this.maybeFinished(r);
        }
      },
    });
  }

  /** Audio after a pause goes out now, not at the next clock slot (as the session does for its own TTS audio). */
  private kickPlayout(): void {
    const s = this.session;
    if (s.isEnded || s.playout.idleSinceMs() < 0) return;
    const kick = () => s.playout.tick(false);
    if (s.transport.batch) s.transport.batch(kick);
    else kick();
  }

  /** Audio queued ahead of the caller below which said text is flushed: several TTS first-byte times. */
  private static readonly FLUSH_AHEAD_MS = 1500;
  private flushTimer: NodeJS.Timeout | null = null;

  /**
   * Flush policy: synthesis stays ahead of playback with few flushes. A
   * reply's first chunk is flushed at once (time to first audio); a later one
   * as soon as less than FLUSH_AHEAD_MS of audio is queued ahead of the
   * caller. While more is queued, text waits, grouped with the sentences
   * after it, and a timer flushes the group when the queue has run down to
   * that mark, so it never waits for the end of the reply or for a tool.
   * Deepgram's 20 flushes a minute per connection are the TTS stream's
   * concern (it moves to a fresh connection); grouping keeps that rare.
   */
  private flushWhenDue(r: Reply): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (r.finished || r.abort.signal.aborted || r.llmDone || this.reply !== r) return;
    const ahead = this.session.playout.queuedMs;
    if (r.flushes > 0 && ahead > Conversation.FLUSH_AHEAD_MS) {
      // At least a frame: while the output is held (a suspected barge-in) the queue does not run down.
      this.flushTimer = setTimeout(guard('timer', () => this.flushWhenDue(r)), Math.max(20, ahead - Conversation.FLUSH_AHEAD_MS));
      return;
    }
    r.flushes++;
    r.timeline.mark('ttsRequest', performance.now());
    this.session.flush();
  }

  private async runLlm(r: Reply): Promise<void> {
    const cfg = this.session.agent.config;
    const tools = toolSpecs(cfg.tools);
    for (let round = 0; round < 4 && !r.abort.signal.aborted; round++) {
      // The first round of an adopted preemptive generation replays its buffered stream.
      const pre = round === 0 ? r.pre : undefined;
      const requestAt = pre?.requestAt ?? performance.now();
      r.timeline.mark('llmRequest', requestAt);
      let output = false;
      // The round's first output: the first round's is llm_ttft; a later round (after a tool) is a wait of its own.
      // Replayed events carry their arrival time.
      let arrivedAt: number | undefined;
      const at = () => arrivedAt ?? performance.now();
      const firstOutput = () => {
        if (output) return;
        output = true;
        if (round === 0) r.timeline.mark('llmFirstOutput', at());
        else r.timeline.span('llm_round2', requestAt, performance.now());
      };
      const text: string[] = [];
      const uses: { toolUseId: string; name: string; input: unknown }[] = [];
      const source = pre ? replay(pre) : this.opts.llm.stream(
        { system: this.system, messages: this.history, tools, model: cfg.llm?.model, temperature: cfg.llm?.temperature, maxTokens: cfg.llm?.maxTokens, usage: this.session.usage },
        r.abort.signal,
      );
      for await (const item of source) {
        if (r.abort.signal.aborted) return;
        const ev = 'ev' in item ? item.ev : item;
        arrivedAt = 'ev' in item ? item.at : undefined;
        if (ev.type === 'text') {
          firstOutput();
          r.timeline.mark('firstToken', at());
          text.push(ev.text);
          for (const chunk of r.splitter.push(ev.text)) this.speak(r, chunk);
        } else if (ev.type === 'toolUse') {
          uses.push(ev);
        }
      }
      if (r.abort.signal.aborted) return;
      arrivedAt = undefined;
      firstOutput();
      for (const chunk of r.splitter.flush()) this.speak(r, chunk);
      const content: ContentBlock[] = [];
      if (text.join('').trim()) content.push({ text: text.join('') });
      for (const u of uses) content.push({ toolUse: u });
      if (content.length) this.history.push({ role: 'assistant', content });
      if (uses.length === 0) break;
      const results: ContentBlock[] = [];
      const toolAt = performance.now();
      this.session.replyState('tool');
      for (const u of uses) results.push({ toolResult: await this.runTool(r, u) });
      r.timeline.span('tool', toolAt, performance.now());
      if (r.abort.signal.aborted) return;
      this.session.replyState('llm_tokens');
      this.pushUser(results);
      if (r.endCall) {
        if (r.chunks === 0) this.speak(r, 'Thank you for calling. Goodbye.');
        break;
      }
    }
    this.session.flush();
    r.llmDone = true;
    if (this.reply === r) this.session.replyState(null);
    if (r.chunks === 0) this.finishReply(r, false, '');
    else this.maybeFinished(r);
  }

  private async runTool(r: Reply, u: { toolUseId: string; name: string; input: unknown }): Promise<{ toolUseId: string; content: ({ text: string } | { json: unknown })[]; status: 'success' | 'error' }> {
    const reply = (ok: boolean, v: unknown) => ({ toolUseId: u.toolUseId, content: [{ json: v as object }], status: ok ? ('success' as const) : ('error' as const) });
    if (u.name === 'end_call') {
      r.endCall = true;
      return reply(true, { ended: true });
    }
    if (u.name === 'send_dtmf') {
      const out = sendDtmf(this.session, u.input);
      return reply(out.ok, out.result);
    }
    if (u.name === 'transfer_call') {
      // The target comes from the model (so from the caller): only the agent's transfer.targets.
      const asked = String((u.input as { target?: unknown })?.target ?? '');
      const d = decideTransfer(this.session.agent.config.transfer?.targets, asked);
      if (!d.allowed) {
        countBadInput('tool', 'transfer_target_refused');
        this.session.log.warn('transfer refused', { reason: d.reason, target: maskTarget(asked) });
        return reply(false, { error: d.reason === 'no_targets' ? 'transfers are not enabled for this agent' : 'transfer to that destination is not allowed' });
      }
      // Toll fraud: a transfer is a call out, under the same country and do-not-call guards as a dial.
      const refused = await this.opts.checkTransfer?.(this.session.agent.tenantId, d.target);
      if (refused) {
        this.session.log.warn('transfer refused by the outbound guards', { reason: refused, target: maskTarget(d.target) });
        return reply(false, { error: 'transfer to that destination is not allowed' });
      }
      const ok = (await this.session.transport.transfer?.(d.target)) ?? false;
      return reply(ok, ok ? { transferred: d.target } : { error: 'transfer is not available on this call' });
    }
    const tool = this.session.agent.config.tools?.find((t) => t.name === u.name);
    if (!tool) return reply(false, { error: `unknown tool ${u.name}` });
    const filler = setTimeout(guard('timer', () => this.speak(r, 'One moment please.')), this.o.fillerAfterMs);
    try {
      const out = await callWebhookTool(tool, u.input, r.abort.signal, this.opts.toolNetwork);
      return reply(out.ok, out.result);
    } finally {
      clearTimeout(filler);
    }
  }

  private onTtsFirstByte(id: number, at: number): void {
    const r = this.forSegment(id);
    if (!r || r.timeline.has('ttsFirstByte')) return;
    r.timeline.mark('ttsFirstByte', at);
    // Audio after a pause goes out at once; behind speech still playing it waits its turn.
    if (this.session.playout.idleSinceMs() < 0) r.queuedBehindAt = at;
  }

  private onSegmentStart(id: number, at: number): void {
    const r = this.forSegment(id);
    if (!r) return;
    if (r.queuedBehindAt !== undefined && !r.timeline.has('firstFrameSent')) r.timeline.span('earlier_speech', r.queuedBehindAt, at);
    r.timeline.mark('firstFrameSent', at);
  }

  private onSegmentHeard(id: number): void {
    const r = this.forSegment(id);
    if (!r) return;
    r.heard.add(id);
    this.maybeFinished(r);
  }

  private maybeFinished(r: Reply): void {
    if (!r.finished && r.llmDone && !r.held && r.segments.every((id) => r.heard.has(id))) {
      this.finishReply(r, false, r.segments.map((id) => (r.segmentText.get(id) ?? '').trim()).join(' '));
    }
  }

  private onAgentIdle(): void {
    if (this.reply) this.maybeFinished(this.reply);
    if (this.endAfterIdle && !this.session.playout.speaking) void this.session.end(this.endAfterIdle);
  }

  private finishReply(r: Reply, interrupted: boolean, heardText: string): void {
    if (r.finished) return;
    r.finished = true;
    r.pre?.synth?.close();
    if (this.reply === r) {
      this.reply = null;
      this.session.replyState(null);
    }
    this.lastActivity = performance.now();
    if (interrupted) {
      // Keep in the history only what the caller heard.
      const last = this.history[this.history.length - 1];
      if (last?.role === 'assistant') {
        const rest = last.content.filter((b) => !('text' in b));
        last.content = heardText ? [{ text: heardText }, ...rest] : rest;
        if (last.content.length === 0) this.history.pop();
      } else if (heardText) {
        this.history.push({ role: 'assistant', content: [{ text: heardText }] });
      }
    }
    const { latencies } = r.timeline.observe({ e2eMs: this.session.agent.config.latencyBudgetMs ?? 1500, serverMs: 10 });
    const rounded = Object.fromEntries(Object.entries(latencies).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Math.round(v! * 10) / 10]));
    void this.storeTurn({ seq: r.seq, userText: r.userText, assistantText: heardText, interrupted, latencies: rounded });
    if (heardText) void this.opts.calls.addTranscript(this.session.callId, 'agent', heardText).catch(() => {});
    this.turns.push({ seq: r.seq, user: r.userText, agent: heardText, interrupted, latencies: rounded });
    if (r.endCall && !interrupted) {
      this.ending = true;
      this.endAfterIdle = 'agent ended the call';
      if (!this.session.playout.speaking) void this.session.end(this.endAfterIdle);
    }
  }

  /** Finished turns, for the demo and tests. */
  readonly turns: { seq: number; user: string; agent: string; interrupted: boolean; latencies: Record<string, number> }[] = [];

  private sayPolicy(text: string): void {
    this.session.say(text);
    this.session.flush();
    void this.opts.calls.addTranscript(this.session.callId, 'agent', text).catch(() => {});
  }

  /** Says a closing line, then ends the call once it has been heard. */
  private policy(text: string, reason: string): void {
    if (this.ending) return;
    this.ending = true;
    this.discardPreemptive();
    this.reply?.abort.abort();
    this.endAfterIdle = reason;
    this.sayPolicy(text);
  }

  /** Providers stay down: a spoken apology (pre-rendered if TTS itself is down), then hang up. */
  private fail(reason: string): void {
    if (this.ending) return;
    this.ending = true;
    this.discardPreemptive();
    this.session.log.error('ending the call: provider failure', { reason });
    // The reply in flight is stored with what the caller heard before the failure.
    const cleared = this.session.clear();
    this.abandonReply(cleared.segments);
    this.endAfterIdle = 'provider failure';
    if (this.session.ready.tts && !/tts/.test(reason)) {
      this.sayPolicy(APOLOGY);
    } else {
      const id = this.session.playout.beginSegment(APOLOGY);
      this.session.playout.push(id, synthesize(APOLOGY));
      this.session.playout.endSegment(id);
    }
    // Whatever happens to the audio, the call ends.
    setTimeout(guard('call', () => this.session.end('provider failure')), 15_000).unref();
  }
}

/** Backoff between attempts to store a turn (three retries). */
const TURN_RETRY_MS = [200, 1000, 3000];

type HeardSegment = { id: number; heardFraction: number };

/** What the caller heard of a reply: whole segments heard, the rest cut at the fraction played. */
function heardText(r: Reply, segments: HeardSegment[]): string {
  const partial = new Map(segments.map((s) => [s.id, s.heardFraction]));
  return r.segments
    .map((id) => {
      const text = (r.segmentText.get(id) ?? '').trim();
      if (r.heard.has(id)) return text;
      return cut(text, partial.get(id) ?? 0);
    })
    .filter(Boolean)
    .join(' ');
}

/** The first `fraction` of `text`, cut at a word boundary. */
export function cut(text: string, fraction: number): string {
  if (fraction <= 0) return '';
  if (fraction >= 1) return text;
  const at = Math.round(text.length * fraction);
  const space = text.lastIndexOf(' ', at);
  return text.slice(0, space > 0 ? space : at).trim();
}
