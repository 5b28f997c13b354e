// The emulators' latency profiles (EMULATOR_PROFILE, CONTRACT §7): what each
// emulated provider waits before it answers. `default` is the fixed set the
// benchmarks have always used (no jitter, so runs compare exactly);
// `published` takes each figure from what the provider or an independent
// benchmark has published, with a per-request spread so a turn is not a
// constant. An individual EMULATOR_* variable replaces a profile's value; the
// profile's spread still applies around it (see src/config.ts).
//
// Jitter: each request draws its delay uniformly from
// [value·(1 − spread), value·(1 + spread)] (jittered() below), from a
// seeded generator per emulator instance (seededRandom()), so a run is
// reproducible up to the order in which concurrent requests arrive.
import type { BedrockEmulatorOptions } from './bedrock.js';
import type { DeepgramEmulatorOptions } from './deepgram.js';

export type EmulatorProfileName = 'default' | 'published';
export const EMULATOR_PROFILES: readonly EmulatorProfileName[] = ['default', 'published'];

/** Relative spread per knob: 0.25 = ±25 % around the value, uniform. */
export interface EmulatorJitter {
  sttFinal: number;
  fluxEndOfTurn: number;
  llmTtft: number;
  llmTokensPerSecond: number;
  ttsFirstByte: number;
}

export interface EmulatorProfile {
  /** Nova-3: wall-clock delay from the end of the endpointing window to the final (speech_final) result. */
  sttFinalDelayMs: number;
  /** Flux: delay from the end of the caller's speech to EndOfTurn (read by the Flux emulator). */
  fluxEndOfTurnMs: number;
  /** Bedrock ConverseStream: time to the first token. */
  llmTtftMs: number;
  /** Bedrock: output speed after the first token. */
  llmTokensPerSecond: number;
  /** Aura-2: time to the first audio byte after a Flush. */
  ttsFirstByteMs: number;
  /** Synthesis speed: seconds of work per second of audio. */
  ttsRealtimeFactor: number;
  jitter: EmulatorJitter;
}

/**
 * What the emulators are configured with (Config.emulator): EMULATOR_PROFILE's
 * values, each replaceable by its EMULATOR_* variable; the profile's spread
 * applies to a replaced value too.
 */
export interface EmulatorSettings extends EmulatorProfile {
  profile: EmulatorProfileName;
  phrases: string[] | undefined;
}

const NO_JITTER: EmulatorJitter = { sttFinal: 0, fluxEndOfTurn: 0, llmTtft: 0, llmTokensPerSecond: 0, ttsFirstByte: 0 };

export const EMULATOR_PROFILE: Record<EmulatorProfileName, EmulatorProfile> = {
  // The values the emulators have always had (issue 16's "before" figures).
  default: {
    sttFinalDelayMs: 250,
    fluxEndOfTurnMs: 260,
    llmTtftMs: 480,
    llmTokensPerSecond: 80,
    ttsFirstByteMs: 90,
    ttsRealtimeFactor: 0.1,
    jitter: NO_JITTER,
  },
  published: {
    // Nova-3 streaming, time from the end of speech to the final transcript
    // (on top of the client's `endpointing` silence window, which the agent
    // sets: 300 ms by default; Deepgram recommends 300–500 ms for
    // conversation, developers.deepgram.com/docs/understand-endpointing-interim-results).
    // No first-party Deepgram figure for this delay was found. Published:
    // 71 ms for Nova-3 "time to first transcript ... between when a user
    // stops speaking and when the model returns the complete transcript"
    // (a competitor's benchmark, docs.smallest.ai/waves/documentation/speech-to-text/benchmarks/performance);
    // "sub-300ms streaming latency" (eachlabs.ai/deepgram/nova-3, quoting
    // Deepgram). Chosen conservatively: 150 ms ±50 % (75–225 ms).
    sttFinalDelayMs: 150,
    // Flux: "Ultra-low latency — ~260ms end-of-turn detection"
    // (developers.deepgram.com/docs/flux/quickstart). together.ai reports a
    // median under 300 ms and p95 1.5 s (../shared/reference/deepgram-flux.md §7);
    // the uniform spread does not model that tail. 260 ms ±30 % (182–338 ms).
    fluxEndOfTurnMs: 260,
    // Claude Haiku 4.5: Artificial Analysis, as quoted by
    // shadabchow.com/blogs/ai-models/claude-4-5-haiku-reasoning: TTFT 0.48 s
    // and 53 tokens/s on Anthropic's API, 88 tokens/s on Google Vertex. No
    // Bedrock-specific figure for Haiku 4.5 was found; Artificial Analysis
    // measured Claude 3.5 Haiku on Bedrock (standard) at TTFT 0.70–0.81 s
    // (artificialanalysis.ai/models/claude-3-5-haiku/providers). Chosen:
    // 600 ms ±25 % (450–750 ms), between the two.
    llmTtftMs: 600,
    // Output speed: the slower published figure, 53 tokens/s (Anthropic API,
    // Artificial Analysis as above), rounded to 55 ±20 % (44–66 tokens/s).
    // The emulator sends one word per "token" (real tokens are ~1.3 per
    // English word), so its text arrives somewhat slower than this suggests: conservative.
    llmTokensPerSecond: 55,
    // Aura-2: "stable sub-200ms latency and, in steady-state conditions,
    // around 90ms" time to first byte (Deepgram, "How we took Aura-2's TTFB
    // from 200ms to 90ms", deepgram.com/learn/engineering-real-time-low-latency-voice-ai-at-scale).
    // Measured at the client it includes the network: 150 ms ±40 % (90–210 ms).
    ttsFirstByteMs: 150,
    // Not a published figure: how fast synthesis runs ahead of real time (unchanged).
    ttsRealtimeFactor: 0.1,
    jitter: { sttFinal: 0.5, fluxEndOfTurn: 0.3, llmTtft: 0.25, llmTokensPerSecond: 0.2, ttsFirstByte: 0.4 },
  },
};

