// Cost per call, end to end on a real PostgreSQL: a simulated Twilio caller
// converses with an agent (the emulators, through the official SDKs over
// sockets; PRICES_FILE overrides the defaults); at hang-up GET /v1/calls/{id}
// shows the metered usage and its cost, and the post-call analysis adds its
// tokens under llm. The quantities are checked against independent
// observations (the caller's own audio clock, what the Deepgram and Bedrock
// emulators received and reported on the wire), the cost against the price
// table by hand, and aybiza_usage_total against the costs. GET /v1/usage
// groups by UTC day and agent, per tenant, with its query validated.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { DEFAULT_KEY_SCOPES } from '../../src/store/types.js';
import { registry } from '../../src/metrics/index.js';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, conversationOf, sleep, waitFor } from '../helpers/calls.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { api } from '../helpers/api.js';
import { tempDir } from '../helpers/spawn-server.js';
import type { Emulators } from '../../src/providers/emulators/index.js';

const ADMIN_KEY = 'usage-test-admin-key';
const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
/** The prices this server runs with (PRICES_FILE); the test prices by hand from these. */
const PRICES = {
  telephony: { twilio: { inbound: { perMinute: '0.0131', incrementSeconds: 6 }, mediaStreams: { perMinute: '0.0047', incrementSeconds: 1 } } },
  stt: { 'nova-3': { perMinute: '0.0077' } },
  tts: { 'aura-2': { per1kCharacters: '0.027' } },
  llm: { [MODEL]: { inputPer1M: '0.8', outputPer1M: '4.1' } },
};

/** round_half_up(quantity × price / per) in micro-dollars, by decimal string arithmetic of its own. */
function micros(quantity: number, price: string, per: number): bigint {
  const [i, f = ''] = price.split('.');
  const scaled = BigInt(i + f.padEnd(12, '0')); // pico-dollars
  const num = BigInt(quantity) * scaled;
  const den = BigInt(per) * 1_000_000n;
  return (num + den / 2n) / den;
}
const usd = (s: string) => BigInt(s.replace('.', ''));

async function usageTotal(component: string): Promise<number> {
  const m = await registry.getSingleMetric('aybiza_usage_total')!.get();
  return m.values.find((v) => v.labels.component === component)?.value ?? 0;
}

