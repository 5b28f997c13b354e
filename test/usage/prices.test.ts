// The price table and the arithmetic of cost: PRICES_FILE merged over the
// defaults and refused (startup stops naming PRICES_FILE) when anything in
// it is wrong; prices exact to the pico-dollar, every line rounded half up
// to the micro-dollar once; a total always the exact sum of its components.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { DEFAULT_PRICES, loadPrices, mergePrices, pico, byPrefix } from '../../src/usage/prices.js';
import { costOf, lineMicros, parseUsd, priceCall, usd } from '../../src/usage/cost.js';
import { CallUsage } from '../../src/usage/meter.js';
import { spawnSync } from 'node:child_process';
import { CLI, tempDir } from '../helpers/spawn-server.js';

const file = (json: unknown) => {
  const p = path.join(tempDir('prices-'), 'prices.json');
  fs.writeFileSync(p, typeof json === 'string' ? json : JSON.stringify(json));
  return p;
};
const env = (extra: Record<string, string>) => ({ DATA_DIR: tempDir('cfg-'), ...extra });

describe('price table', () => {
  it('defaults price every model and voice the server uses by default', () => {
    expect(DEFAULT_PRICES.llm['us.anthropic.claude-haiku-4-5-20251001-v1:0']).toEqual({ inputPer1M: '1.10', outputPer1M: '5.50' });
    expect(DEFAULT_PRICES.llm['us.anthropic.claude-sonnet-4-5-20250929-v1:0']).toBeDefined();
    expect(byPrefix(DEFAULT_PRICES.tts, 'aura-2-thalia-en')).toEqual({ per1kCharacters: '0.030' });
    expect(byPrefix(DEFAULT_PRICES.tts, 'aura-asteria-en')).toEqual({ per1kCharacters: '0.015' });
    expect(byPrefix(DEFAULT_PRICES.stt, 'nova-3')).toEqual({ perMinute: '0.0048' });
    expect(byPrefix(DEFAULT_PRICES.stt, 'flux-general-en')).toEqual({ perMinute: '0.0065' });
    expect(loadConfig(env({})).prices).toBe(DEFAULT_PRICES);
  });

  it('PRICES_FILE replaces entries key by key and keeps the rest', () => {
    const prices = loadConfig(env({
      PRICES_FILE: file({ telephony: { sip: { inbound: { perMinute: '0.002', incrementSeconds: 6 } } }, llm: { 'my.model': { inputPer1M: 2, outputPer1M: '8.125' } }, stt: { 'nova-3': { perMinute: '0.0059' } } }),
    })).prices;
    expect(prices.telephony.sip.inbound).toEqual({ perMinute: '0.002', incrementSeconds: 6 });
    expect(prices.telephony.sip.outbound).toEqual(DEFAULT_PRICES.telephony.sip.outbound);
    expect(prices.telephony.twilio).toEqual(DEFAULT_PRICES.telephony.twilio);
    expect(prices.llm['my.model']).toEqual({ inputPer1M: '2', outputPer1M: '8.125' });
    expect(prices.llm['us.anthropic.claude-haiku-4-5-20251001-v1:0']).toEqual(DEFAULT_PRICES.llm['us.anthropic.claude-haiku-4-5-20251001-v1:0']);
    expect(prices.stt['nova-3']).toEqual({ perMinute: '0.0059' });
    // The defaults themselves are untouched.
    expect(DEFAULT_PRICES.stt['nova-3']).toEqual({ perMinute: '0.0048' });
  });

  it('a bad PRICES_FILE stops startup with an error naming PRICES_FILE and what is wrong', () => {
    const refused: [unknown, RegExp][] = [
      ['{not json', /is not JSON/],
      [{ llm: { m: { inputPer1M: '-1', outputPer1M: '1' } } }, /\/llm\/m\/inputPer1M/],
      [{ llm: { m: { inputPer1M: '1' } } }, /must have required property 'outputPer1M'/],
      [{ llm: { m: { inputPer1M: 1e-7, outputPer1M: '1' } } }, /\/llm\/m\/inputPer1M: must be a decimal/],
      [{ llm: { m: { inputPer1M: '0.0000000000001', outputPer1M: '1' } } }, /\/llm\/m\/inputPer1M/],
      [{ tts: { 'aura-2': { per1kCharacters: '0.03', extra: 1 } } }, /additional properties \(extra\)/],
      [{ telephony: { twilio: { inbound: { perMinute: '0.01', incrementSeconds: 0 } } } }, /incrementSeconds/],
      [{ telephony: { pstn: {} } }, /additional properties \(pstn\)/],
      [{ stt: { '../x': { perMinute: '1' } } }, /\/stt name "\.\.\/x" must match pattern/],
      [{ currency: 'EUR' }, /additional properties \(currency\)/],
      [[], /must be object/],
    ];
    for (const [json, why] of refused) {
      let err: unknown;
      try {
        loadConfig(env({ PRICES_FILE: file(json) }));
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(json)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('PRICES_FILE');
      expect((err as Error).message, JSON.stringify(json)).toMatch(why);
    }
    // `aybiza serve` itself: exit 1 before listening, the message on stderr.
    const r = spawnSync(process.execPath, [CLI, 'serve'], {
      env: { ...process.env, DATA_DIR: tempDir('serve-'), PORT: '0', HOST: '127.0.0.1', SIP_PORT: '0', EMULATORS: 'on', PRICES_FILE: file({ llm: { m: { inputPer1M: 'free', outputPer1M: '1' } } }) },
      encoding: 'utf8', timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PRICES_FILE: .*\/llm\/m\/inputPer1M must match pattern/);
    expect(r.stdout).not.toMatch(/"msg":"listening"/);
    expect(() => loadPrices('/nonexistent/prices.json')).toThrow(/cannot read \/nonexistent\/prices.json: ENOENT/);
    expect(() => mergePrices({ llm: Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`m${i}`, { inputPer1M: '1', outputPer1M: '1' }])) })).toThrow(/must NOT have more than 200 properties/);
  });
});

