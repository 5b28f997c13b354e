// Provider-neutral interfaces (in the manner of LiveKit agents-js): the
// pipeline depends only on these. Deepgram, Bedrock and the built-in
// emulators implement them; another provider is another implementation.

// ---- usage ------------------------------------------------------------------

/**
 * A call's usage counters (src/usage/meter.ts). Provider streams add what
 * they send to a billed service, once per message or request (never per
 * frame): plain fields, so metering costs an addition.
 */
export interface UsageMeter {
  /** Set by the STT when it opens: the model billed. */
  sttModel: string;
  /** μ-law bytes (8,000 a second) streamed to the STT, replays after a reconnect included. */
  sttAudioBytes: number;
  /** Set by the TTS when it opens: the voice model billed. */
  ttsModel: string;
  /** Characters of text sent to the TTS (again when a reopened socket re-sends them). */
  ttsCharacters: number;
  /**
   * One LLM response's token usage, as the service reported it; `estimated`:
   * the response ended before the service's usage report (a barge-in cut it)
   * and the counts are estimated from the characters sent and received.
   */
  llmTokens(model: string, inputTokens: number, outputTokens: number, estimated?: boolean): void;
}

// ---- speech to text -------------------------------------------------------

export interface SttOptions {
  model?: string;
  language?: string;
  /** Silence (ms) after which the STT marks a final as speech_final. */
  endpointingMs?: number;
  /** Gap (ms) after the last word before an utterance-end event. */
  utteranceEndMs?: number;
  keyterms?: string[];
  /** Flux only: end-of-turn confidence that ends a turn (0.5–1.0; Deepgram's default 0.7). */
  eotThreshold?: number;
  /** Flux only: confidence for an early EagerEndOfTurn (0.3–0.9, ≤ eotThreshold); unset: no eager events. */
  eagerEotThreshold?: number;
  /** Flux only: a turn ends this long after speech whatever the confidence (500–60000 ms). */
  eotTimeoutMs?: number;
  /** Where the audio streamed is counted (the call's usage). */
  usage?: UsageMeter;
}

/**
 * A turn event from an STT that detects turns itself (Deepgram Flux). The
 * text is the whole turn so far; start/end are seconds on the call's audio
 * timeline.
 */
export interface SttTurn {
  event: 'StartOfTurn' | 'Update' | 'EagerEndOfTurn' | 'TurnResumed' | 'EndOfTurn';
  text: string;
  turnIndex: number;
  confidence: number;
  start: number;
  end: number;
  /** EndOfTurn only: what ended it. */
  trigger?: 'model' | 'timeout' | 'manual';
}

export interface Transcript {
  text: string;
  isFinal: boolean;
  speechFinal: boolean;
  fromFinalize: boolean;
  /** Seconds on the call's audio timeline (continuous across reconnects). */
  start: number;
  duration: number;
  confidence: number;
}

export interface SttEvents {
  onTranscript(t: Transcript): void;
  onUtteranceEnd?(lastWordEnd: number): void;
  onSpeechStarted?(timestamp: number): void;
  /** Turn events (only from an STT with its own end-of-turn model; it then sends no onTranscript). */
  onTurn?(t: SttTurn): void;
  /** The connection dropped and was re-established; recent audio was sent again. */
  onReconnected?(info: { attempt: number; replayedMs: number }): void;
  /** Gave up: the stream is unusable. */
  onError?(err: Error): void;
}

export interface SttStream {
  /**
   * μ-law 8 kHz, passed through untouched. Implementations may batch a few
   * frames into one message; `immediate` sends now (around speech, where every
   * millisecond of delay shows up in the end-of-turn latency). `speech`: the
   * VAD's verdict for this audio, when known (long silence may be held back).
   */
  send(ulaw: Uint8Array, immediate?: boolean, speech?: boolean): void;
  /** Ask for the pending words now (the pipeline committed the turn early). */
  finalize(): void;
  keepAlive(): void;
  close(): Promise<void>;
}

export interface SpeechToText {
  readonly name: string;
  open(opts: SttOptions, events: SttEvents): Promise<SttStream>;
}

// ---- text to speech -------------------------------------------------------

export interface TtsOptions {
  voice?: string;
  /** Where the characters sent are counted (the call's usage). */
  usage?: UsageMeter;
}

export interface TtsEvents {
  /** μ-law 8 kHz audio, any chunk size. */
  onAudio(ulaw: Uint8Array): void;
  /** All audio for the text before the matching flush() has been delivered. */
  onFlushed?(sequenceId: number): void;
  onCleared?(): void;
  onError?(err: Error): void;
}

export interface TtsStream {
  speak(text: string): void;
  /** Synthesise everything spoken so far. */
  flush(): void;
  /** Drop pending text and audio (barge-in). Audio after this call is never delivered. */
  clear(): void;
  close(): Promise<void>;
  /**
   * True while a flush is held back by the provider's flush limit (for pause
   * attribution). The Deepgram stream never waits for the window: it is true
   * only while a flush waits for the fresh connection that replaced one at
   * its limit (a warm socket, normally no wait at all).
   */
  readonly flushDeferred?: boolean;
}

export interface TextToSpeech {
  readonly name: string;
  open(opts: TtsOptions, events: TtsEvents): Promise<TtsStream>;
}

// ---- language model -------------------------------------------------------

export type ContentBlock =
  | { text: string }
  | { toolUse: { toolUseId: string; name: string; input: unknown } }
  | { toolResult: { toolUseId: string; content: ({ text: string } | { json: unknown })[]; status?: 'success' | 'error' } };

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: ContentBlock[];
}

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON schema of the input. */
  inputSchema: Record<string, unknown>;
}

export interface LlmRequest {
  system: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  model?: string;
  temperature?: number;
  maxTokens?: number;
  /** Where the response's reported token usage is counted (the call's usage); not sent. */
  usage?: UsageMeter;
}

export type LlmEvent =
  | { type: 'text'; text: string }
  | { type: 'toolUse'; toolUseId: string; name: string; input: unknown }
  | { type: 'stop'; reason: string }
  | { type: 'metadata'; model: string; inputTokens?: number; outputTokens?: number; attempts: number };

export interface LanguageModel {
  readonly name: string;
  /** Optional: open connections ahead of the first request. */
  warm?(): Promise<void>;
  /** Streams one assistant message. Aborting the signal stops the request on the server side too. */
  stream(req: LlmRequest, signal?: AbortSignal): AsyncIterable<LlmEvent>;
}

// ---- the bundle -------------------------------------------------------------

export interface Providers {
  stt: SpeechToText;
  tts: TextToSpeech;
  llm: LanguageModel;
  /** True when the built-in emulators stand in for the real services. */
  emulated: boolean;
  close(): Promise<void>;
}
