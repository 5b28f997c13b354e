// The price table: what a unit of each metered usage costs, in USD. The
// defaults are the providers' published pay-as-you-go list prices; a
// PRICES_FILE (JSON, same shape, any subset) replaces entries key by key.
// The file is validated strictly at startup: an unknown key, a negative or
// non-decimal price, or a model name that is not an identifier refuses
// start with a message naming the path in the file. Prices are decimal
// strings (JSON numbers are accepted when they print as plain decimals)
// with at most 12 decimal places, held as integer pico-dollars so pricing
// is exact integer arithmetic (src/usage/cost.ts).
import fs from 'node:fs';
import AjvModule from 'ajv';

export interface TelephonyRate {
  perMinute: string;
  /** Billing increment: a call's seconds are rounded up to a multiple of it (60: per started minute). */
  incrementSeconds: number;
}

export interface PriceTable {
  telephony: {
    twilio: { inbound: TelephonyRate; outbound: TelephonyRate; mediaStreams: TelephonyRate };
    sip: { inbound: TelephonyRate; outbound: TelephonyRate };
  };
  /** By model name, longest prefix wins ("nova-3" prices "nova-3-medical" unless it has its own entry). */
  stt: Record<string, { perMinute: string }>;
  /** By voice model, longest prefix wins ("aura-2" prices "aura-2-thalia-en"). */
  tts: Record<string, { per1kCharacters: string }>;
  /** By Bedrock model id, exactly. */
  llm: Record<string, { inputPer1M: string; outputPer1M: string }>;
}

/**
 * Published list prices, read 2026-12-01 (USD, pay-as-you-go, no discounts):
 * - Twilio Programmable Voice, US local numbers (twilio.com/en-us/voice/pricing/us):
 *   receive $0.0085/min, make $0.014/min, billed per started minute. These
 *   two could not be confirmed from a source reachable while writing this
 *   table; they are the rates Twilio has listed since 2023. Check them.
 * - Twilio Media Streams: $0.004/min on top of the voice minutes (Twilio
 *   pricing, as quoted in a review on github.com/sonichi/sutando#458,
 *   2026-04); assumed billed per started minute like voice (not confirmed).
 * - SIP trunks: 0 — the trunk is the customer's own (BYOC); set your
 *   carrier's rate in PRICES_FILE.
 * - Deepgram (deepgram.com/pricing, pay-as-you-go, as transcribed 2026-08
 *   by the OpenGauntlet ASR survey and the API Evangelist plans file, which
 *   agree): Nova-3 monolingual streaming $0.0048/min, Flux English
 *   $0.0065/min, Flux multilingual $0.0078/min, billed per second of
 *   audio; Aura-2 $0.030 per 1,000 characters, Aura-1 $0.015.
 * - Amazon Bedrock on-demand (aws.amazon.com/bedrock/pricing; the Bedrock
 *   user guide, "Global cross-Region inference": global profiles are ~10 %
 *   cheaper than geographic ones): Claude Haiku 4.5 $1/$5 per million
 *   input/output tokens (global), $1.10/$5.50 (us.* geographic profile);
 *   Claude Sonnet 4.5 $3/$15 (global), $3.30/$16.50 (us.*). The geographic
 *   figures are the global ones plus the documented 10 %.
 */
export const DEFAULT_PRICES: PriceTable = {
  telephony: {
    twilio: {
      inbound: { perMinute: '0.0085', incrementSeconds: 60 },
      outbound: { perMinute: '0.014', incrementSeconds: 60 },
      mediaStreams: { perMinute: '0.004', incrementSeconds: 60 },
    },
    sip: {
      inbound: { perMinute: '0', incrementSeconds: 1 },
      outbound: { perMinute: '0', incrementSeconds: 1 },
    },
  },
  stt: {
    'nova-3': { perMinute: '0.0048' },
    'flux-general-en': { perMinute: '0.0065' },
    'flux-general-multi': { perMinute: '0.0078' },
  },
  tts: {
    'aura-2': { per1kCharacters: '0.030' },
    aura: { per1kCharacters: '0.015' },
  },
  llm: {
    'us.anthropic.claude-haiku-4-5-20251001-v1:0': { inputPer1M: '1.10', outputPer1M: '5.50' },
    'global.anthropic.claude-haiku-4-5-20251001-v1:0': { inputPer1M: '1', outputPer1M: '5' },
    'anthropic.claude-haiku-4-5-20251001-v1:0': { inputPer1M: '1.10', outputPer1M: '5.50' },
    'us.anthropic.claude-sonnet-4-5-20250929-v1:0': { inputPer1M: '3.30', outputPer1M: '16.50' },
    'global.anthropic.claude-sonnet-4-5-20250929-v1:0': { inputPer1M: '3', outputPer1M: '15' },
    'anthropic.claude-sonnet-4-5-20250929-v1:0': { inputPer1M: '3.30', outputPer1M: '16.50' },
  },
};

