// One call's usage counters. The session owns one; the provider streams add
// to it once per message or request they send to a billed service (an STT
// audio message, a TTS Speak message, an LLM response's usage metadata, or
// for a response cut before its metadata an estimate from its characters),
// never per 20 ms frame: plain number fields, no allocation on the way.
import type { UsageMeter } from '../providers/types.js';
import type { MeteredCall } from './types.js';

/** μ-law at 8 kHz: one byte per sample. */
export const ULAW_BYTES_PER_S = 8000;

export class CallUsage implements UsageMeter {
  sttModel = '';
  sttAudioBytes = 0;
  ttsModel = '';
  ttsCharacters = 0;
  /** Per model: the responses' reported tokens (few models per call, so a short array beats a map). */
  private readonly llm: { model: string; inputTokens: number; outputTokens: number; requests: number; estimatedRequests: number }[] = [];

  llmTokens(model: string, inputTokens: number, outputTokens: number, estimated = false): void {
    let m = this.llm.find((x) => x.model === model);
    if (!m) this.llm.push((m = { model, inputTokens: 0, outputTokens: 0, requests: 0, estimatedRequests: 0 }));
    if (estimated) m.estimatedRequests++;
    // The service's own figures; anything else (a hostile or broken endpoint) counts as nothing.
    m.inputTokens += tokens(inputTokens);
    m.outputTokens += tokens(outputTokens);
    m.requests++;
  }

  /** The counters with the call's media time, for pricing at hang-up. */
  metered(transport: 'twilio' | 'sip', direction: 'inbound' | 'outbound', mediaMs: number): MeteredCall {
    return {
      transport, direction, mediaMs: Math.max(0, Math.round(mediaMs)),
      sttModel: this.sttModel, sttAudioBytes: this.sttAudioBytes, ttsModel: this.ttsModel, ttsCharacters: this.ttsCharacters,
      llm: this.llm.map((x) => ({ ...x })),
    };
  }
}

function tokens(n: number): number {
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}
