// Answering-machine detection on our own media, for calls where the carrier
// does not do it (SIP): a greeting classifier in the spirit of Asterisk's
// app_amd. A person answers with a short "Hello?" and waits; a machine plays
// a long, many-word greeting, often ending in a beep. Per 20 ms frame it
// reads the media channel's code (VAD probability, beep flags): initial
// silence, words (VAD bursts of at least minWordMs), the greeting's total
// speech, the silence after it, and a beep; the STT transcript breaks ties
// (voicemail phrases are a machine whatever the timing). Time is audio
// time (frames seen), so the same audio always gets the same verdict.
import { FRAME_BEEP_START } from '../media/media-channel.js';
import type { AnsweredBy } from '../outbound/types.js';

export interface AmdSettings {
  /** No speech this long from the answer: `unknown` (app_amd says machine; a silent person should still hear the greeting). */
  initialSilenceMs: number;
  /** The greeting's speech longer than this: machine. */
  greetingMs: number;
  /** This much silence after a short greeting: human. */
  afterGreetingSilenceMs: number;
  /** No verdict by then: `unknown` (or the transcript's, see below). */
  totalAnalysisMs: number;
  /** Speech this long counts as a word. */
  minWordMs: number;
  /** Silence this long separates words. */
  betweenWordsSilenceMs: number;
  /** More words than this: machine. */
  maxWords: number;
  /** One word longer than this: machine. */
  maxWordMs: number;
  /**
   * A frame is speech when the VAD's probability reaches this: stricter than
   * the VAD's own flag (and without its hangover), so line noise does not
   * stretch a "Hello?" into a greeting.
   */
  speechProbability: number;
  /** Use the STT transcript as a tie-breaker (voicemail phrases; word count at the deadline). */
  transcript: boolean;
}

type NumericSetting = Exclude<keyof AmdSettings, 'transcript'>;

/**
 * Defaults: app_amd's, except the greeting (1.7 s of speech; app_amd 1.5),
 * the silence after a person's answer (500 ms, LiveKit's; app_amd 800) and
 * the speech probability, chosen by a sweep on a tuning build of bench/amd's
 * corpus (another seed than the one reported); a verdict by 4 s at the latest.
 */
export const AMD_DEFAULTS: Readonly<AmdSettings> = {
  initialSilenceMs: 2500,
  greetingMs: 1700,
  afterGreetingSilenceMs: 500,
  totalAnalysisMs: 4000,
  minWordMs: 100,
  betweenWordsSilenceMs: 50,
  maxWords: 3,
  maxWordMs: 5000,
  speechProbability: 0.8,
  transcript: true,
};

/** Accepted ranges (the agent schema in src/api/schemas.ts is built from these). */
export const AMD_LIMITS: Readonly<Record<NumericSetting, readonly [number, number]>> = {
  initialSilenceMs: [500, 10_000],
  greetingMs: [300, 10_000],
  afterGreetingSilenceMs: [100, 5000],
  totalAnalysisMs: [1000, 10_000],
  minWordMs: [20, 1000],
  betweenWordsSilenceMs: [20, 1000],
  maxWords: [1, 20],
  maxWordMs: [300, 10_000],
  speechProbability: [0.05, 0.99],
};

export type AmdCause =
  | 'beep' | 'long_greeting' | 'max_words' | 'long_word' | 'transcript'
  | 'after_greeting_silence' | 'initial_silence' | 'max_time';

export interface AmdDecision {
  result: AnsweredBy;
  cause: AmdCause;
  /** Audio time of the verdict, ms from the first frame. */
  atMs: number;
}