export class PriceTableError extends Error {
  readonly code = 'AYB_ERR_PRICES';
}

const DECIMAL = /^\d{1,6}(\.\d{1,12})?$/;
const price = { anyOf: [{ type: 'string', pattern: DECIMAL.source }, { type: 'number', minimum: 0, maximum: 999999 }] };
const rate = {
  type: 'object', additionalProperties: false, required: ['perMinute', 'incrementSeconds'],
  properties: { perMinute: price, incrementSeconds: { type: 'integer', minimum: 1, maximum: 3600 } },
};
const byName = (entry: object) => ({
  type: 'object', maxProperties: 200, propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$' }, additionalProperties: entry,
});
const fields = (names: string[]) => ({ type: 'object', additionalProperties: false, required: names, properties: Object.fromEntries(names.map((n) => [n, price])) });
const FILE_SCHEMA = {
  type: 'object', additionalProperties: false,
  properties: {
    telephony: {
      type: 'object', additionalProperties: false,
      properties: {
        twilio: { type: 'object', additionalProperties: false, properties: { inbound: rate, outbound: rate, mediaStreams: rate } },
        sip: { type: 'object', additionalProperties: false, properties: { inbound: rate, outbound: rate } },
      },
    },
    stt: byName(fields(['perMinute'])),
    tts: byName(fields(['per1kCharacters'])),
    llm: byName(fields(['inputPer1M', 'outputPer1M'])),
  },
};

const validate = new AjvModule.default({ strict: true, allErrors: false, logger: false }).compile(FILE_SCHEMA);

/** A price as a plain decimal string (a JSON number such as 1e-7 has no such form and is refused). */
function decimal(v: string | number, where: string): string {
  const s = typeof v === 'number' ? String(v) : v;
  if (!DECIMAL.test(s)) throw new PriceTableError(`${where}: must be a decimal such as "0.0085" (at most 6 integer digits and 12 decimals), got ${JSON.stringify(v)}`);
  return s;
}

type Json = Record<string, unknown>;

/** The defaults with the file's entries put over them; throws PriceTableError naming what is wrong. */
export function mergePrices(file: unknown, base: PriceTable = DEFAULT_PRICES): PriceTable {
  if (!validate(file)) {
    const e = validate.errors![0];
    const name = e.propertyName !== undefined ? ` name ${JSON.stringify(e.propertyName)}` : '';
    throw new PriceTableError(`${e.instancePath || '/'}${name} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
  }
  const f = file as Json;
  const out = structuredClone(base);
  const tel = (f.telephony ?? {}) as Record<string, Record<string, TelephonyRate>>;
  for (const [transport, rates] of Object.entries(tel)) {
    for (const [k, r] of Object.entries(rates)) {
      (out.telephony as unknown as Record<string, Record<string, TelephonyRate>>)[transport][k] = {
        perMinute: decimal(r.perMinute, `/telephony/${transport}/${k}/perMinute`), incrementSeconds: r.incrementSeconds,
      };
    }
  }
  for (const section of ['stt', 'tts', 'llm'] as const) {
    for (const [name, entry] of Object.entries((f[section] ?? {}) as Record<string, Record<string, string | number>>)) {
      (out[section] as Record<string, Record<string, string>>)[name] = Object.fromEntries(
        Object.entries(entry).map(([k, v]) => [k, decimal(v, `/${section}/${name}/${k}`)]),
      );
    }
  }
  return out;
}

/** PRICES_FILE read and merged over the defaults; unset: the defaults. */
export function loadPrices(file: string | undefined): PriceTable {
  if (file === undefined) return DEFAULT_PRICES;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PriceTableError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PriceTableError(`${file} is not JSON: ${(err as Error).message}`);
  }
  try {
    return mergePrices(json);
  } catch (err) {
    throw new PriceTableError(`${file}: ${(err as Error).message}`);
  }
}

/** Pico-dollars (10⁻¹² USD) of a decimal price string: exact. */
export function pico(price: string): bigint {
  const [int, frac = ''] = price.split('.');
  return BigInt(int) * 1_000_000_000_000n + BigInt(frac.padEnd(12, '0'));
}

/** The entry whose name is the longest prefix of `model` (exact names included). */
export function byPrefix<T>(table: Record<string, T>, model: string): T | undefined {
  let best: string | undefined;
  for (const name of Object.keys(table)) if (model.startsWith(name) && (best === undefined || name.length > best.length)) best = name;
  return best === undefined ? undefined : table[best];
}
