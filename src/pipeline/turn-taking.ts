// End-of-turn detection: combines the STT's endpointing (finals with
// speech_final, UtteranceEnd) with our own VAD's silence, or takes the end
// of turn from an STT that models it (Flux's EndOfTurn, modelEndOfTurn). A caller reading
// out digits, a spelled name, an e-mail or a card number pauses between
// groups; the required silence is longer when the words so far end that way,
// so they are not cut off mid-string.

export interface TurnSettings {
  /** VAD silence that ends a turn after ordinary speech. */
  silenceMs: number;
  /** Silence required when the turn ends in digits, spelled letters or an e-mail. */
  slowSilenceMs: number;
  /** Commit even without the STT's endpoint flag after this much extra silence. */
  sttGraceMs: number;
  /**
   * Early end-of-turn signal for an STT without its own end-of-turn model
   * (Nova-3): the turn's text unchanged for this long while our VAD hears
   * silence fires `onEager` once (preemptive generation). Default 200.
   */
  eagerStableMs?: number;
}

export const DEFAULT_TURN_SETTINGS: TurnSettings = { silenceMs: 400, slowSilenceMs: 1400, sttGraceMs: 700, eagerStableMs: 200 };

export type TailKind = 'normal' | 'digits' | 'spelling' | 'email';

const NUMBER_WORDS = new Set([
  'zero', 'oh', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'double', 'triple',
  'hundred', 'thousand',
]);
const DIGIT_CUES = new Set(['number', 'phone', 'card', 'code', 'zip', 'account', 'pin', 'postcode', 'digits', 'ssn', 'extension']);
const EMAIL_WORDS = new Set(['at', 'dot', 'underscore', 'dash', 'hyphen']);

/** What the end of an utterance looks like. */
export function classifyTail(text: string): TailKind {
  const words = text.toLowerCase().replace(/[,.!?;:]+$/g, '').trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return 'normal';
  const last = words[words.length - 1];
  if (last.includes('@') || EMAIL_WORDS.has(last)) return 'email';
  const tail = words.slice(-3);
  if (/\d/.test(last) || NUMBER_WORDS.has(last)) {
    // "I was born in 1990" is an ordinary ending; a run of digit groups, or a
    // number right after "my card number", "the code", … usually continues.
    const digitish = tail.filter((w) => /^[\d-]+$/.test(w) || NUMBER_WORDS.has(w)).length;
    if (digitish >= 2) return 'digits';
    if (words.slice(-4, -1).some((w) => DIGIT_CUES.has(w))) return 'digits';
  }
  const letters = tail.filter((w) => /^[a-z]\.?$/.test(w) && w !== 'a' && w !== 'i').length;
  if (/^[a-z]\.?$/.test(last) && letters >= 2) return 'spelling';
  return 'normal';
}

export function requiredSilenceMs(text: string, s: TurnSettings = DEFAULT_TURN_SETTINGS): number {
  return classifyTail(text) === 'normal' ? s.silenceMs : s.slowSilenceMs;
}

export interface TurnCommit {
  text: string;
  /** When the caller stopped speaking (VAD), on the detector's clock. */
  speechEndMs: number;
  /** When the turn was committed. */
  commitMs: number;
  reason: 'endpoint' | 'silence';
}

/**
 * Per-call detector. Feed it STT and VAD events and a clock tick (the shared
 * 20 ms clock); it calls `onCommit` once per caller turn.
 */
export class TurnDetector {
  private finals: string[] = [];
  private interim = '';
  private speaking = false;
  private speechEndMs = -1;
  private endpoint = false;
  /** When the turn's text last changed; the text the eager signal last fired for. */
  private textChangedMs = -1;
  private eagerText = '';
  /**
   * `text` and the silence it needs, kept until the words change: tick()
   * reads both every 20 ms of every call, and rebuilding the string and
   * classifying its tail each time was a steady allocation per call.
   */
  private textCache: string | null = null;
  private needText: string | null = null;
  private needMs = 0;