// Phrases only a greeting says (LiveKit and Pipecat hand the same question to an LLM).
const VOICEMAIL_PHRASES = new RegExp(
  [
    'leave (me |us )?(a |your )?(brief |short )?(message|name|number)', 'after the (tone|beep)', 'at the (tone|beep)',
    'voice ?mail', 'mail ?box', '(not|unable to|can\'?t|cannot) (come to|get to|answer|take) (the|your)? ?(phone|call)',
    'is not available', 'are not available', '(i\'?m|we\'?re|i am|we are) (not available|unavailable|away|out of the office)',
    'you have reached', 'you\'?ve reached', 'record your message', 'get back to you', 'return your call',
  ].join('|'),
  'i',
);

/** True when a transcript says what only a voicemail greeting says. */
export function soundsLikeVoicemail(text: string): boolean {
  return VOICEMAIL_PHRASES.test(text);
}

function wordCount(text: string): number {
  const t = text.trim();
  return t ? t.split(/\s+/).length : 0;
}

export class GreetingClassifier {
  readonly settings: AmdSettings;
  private atMs = 0;
  private voiceMs = 0;
  private silenceMs = 0;
  private runMs = 0;
  private words = 0;
  private inWord = false;
  private heardSpeech = false;
  private transcriptWords = 0;
  private finalWords = 0;
  private result: AmdDecision | null = null;

  constructor(settings: Partial<AmdSettings> = {}) {
    this.settings = { ...AMD_DEFAULTS, ...settings };
  }

  get decision(): AmdDecision | null {
    return this.result;
  }

  /** Audio seen so far, ms. */
  get elapsedMs(): number {
    return this.atMs;
  }

  private decide(result: AnsweredBy, cause: AmdCause): AmdDecision {
    this.result = { result, cause, atMs: this.atMs };
    return this.result;
  }

  /** One frame's MediaChannel code (beep detection on; the VAD probability is its fraction); the verdict the first time there is one, else null. */
  frame(code: number, frameMs = 20): AmdDecision | null {
    if (this.result) return null;
    const s = this.settings;
    this.atMs += frameMs;
    if (code & FRAME_BEEP_START) return this.decide('machine', 'beep');
    if (code - Math.floor(code) >= s.speechProbability) {
      this.heardSpeech = true;
      this.voiceMs += frameMs;
      this.runMs += frameMs;
      this.silenceMs = 0;
      if (!this.inWord && this.runMs >= s.minWordMs) {
        this.inWord = true;
        if (++this.words > s.maxWords) return this.decide('machine', 'max_words');
      }
      if (this.runMs >= s.maxWordMs) return this.decide('machine', 'long_word');
      if (this.voiceMs >= s.greetingMs) return this.decide('machine', 'long_greeting');
    } else {
      this.silenceMs += frameMs;
      this.runMs = 0;
      if (this.silenceMs >= s.betweenWordsSilenceMs) this.inWord = false;
      if (!this.heardSpeech && this.silenceMs >= s.initialSilenceMs) return this.decide('unknown', 'initial_silence');
      // A burst too short to be a word (a click, a breath) is not a greeting.
      if (this.heardSpeech && this.words > 0 && this.silenceMs >= s.afterGreetingSilenceMs) return this.decide('human', 'after_greeting_silence');
    }
    return this.deadline();
  }

  private deadline(): AmdDecision | null {
    const s = this.settings;
    if (this.atMs >= s.totalAnalysisMs) {
      // The deadline: a transcript with more words than a person's answer has is a greeting.
      if (s.transcript && this.transcriptWords > 2 * s.maxWords) return this.decide('machine', 'transcript');
      return this.decide('unknown', 'max_time');
    }
    return null;
  }

  /** The STT's latest words for the answer (interim or final); a voicemail phrase decides at once. */
  transcript(text: string, isFinal = false): AmdDecision | null {
    if (this.result || !this.settings.transcript) return null;
    const words = wordCount(text);
    this.transcriptWords = Math.max(this.transcriptWords, this.finalWords + words);
    if (isFinal) this.finalWords += words;
    return soundsLikeVoicemail(text) ? this.decide('machine', 'transcript') : null;
  }
}
