// The shapes of metered usage and its cost, as stored on the call row
// (calls.usage, calls.cost_*_micros) and shown by GET /v1/calls/{id}.
// Money is integer micro-dollars inside the server and a decimal string with
// six places in the API, so a total is the exact sum of its components.

export type CostComponent = 'telephony' | 'stt' | 'tts' | 'llm';
export const COST_COMPONENTS: readonly CostComponent[] = ['telephony', 'stt', 'tts', 'llm'];

/** One priced line of usage: what was used, and its cost in USD (six decimals). */
interface Priced {
  cost: string;
}

export interface TelephonyUsage extends Priced {
  transport: 'twilio' | 'sip';
  direction: 'inbound' | 'outbound';
  /** `voice`: the carrier's minutes; `media_streams`: Twilio's Media Streams minutes, charged on top. */
  charge: 'voice' | 'media_streams';
  /** Media time of the call (the session's start to its end), to the millisecond. */
  seconds: number;
  /** Seconds billed: rounded up to the price's billing increment. */
  billedSeconds: number;
}

export interface SttUsage extends Priced {
  model: string;
  /** Audio actually streamed to the STT (replays after a reconnect included; audio the silence gate held back not). */
  seconds: number;
}

export interface TtsUsage extends Priced {
  model: string;
  /** Characters of text sent to the TTS. */
  characters: number;
}

export interface LlmUsage extends Priced {
  model: string;
  /** `conversation`: the call's replies (preemptive generations included); `analysis`: the post-call analysis. */
  purpose: 'conversation' | 'analysis';
  inputTokens: number;
  outputTokens: number;
  requests: number;
  /**
   * Of `requests`, those whose tokens are estimated: the reply was cut (a
   * barge-in) after the model had begun answering but before Bedrock's usage
   * report, which comes only at the end of a stream. The service bills what
   * it processed; the estimate is a character count / 4 of the request's text
   * and of the text received.
   */
  estimatedRequests: number;
  /** False when the price table has no entry for the model (its cost is then 0). */
  priced: boolean;
}

/** calls.usage: every line of the call's usage, priced. */
export interface CallUsageRecord {
  telephony: TelephonyUsage[];
  stt: SttUsage[];
  tts: TtsUsage[];
  llm: LlmUsage[];
}

/** What a call session metered, before pricing. */
export interface MeteredCall {
  transport: 'twilio' | 'sip';
  direction: 'inbound' | 'outbound';
  mediaMs: number;
  sttModel: string;
  sttAudioBytes: number;
  ttsModel: string;
  ttsCharacters: number;
  llm: { model: string; inputTokens: number; outputTokens: number; requests: number; estimatedRequests: number }[];
}

/** The call's cost as the API shows it. */
export interface CallCost {
  currency: 'USD';
  total: string;
  components: Record<CostComponent, string>;
}