describe('cost arithmetic', () => {
  it('prices are exact pico-dollars; lines round half up to the micro-dollar', () => {
    expect(pico('0.0085')).toBe(8_500_000_000n);
    expect(pico('16.50')).toBe(16_500_000_000_000n);
    expect(pico('0.000000000001')).toBe(1n);
    // 1 token at $1.10/M = 1.1 µ$ → 1; 5 tokens = 5.5 µ$ → 6 (half up).
    expect(lineMicros(1n, pico('1.10'), 1_000_000n)).toBe(1n);
    expect(lineMicros(5n, pico('1.10'), 1_000_000n)).toBe(6n);
    expect(usd(123_456_789n)).toBe('123.456789');
    expect(usd(5n)).toBe('0.000005');
    expect(parseUsd('0.012345')).toBe(12_345n);
  });

  it('a metered call priced by hand: each line, each component, and a total that is their exact sum', () => {
    const u = new CallUsage();
    u.sttModel = 'nova-3';
    u.sttAudioBytes = 8000 * 61.5; // 61.5 s streamed
    u.ttsModel = 'aura-2-thalia-en';
    u.ttsCharacters = 333;
    u.llmTokens('us.anthropic.claude-haiku-4-5-20251001-v1:0', 1000, 100);
    u.llmTokens('us.anthropic.claude-haiku-4-5-20251001-v1:0', 1500, 50);
    u.llmTokens('unknown.model', 10, 10);
    u.llmTokens('us.anthropic.claude-haiku-4-5-20251001-v1:0', -5, Number.NaN); // a broken report counts as nothing
    u.llmTokens('us.anthropic.claude-haiku-4-5-20251001-v1:0', 0, 0, true); // a reply cut before anything to count: still a request, estimated
    const { usage, micros } = priceCall(DEFAULT_PRICES, u.metered('twilio', 'inbound', 61_234.4));
    // Twilio: 61.234 s → 2 started minutes of voice ($0.0085) and of Media Streams ($0.004).
    expect(usage.telephony).toEqual([
      { transport: 'twilio', direction: 'inbound', charge: 'voice', seconds: 61.234, billedSeconds: 120, cost: '0.017000' },
      { transport: 'twilio', direction: 'inbound', charge: 'media_streams', seconds: 61.234, billedSeconds: 120, cost: '0.008000' },
    ]);
    // 61.5 s of Nova-3 at $0.0048/min = $0.00492.
    expect(usage.stt).toEqual([{ model: 'nova-3', seconds: 61.5, cost: '0.004920' }]);
    // 333 characters at $0.030/1k = $0.00999.
    expect(usage.tts).toEqual([{ model: 'aura-2-thalia-en', characters: 333, cost: '0.009990' }]);
    // 2,500 input at $1.10/M = 2,750 µ$; 150 output at $5.50/M = 825 µ$.
    expect(usage.llm).toEqual([
      { model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0', purpose: 'conversation', inputTokens: 2500, outputTokens: 150, requests: 4, estimatedRequests: 1, priced: true, cost: '0.003575' },
      { model: 'unknown.model', purpose: 'conversation', inputTokens: 10, outputTokens: 10, requests: 1, estimatedRequests: 0, priced: false, cost: '0.000000' },
    ]);
    expect(micros).toEqual({ telephony: 25_000n, stt: 4_920n, tts: 9_990n, llm: 3_575n });
    const cost = costOf(micros);
    expect(cost).toEqual({ currency: 'USD', total: '0.043485', components: { telephony: '0.025000', stt: '0.004920', tts: '0.009990', llm: '0.003575' } });
    expect(Object.values(cost.components).reduce((s, c) => s + parseUsd(c), 0n)).toBe(parseUsd(cost.total));
  });

  it('SIP is billed by its own increment (default 0: the trunk is the customer\'s); a call with media is at least one increment', () => {
    const prices = mergePrices({ telephony: { sip: { outbound: { perMinute: '0.006', incrementSeconds: 6 } } } });
    const u = new CallUsage();
    expect(priceCall(prices, u.metered('sip', 'outbound', 13_001)).usage.telephony).toEqual([
      { transport: 'sip', direction: 'outbound', charge: 'voice', seconds: 13.001, billedSeconds: 18, cost: '0.001800' },
    ]);
    expect(priceCall(prices, u.metered('sip', 'outbound', 0)).usage.telephony[0].billedSeconds).toBe(6);
    expect(priceCall(DEFAULT_PRICES, u.metered('sip', 'inbound', 90_000)).micros).toEqual({ telephony: 0n, stt: 0n, tts: 0n, llm: 0n });
  });
});