  /** `onEager`: the Nova-3 early end-of-turn signal (see TurnSettings.eagerStableMs); unset for Flux, which signals it itself. */
  constructor(
    private readonly onCommit: (c: TurnCommit) => void,
    private readonly settings: TurnSettings = DEFAULT_TURN_SETTINGS,
    private readonly onEager: ((text: string) => void) | null = null,
  ) {}

  /** Text heard so far in this turn (finals plus the live interim). */
  get text(): string {
    if (this.textCache === null) this.textCache = [...this.finals, this.interim].filter(Boolean).join(' ').trim();
    return this.textCache;
  }

  speechStart(): void {
    this.speaking = true;
    this.heard = true;
    this.endpoint = false;
  }

  speechEnd(nowMs: number): void {
    this.speaking = false;
    this.speechEndMs = nowMs;
  }

  transcript(text: string, isFinal: boolean, speechFinal: boolean, nowMs = performance.now()): void {
    const before = this.text;
    this.textCache = null;
    if (!isFinal) {
      this.interim = text;
      if (text) this.endpoint = false;
    } else {
      this.interim = '';
      if (text.trim()) this.finals.push(text.trim());
      if (speechFinal) this.endpoint = true;
    }
    if (this.text !== before) this.textChangedMs = nowMs;
  }

  utteranceEnd(): void {
    this.endpoint = true;
  }

  /** Our VAD has heard the caller in this turn (since the last commit or reset). */
  get heardSpeech(): boolean {
    return this.speaking || this.heard;
  }
  private heard = false;

  /**
   * An STT with its own end-of-turn model (Deepgram Flux) ended the turn:
   * commit it now. The model has already weighed the silence (and its
   * eot_timeout_ms bounds the wait), so our VAD's silence rule does not
   * apply; with such an STT no finals arrive and tick() never commits.
   */
  modelEndOfTurn(text: string, nowMs: number, lastSpeechMs = nowMs): void {
    const words = text.trim();
    // The model can end the turn before our VAD's hangover ends the speech: then the last speech frame is the end.
    const speechEndMs = !this.speaking && this.speechEndMs >= 0 ? this.speechEndMs : Math.min(nowMs, lastSpeechMs);
    this.reset();
    if (words) this.onCommit({ text: words, speechEndMs, commitMs: nowMs, reason: 'endpoint' });
  }

  /** Drops the turn in progress (the call ended, or the agent took the floor). */
  reset(): void {
    this.finals = [];
    this.interim = '';
    this.textCache = null;
    this.endpoint = false;
    this.heard = false;
    this.textChangedMs = -1;
    this.eagerText = '';
  }

  tick(nowMs: number): void {
    if (!this.commitIfDue(nowMs)) this.eagerIfDue(nowMs);
  }

  /** The Nova-3 early signal: text stable for eagerStableMs while the VAD hears silence, once per text. */
  private eagerIfDue(nowMs: number): void {
    if (!this.onEager || this.speaking || this.speechEndMs < 0 || this.textChangedMs < 0) return;
    const text = this.text;
    if (!text || text === this.eagerText) return;
    if (nowMs - this.textChangedMs < (this.settings.eagerStableMs ?? 200)) return;
    this.eagerText = text;
    this.onEager(text);
  }

  private commitIfDue(nowMs: number): boolean {
    if (this.speaking || this.finals.length === 0 || this.interim || this.speechEndMs < 0) return false;
    const text = this.text;
    const silence = nowMs - this.speechEndMs;
    if (text !== this.needText) {
      this.needText = text;
      this.needMs = requiredSilenceMs(text, this.settings);
    }
    const need = this.needMs;
    if (silence < need) return false;
    if (!this.endpoint && silence < need + this.settings.sttGraceMs) return false;
    const commit: TurnCommit = { text, speechEndMs: this.speechEndMs, commitMs: nowMs, reason: this.endpoint ? 'endpoint' : 'silence' };
    this.reset();
    this.onCommit(commit);
    return true;
  }
}