/** The published Flux end-of-turn delay, for the Flux emulator. */
export const PUBLISHED_FLUX_END_OF_TURN_MS = EMULATOR_PROFILE.published.fluxEndOfTurnMs;

/** A small seeded generator (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The bounds a jittered value stays within: [value·(1 − spread), value·(1 + spread)], never below 0. */
export function jitterBounds(value: number, spread: number): [number, number] {
  const s = Math.min(1, Math.max(0, spread));
  return [value * (1 - s), value * (1 + s)];
}

/** One draw of `value` with a uniform relative spread; `spread` 0 returns `value` unchanged. */
export function jittered(value: number, spread: number, random: () => number): number {
  if (!(spread > 0)) return value;
  const [lo, hi] = jitterBounds(value, spread);
  return lo + (hi - lo) * random();
}

/** The emulators' options for the configured settings (in-process under `serve`, or `aybiza emulators`). */
export function emulatorOptions(e: EmulatorSettings): { deepgram: Partial<DeepgramEmulatorOptions>; bedrock: Partial<BedrockEmulatorOptions> } {
  return {
    deepgram: {
      sttFinalDelayMs: e.sttFinalDelayMs, ttsFirstByteMs: e.ttsFirstByteMs, ttsRealtimeFactor: e.ttsRealtimeFactor, fluxEndOfTurnMs: e.fluxEndOfTurnMs,
      jitter: { sttFinal: e.jitter.sttFinal, ttsFirstByte: e.jitter.ttsFirstByte, fluxEndOfTurn: e.jitter.fluxEndOfTurn },
      ...(e.phrases ? { phrases: e.phrases } : {}),
    },
    bedrock: { ttftMs: e.llmTtftMs, tokensPerSecond: e.llmTokensPerSecond, jitter: { ttft: e.jitter.llmTtft, tokensPerSecond: e.jitter.llmTokensPerSecond } },
  };
}

/** One line naming the profile and its values, for the demo and `npm run load`. */
export function describeEmulatorSettings(e: EmulatorSettings): string {
  const pm = (spread: number) => (spread > 0 ? ` ±${Math.round(spread * 100)}%` : '');
  return `emulator profile ${e.profile}: STT final ${e.sttFinalDelayMs} ms${pm(e.jitter.sttFinal)}, ` +
    `Flux end of turn ${e.fluxEndOfTurnMs} ms${pm(e.jitter.fluxEndOfTurn)}, LLM TTFT ${e.llmTtftMs} ms${pm(e.jitter.llmTtft)}, ` +
    `${e.llmTokensPerSecond} tokens/s${pm(e.jitter.llmTokensPerSecond)}, TTS TTFB ${e.ttsFirstByteMs} ms${pm(e.jitter.ttsFirstByte)}`;
}
