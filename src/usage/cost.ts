// Metered usage × the price table. Every line is priced exactly (integer
// pico-dollar prices × integer quantities) and rounded once, half up, to the
// micro-dollar; a component is the sum of its lines and the total the sum
// of the components, so the figures the API shows always add up.
import { byPrefix, pico, type PriceTable, type TelephonyRate } from './prices.js';
import { ULAW_BYTES_PER_S } from './meter.js';
import { COST_COMPONENTS, type CallCost, type CallUsageRecord, type CostComponent, type LlmUsage, type MeteredCall } from './types.js';

const MICRO_PER_PICO = 1_000_000n;

/** round_half_up(quantity × price(pico per `per` units)) in micro-dollars. */
export function lineMicros(quantity: bigint, pricePico: bigint, per: bigint): bigint {
  const den = per * MICRO_PER_PICO;
  return (quantity * pricePico + den / 2n) / den;
}

/** Micro-dollars as a USD decimal string with six places ("0.012345"). */
export function usd(micros: bigint): string {
  const neg = micros < 0n;
  const m = neg ? -micros : micros;
  return `${neg ? '-' : ''}${m / 1_000_000n}.${String(m % 1_000_000n).padStart(6, '0')}`;
}

/** Parses usd()'s output back to micro-dollars. */
export function parseUsd(usdString: string): bigint {
  const [int, frac = ''] = usdString.split('.');
  return BigInt(int) * 1_000_000n + BigInt(frac.padEnd(6, '0').slice(0, 6));
}

export type ComponentMicros = Record<CostComponent, bigint>;

function telephonyLine(m: MeteredCall, charge: 'voice' | 'media_streams', rate: TelephonyRate) {
  const inc = rate.incrementSeconds * 1000;
  // Rounded up to the increment; a call with media is at least one increment.
  const billedMs = Math.max(1, Math.ceil(m.mediaMs / inc)) * inc;
  const cost = lineMicros(BigInt(billedMs), pico(rate.perMinute), 60_000n);
  return { line: { transport: m.transport, direction: m.direction, charge, seconds: m.mediaMs / 1000, billedSeconds: billedMs / 1000, cost: usd(cost) }, cost };
}

/** An LLM line (the call's model responses, or the post-call analysis). */
export function priceLlm(prices: PriceTable, u: { model: string; inputTokens: number; outputTokens: number; requests: number; estimatedRequests?: number }, purpose: LlmUsage['purpose']): { line: LlmUsage; cost: bigint } {
  const p = prices.llm[u.model];
  const cost = p ? lineMicros(BigInt(u.inputTokens), pico(p.inputPer1M), 1_000_000n) + lineMicros(BigInt(u.outputTokens), pico(p.outputPer1M), 1_000_000n) : 0n;
  return { line: { model: u.model, purpose, inputTokens: u.inputTokens, outputTokens: u.outputTokens, requests: u.requests, estimatedRequests: u.estimatedRequests ?? 0, priced: p !== undefined, cost: usd(cost) }, cost };
}

/** A call's metered usage, priced line by line. */
export function priceCall(prices: PriceTable, m: MeteredCall): { usage: CallUsageRecord; micros: ComponentMicros } {
  const micros: ComponentMicros = { telephony: 0n, stt: 0n, tts: 0n, llm: 0n };
  const usage: CallUsageRecord = { telephony: [], stt: [], tts: [], llm: [] };
  const rates = m.transport === 'twilio'
    ? [['voice', prices.telephony.twilio[m.direction]], ['media_streams', prices.telephony.twilio.mediaStreams]] as const
    : [['voice', prices.telephony.sip[m.direction]]] as const;
  for (const [charge, rate] of rates) {
    const t = telephonyLine(m, charge, rate);
    usage.telephony.push(t.line);
    micros.telephony += t.cost;
  }
  if (m.sttAudioBytes > 0) {
    // Bytes → milliseconds of 8 kHz μ-law exactly: 8 bytes a millisecond.
    const ms = BigInt(m.sttAudioBytes) / BigInt(ULAW_BYTES_PER_S / 1000);
    const p = byPrefix(prices.stt, m.sttModel);
    const cost = p ? lineMicros(ms, pico(p.perMinute), 60_000n) : 0n;
    usage.stt.push({ model: m.sttModel, seconds: m.sttAudioBytes / ULAW_BYTES_PER_S, cost: usd(cost) });
    micros.stt += cost;
  }
  if (m.ttsCharacters > 0) {
    const p = byPrefix(prices.tts, m.ttsModel);
    const cost = p ? lineMicros(BigInt(m.ttsCharacters), pico(p.per1kCharacters), 1000n) : 0n;
    usage.tts.push({ model: m.ttsModel, characters: m.ttsCharacters, cost: usd(cost) });
    micros.tts += cost;
  }
  for (const u of m.llm) {
    const l = priceLlm(prices, u, 'conversation');
    usage.llm.push(l.line);
    micros.llm += l.cost;
  }
  return { usage, micros };
}

/** The API's cost object from the stored component columns (null: the call was never priced). */
export function callCost(row: Record<string, unknown>): CallCost | null {
  if (COST_COMPONENTS.every((c) => row[`cost_${c}_micros`] === null || row[`cost_${c}_micros`] === undefined)) return null;
  const parts = Object.fromEntries(COST_COMPONENTS.map((c) => [c, BigInt((row[`cost_${c}_micros`] as string | number | null) ?? 0)])) as ComponentMicros;
  return costOf(parts);
}

export function costOf(parts: ComponentMicros): CallCost {
  const total = COST_COMPONENTS.reduce((s, c) => s + parts[c], 0n);
  return { currency: 'USD', total: usd(total), components: Object.fromEntries(COST_COMPONENTS.map((c) => [c, usd(parts[c])])) as CallCost['components'] };
}
