// Preemptive generation (issue 16): an LLM request started on an early
// end-of-turn signal (Flux EagerEndOfTurn, Nova-3 stable interim in silence)
// for tentative words, held until the turn is confirmed with the same words
// (a reply adopts it) or discarded. Its first clause may be synthesised
// meanwhile on a TTS stream of its own and held, never played: a confirmed
// turn then starts with audio already there; a discarded one closes the
// stream and nothing of it is ever heard. Used by ./conversation.ts.
import { guard } from '../guard.js';
import type { LlmEvent, TextToSpeech, TtsStream } from '../providers/types.js';
import { SentenceSplitter } from './sentences.js';

export interface Preemptive {
  text: string;
  key: string;
  abort: AbortController;
  requestAt: number;
  /** The stream's events so far, each with its arrival time. */
  events: { ev: LlmEvent; at: number }[];
  done: boolean;
  /** The stream failed or asked for a tool before the turn was confirmed: not usable. */
  unusable: boolean;
  /** A confirmed reply took it over: from now on its tool requests pass through (the reply runs them). */
  adopted: boolean;
  error?: Error;
  wake: (() => void) | null;
  /** Finds the first clause in the streamed text (the reply's own splitter finds the same one on replay). */
  splitter: SentenceSplitter;
  /** The first clause's synthesis, held until adopted; null before the clause is complete or without a TTS. */
  synth: FirstClauseSynth | null;
}

/** Words compared between the early signal and the confirmed turn: lowercase, no punctuation, single spaces. */
export function normaliseWords(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}\s']/gu, ' ').replace(/\s+/g, ' ').trim();
}

/** The buffered events of an adopted preemptive generation, then the rest as it arrives; its error, if it failed. */
export async function* replay(p: Preemptive): AsyncGenerator<{ ev: LlmEvent; at: number }> {
  for (let i = 0; ; ) {
    while (i < p.events.length) yield p.events[i++];
    if (p.done) {
      if (p.error && !p.abort.signal.aborted) throw p.error;
      return;
    }
    await new Promise<void>((resolve) => (p.wake = resolve));
    p.wake = null;
  }
}

/** Where an adopted synthesis delivers: its audio, then its end. */
export interface SynthSink {
  audio(bytes: Uint8Array, firstByteAt: number): void;
  end(): void;
}

/**
 * TTS of a preemptive generation's first clause on a stream of its own
 * (a warm connection from the provider's pool), so the call's own stream,
 * whose audio goes straight to the caller, never carries a word of a reply
 * that may be discarded. Audio is buffered until attach(); close() drops it.
 * Costs the synthesis of discarded clauses (billed characters) and one
 * connection per preemptive start.
 */
export class FirstClauseSynth {
  readonly requestAt = performance.now();
  firstByteAt: number | null = null;
  /** All audio has arrived (Flushed). */
  flushed = false;
  /** The stream failed or could not open: unusable, the reply says the clause itself. */
  failed = false;
  private readonly buffered: Uint8Array[] = [];
  private stream: TtsStream | null = null;
  private closed = false;
  private sink: SynthSink | null = null;
  private ended = false;
  private timer: NodeJS.Timeout | null = null;
  /** An adopted synthesis that has not finished after this long ends with what it has: the reply's later text waits for it. */
  static readonly ATTACHED_TIMEOUT_MS = 5000;

  constructor(readonly text: string, tts: TextToSpeech, voice: string | undefined) {
    tts.open({ voice }, {
      onAudio: (a) => this.audio(a),
      onFlushed: () => this.done(),
      onError: () => this.fail(),
    }).then(
      guard('provider', (s: TtsStream) => {
        if (this.closed || this.failed) return void s.close().catch(() => {});
        this.stream = s;
        s.speak(text);
        s.flush();
      }),
      () => this.fail(),
    );
  }

  private audio(a: Uint8Array): void {
    if (this.closed || this.failed || this.ended) return;
    this.firstByteAt ??= performance.now();
    if (this.sink) this.sink.audio(a, this.firstByteAt);
    else this.buffered.push(a.slice());
  }

  private done(): void {
    if (this.closed || this.failed) return;
    this.flushed = true;
    this.release();
    this.finish();
  }

  /** The stream failed: unusable if not adopted yet; an adopted one ends with what arrived (never holds the reply). */
  private fail(): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    this.release();
    this.finish();
  }

  private finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const sink = this.sink;
    if (sink && !this.ended) {
      this.ended = true;
      sink.end();
    }
  }

  /** Usable for the reply's first chunk `chunk`: the same text, not failed, nothing delivered elsewhere. */
  usableFor(chunk: string): boolean {
    return !this.failed && !this.closed && !this.sink && chunk === this.text;
  }

  /** Hands the buffered audio to the reply and the rest as it arrives; end() once all of it is there. */
  attach(sink: SynthSink): void {
    this.sink = sink;
    for (const a of this.buffered.splice(0)) sink.audio(a, this.firstByteAt!);
    if (this.flushed) this.finish();
    else this.timer = setTimeout(guard('timer', () => this.fail()), FirstClauseSynth.ATTACHED_TIMEOUT_MS);
  }

  /** Discards it: the stream closes, nothing buffered or still to come is delivered. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffered.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.release();
  }

  /** Closes the stream (done with it); what is buffered stays. */
  private release(): void {
    const s = this.stream;
    this.stream = null;
    void s?.close().catch(() => {});
  }
}