describe.skipIf(!realPg)('cost per call (Twilio caller, emulators, real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  let otherKey: string;
  let otherTenant: string;
  let emu: Emulators;
  const call = (method: string, p: string, k = key) => api(t.base, method, p, k);

  beforeAll(async () => {
    const pricesFile = path.join(tempDir('prices-'), 'prices.json');
    fs.writeFileSync(pricesFile, JSON.stringify(PRICES));
    // WORKERS=1: the test reads this process's registry and emulators. No silence gate: every frame the
    // caller sends is streamed to STT, so its seconds match the caller's clock.
    t = await startTestApp(
      { DATABASE_URL: await freshDatabase(), WORKERS: '1', ADMIN_API_KEY: ADMIN_KEY, PRICES_FILE: pricesFile, STT_SILENCE_GATE: 'false', EMULATOR_PHRASES: 'I would like to book a table for two.' },
      { analysis: { outcomes: ['booked', 'other'] } },
    );
    emu = (t.app.providers as unknown as { emulators: Emulators }).emulators;
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'k', [...DEFAULT_KEY_SCOPES])).key;
    const other = await t.app.store.tenants.create(ADMIN, 'Other', null);
    otherTenant = other.id;
    otherKey = (await t.app.store.tenants.createKey(ADMIN, other.id, 'o', [...DEFAULT_KEY_SCOPES])).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const llmSent = () => structuredClone(emu.bedrock.usageSent.get(MODEL) ?? { inputTokens: 0, outputTokens: 0, responses: 0 });

  it('a conversed call: usage metered plausibly, cost = usage × the price table exactly, the analysis under llm, the metric counts it', async () => {
    const before = { stt: emu.deepgram.stats.sttAudioBytes, tts: emu.deepgram.stats.ttsCharacters, llm: llmSent() };
    const metricBefore = Object.fromEntries(await Promise.all(['telephony', 'stt', 'tts', 'llm'].map(async (c) => [c, await usageTotal(c)])));

    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number, from: '+14155550123' });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    c.speak(synthesize('I would like to book a table for two'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'the turn');
    await agentQuiet(c);
    const callerSeconds = (c as unknown as { sentFrames: number }).sentFrames * 0.02;
    await c.hangup();
    const id = (await t.app.store.calls.findCall('twilio', c.callSid))!.id;

    // Priced at hang-up; the analysis adds its line when it is done.
    let d: any;
    const t0 = Date.now();
    for (;;) {
      d = (await call('GET', `/v1/calls/${id}`)).body;
      if (d.cost && d.analysis && d.usage.llm.some((l: { purpose: string }) => l.purpose === 'analysis')) break;
      if (Date.now() - t0 > 20_000) throw new Error(`never priced and analysed: ${JSON.stringify({ cost: d.cost, analysis: !!d.analysis })}`);
      await sleep(100);
    }
    const u = d.usage;

    // Telephony: the media time, as long as the caller's own audio clock (one frame per 20 ms).
    expect(u.telephony.map((l: { charge: string }) => l.charge)).toEqual(['voice', 'media_streams']);
    for (const l of u.telephony) {
      expect(l).toMatchObject({ transport: 'twilio', direction: 'inbound' });
      expect(Math.abs(l.seconds - callerSeconds)).toBeLessThan(0.5);
    }
    expect(u.telephony[0].billedSeconds).toBe(Math.ceil(u.telephony[0].seconds / 6) * 6);
    expect(u.telephony[1].billedSeconds).toBe(Math.ceil(u.telephony[1].seconds));

    // STT: exactly what the Deepgram emulator received, and (no silence gate) the caller's audio time.
    expect(u.stt).toHaveLength(1);
    expect(u.stt[0].model).toBe('nova-3');
    expect(u.stt[0].seconds).toBe((emu.deepgram.stats.sttAudioBytes - before.stt) / 8000);
    expect(Math.abs(u.stt[0].seconds - callerSeconds)).toBeLessThan(0.3);

    // TTS: exactly the characters Aura (emulated) received: the greeting and the reply, each Speak with its separating space.
    expect(u.tts).toHaveLength(1);
    expect(u.tts[0].model).toBe('aura-2-thalia-en');
    expect(u.tts[0].characters).toBe(emu.deepgram.stats.ttsCharacters - before.tts);
    const spoken = 'Hello! Thanks for calling. How can I help you today?'.length + conv.turns[0].agent.length;
    expect(u.tts[0].characters).toBeGreaterThanOrEqual(spoken);
    expect(u.tts[0].characters).toBeLessThan(spoken * 2);

    // LLM: the conversation's and the analysis's tokens are what the Bedrock emulator reported on the wire.
    const conversation = u.llm.filter((l: { purpose: string }) => l.purpose === 'conversation');
    const analysis = u.llm.find((l: { purpose: string }) => l.purpose === 'analysis');
    expect(conversation).toHaveLength(1);
    expect(conversation[0]).toMatchObject({ model: MODEL, priced: true });
    expect(conversation[0].inputTokens).toBeGreaterThan(20);
    expect(analysis).toMatchObject({ model: MODEL, inputTokens: d.analysis.usage.inputTokens, outputTokens: d.analysis.usage.outputTokens, requests: 1 });
    const sent = llmSent();
    expect(conversation[0].inputTokens + analysis.inputTokens).toBe(sent.inputTokens - before.llm.inputTokens);
    expect(conversation[0].outputTokens + analysis.outputTokens).toBe(sent.outputTokens - before.llm.outputTokens);
    expect(conversation[0].requests + analysis.requests).toBe(sent.responses - before.llm.responses);

    // Cost: every line priced by hand from PRICES_FILE; components are their lines' sums; total their exact sum.
    const tel = PRICES.telephony.twilio;
    expect(usd(u.telephony[0].cost)).toBe(micros(u.telephony[0].billedSeconds, tel.inbound.perMinute, 60));
    expect(usd(u.telephony[1].cost)).toBe(micros(u.telephony[1].billedSeconds, tel.mediaStreams.perMinute, 60));
    expect(usd(u.stt[0].cost)).toBe(micros(u.stt[0].seconds * 1000, PRICES.stt['nova-3'].perMinute, 60_000));
    expect(usd(u.tts[0].cost)).toBe(micros(u.tts[0].characters, PRICES.tts['aura-2'].per1kCharacters, 1000));
    const p = PRICES.llm[MODEL];
    for (const l of u.llm) expect(usd(l.cost)).toBe(micros(l.inputTokens, p.inputPer1M, 1e6) + micros(l.outputTokens, p.outputPer1M, 1e6));
    const sum = (lines: { cost: string }[]) => lines.reduce((s, l) => s + usd(l.cost), 0n);
    expect(d.cost.currency).toBe('USD');
    expect(usd(d.cost.components.telephony)).toBe(sum(u.telephony));
    expect(usd(d.cost.components.stt)).toBe(sum(u.stt));
    expect(usd(d.cost.components.tts)).toBe(sum(u.tts));
    expect(usd(d.cost.components.llm)).toBe(sum(u.llm));
    expect(usd(d.cost.total)).toBe(Object.values(d.cost.components as Record<string, string>).reduce((s, v) => s + usd(v), 0n));
    expect(usd(d.cost.total)).toBeGreaterThan(0n);

    // aybiza_usage_total{component}: each component's dollars, once.
    for (const comp of ['telephony', 'stt', 'tts', 'llm']) {
      expect((await usageTotal(comp)) - metricBefore[comp]).toBeCloseTo(Number(d.cost.components[comp]), 9);
    }
    const text = await registry.metrics();
    expect(text).not.toMatch(/aybiza_usage_total\{[^}]*(tenant|call)/);
  });

  it('GET /v1/usage: by UTC day and by agent, per tenant; other tenants see nothing of it', async () => {
    const pool = t.app.store.db.pool;
    // Calls on earlier days, for this tenant (its agent and none) and for another, priced directly.
    const row = (id: string, tenant: string, agent: string | null, day: string, m: number[]) => pool.query(
      `insert into calls (id, tenant_id, agent_id, transport, external_id, status, started_at, cost_telephony_micros, cost_stt_micros, cost_tts_micros, cost_llm_micros)
       values ($1, $2, $3, 'sip', $1, 'completed', $4, $5, $6, $7, $8)`,
      [id, tenant, agent, day, ...m],
    );
    await row('call_u1', t.tenantId, t.agentId, '2026-03-01T10:00:00Z', [1, 2, 3, 4]);
    await row('call_u2', t.tenantId, t.agentId, '2026-03-01T23:59:59Z', [10, 20, 30, 40]);
    await row('call_u3', t.tenantId, null, '2026-03-02T00:00:00Z', [100, 0, 0, 999_999]);
    await row('call_u4', otherTenant, null, '2026-03-01T12:00:00Z', [5_000_000, 0, 0, 0]);

    const byDay = await call('GET', '/v1/usage?from=2026-03-01&to=2026-03-03');
    expect(byDay.status).toBe(200);
    expect(byDay.body).toMatchObject({ from: '2026-03-01T00:00:00.000Z', to: '2026-03-03T00:00:00.000Z', groupBy: 'day', currency: 'USD' });
    expect(byDay.body.items).toEqual([
      { key: '2026-03-01', calls: 2, total: '0.000110', components: { telephony: '0.000011', stt: '0.000022', tts: '0.000033', llm: '0.000044' } },
      { key: '2026-03-02', calls: 1, total: '1.000099', components: { telephony: '0.000100', stt: '0.000000', tts: '0.000000', llm: '0.999999' } },
    ]);
    // A zone offset moves the boundary: 2026-03-02T00:30+01:00 is 23:30 UTC on the 1st.
    const narrow = await call('GET', `/v1/usage?from=2026-03-01T11:00:00%2B01:00&to=${encodeURIComponent('2026-03-02T00:30:00+01:00')}`);
    expect(narrow.body.items.map((i: { calls: number }) => i.calls)).toEqual([1]);

    const byAgent = await call('GET', '/v1/usage?from=2026-03-01T00:00:00Z&to=2026-03-03T00:00:00Z&groupBy=agent');
    expect(byAgent.body.items).toEqual([
      { key: t.agentId, calls: 2, total: '0.000110', components: { telephony: '0.000011', stt: '0.000022', tts: '0.000033', llm: '0.000044' } },
      { key: null, calls: 1, total: '1.000099', components: { telephony: '0.000100', stt: '0.000000', tts: '0.000000', llm: '0.999999' } },
    ]);

    // Today: the conversed call, its cost as its own detail shows it.
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const mine = await call('GET', `/v1/usage?from=${today}&to=${tomorrow}`);
    expect(mine.body.items).toHaveLength(1);
    expect(mine.body.items[0].calls).toBe(1);
    expect(usd(mine.body.items[0].total)).toBeGreaterThan(0n);

    // Tenant isolation: the other tenant sees only its own; naming this tenant is a 404.
    expect((await call('GET', '/v1/usage?from=2026-03-01&to=2026-03-03', otherKey)).body.items).toEqual([
      { key: '2026-03-01', calls: 1, total: '5.000000', components: { telephony: '5.000000', stt: '0.000000', tts: '0.000000', llm: '0.000000' } },
    ]);
    expect((await call('GET', `/v1/usage?from=${today}&to=${tomorrow}`, otherKey)).body.items).toEqual([]);
    expect((await call('GET', `/v1/usage?from=2026-03-01&to=2026-03-03&tenantId=${t.tenantId}`, otherKey)).status).toBe(404);
    // A platform admin sees every tenant, or one.
    expect((await call('GET', '/v1/usage?from=2026-03-01&to=2026-03-02', ADMIN_KEY)).body.items).toMatchObject([{ key: '2026-03-01', calls: 3, total: '5.000110' }]);
    expect((await call('GET', `/v1/usage?from=2026-03-01&to=2026-03-02&tenantId=${otherTenant}`, ADMIN_KEY)).body.items).toMatchObject([{ calls: 1, total: '5.000000' }]);
  });

  it('a Flux agent: the audio streamed to Flux is metered under its model and priced at the Flux rate (a default PRICES_FILE did not override)', async () => {
    const agent = await t.app.store.agents.create(ADMIN, t.tenantId, { name: 'Flux', prompt: 'You are helpful.', greeting: 'Hi, how can I help?', stt: { model: 'flux-general-en' } });
    const number = '+14155550999';
    await t.app.store.agents.addNumber(ADMIN, t.tenantId, number, agent.id);
    const before = emu.deepgram.stats.fluxAudioBytes;
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: number, from: '+14155550124' });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    c.speak(synthesize('I would like to book a table for two'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'the turn');
    await agentQuiet(c);
    const callerSeconds = (c as unknown as { sentFrames: number }).sentFrames * 0.02;
    await c.hangup();
    const id = (await t.app.store.calls.findCall('twilio', c.callSid))!.id;
    let d: any;
    const t0 = Date.now();
    while (!(d = (await call('GET', `/v1/calls/${id}`)).body).cost) {
      if (Date.now() - t0 > 10_000) throw new Error('never priced');
      await sleep(100);
    }
    const stt = d.usage.stt[0];
    expect(stt.model).toBe('flux-general-en');
    // Flux streams every frame (80 ms messages): the caller's audio time, to a message.
    expect(stt.seconds).toBe((emu.deepgram.stats.fluxAudioBytes - before) / 8000);
    expect(Math.abs(stt.seconds - callerSeconds)).toBeLessThan(0.3);
    expect(usd(stt.cost)).toBe(micros(stt.seconds * 1000, '0.0065', 60_000));
    const byAgent = await call('GET', `/v1/usage?from=${new Date(Date.now() - 3600_000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}&groupBy=agent`);
    const flux = byAgent.body.items.find((i: { key: string }) => i.key === agent.id);
    expect(flux).toMatchObject({ calls: 1, total: d.cost.total, components: d.cost.components });
  });

  it('bad queries are a 400 naming the parameter; calls:read is needed; the route is in the OpenAPI document', async () => {
    const bad: [string, RegExp][] = [
      ['', /^from: is required/],
      ['?from=2026-03-01', /^to: is required/],
      ['?from=yesterday&to=2026-03-02', /^from: must be an ISO 8601/],
      ['?from=2026-02-30&to=2026-03-02', /^from: 2026-02-30 is not a valid instant/],
      ['?from=2026-03-01T10:00:00&to=2026-03-02', /^from: must be an ISO 8601/],
      ['?from=2026-03-01T25:00:00Z&to=2026-03-02', /^from: .* is not a valid instant/],
      ['?from=2026-03-01T10:00:00%2B24:00&to=2026-03-02', /^from: .* invalid zone offset/],
      ['?from=2026-03-02&to=2026-03-01', /^to: must be after from/],
      ['?from=2026-03-01&to=2026-03-01', /^to: must be after from/],
      ['?from=2025-01-01&to=2026-03-01', /^to: the range is at most 366 days/],
      ['?from=2026-03-01&to=2026-03-02&groupBy=week', /^groupBy: must be day or agent/],
      ['?from=2026-03-01&to=2026-03-02&limit=5', /^limit: unknown query parameter/],
      ['?from=2026-03-01&from=2026-03-01&to=2026-03-02', /^from: given more than once/],
      ['?from=2026-03-01&to=2026-03-02&tenantId=%00', /^tenantId: is not an id/],
    ];
    for (const [q, why] of bad) {
      const r = await call('GET', `/v1/usage${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('invalid_query');
      expect(r.body.error.message, q).toMatch(why);
    }
    const noScope = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'a', ['agents:read'])).key;
    expect((await call('GET', '/v1/usage?from=2026-03-01&to=2026-03-02', noScope)).status).toBe(403);
    expect((await fetch(`${t.base}/v1/usage?from=2026-03-01&to=2026-03-02`)).status).toBe(401);
    const doc = (await (await fetch(`${t.base}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, unknown> } };
    const op = doc.paths['/v1/usage'].get;
    expect(op['x-required-access']).toBe('calls:read');
    expect(op.parameters.map((x: { name: string; required: boolean }) => `${x.name}:${x.required}`)).toEqual(['from:true', 'to:true', 'groupBy:false', 'tenantId:false']);
    expect(doc.components.schemas.Cost).toBeDefined();
  });
});
