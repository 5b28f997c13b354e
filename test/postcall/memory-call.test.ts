// After the call, end to end on a real PostgreSQL: a simulated Twilio caller
// converses with an agent that has analysis and memory; the analysis
// (summary, sentiment, outcome, quality, structured data, token usage) is
// shown by GET /v1/calls/{id}; a second call from the same number hears an
// agent that knows the first call's summary (the emulated LLM echoes the
// memory it was given); GET /v1/memory/{number} lists it per tenant;
// DELETE erases it (audited, number masked) and the next call's agent no
// longer knows. Agent analysis schemas are validated at POST/PATCH.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { DEFAULT_KEY_SCOPES } from '../../src/store/types.js';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, conversationOf, sleep, waitFor } from '../helpers/calls.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { api } from '../helpers/api.js';

const CALLER = '+14155550177';
const SUMMARY = 'The caller said: I would like to book a table for two.';

describe.skipIf(!realPg)('analysis and memory across calls (Twilio caller, emulators, real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  let otherKey: string;
  const call = (method: string, path: string, k = key, body?: unknown) => api(t.base, method, path, k, body);

  beforeAll(async () => {
    // WORKERS=1: the calls are checked against the live conversation (conversationOf), which lives
    // in a worker thread with AYBIZA_TEST_WORKERS > 1.
    t = await startTestApp(
      { DATABASE_URL: await freshDatabase(), EMULATOR_PHRASES: 'I would like to book a table for two.|Do you remember me?', WORKERS: '1' },
      {
        analysis: {
          outcomes: ['booked', 'question', 'other'], rubric: 'Brief and polite.',
          schema: { type: 'object', required: ['partySize'], properties: { partySize: { type: 'integer', minimum: 1 } } },
        },
        memory: { enabled: true, retentionDays: 30 },
      },
    );
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'k', [...DEFAULT_KEY_SCOPES])).key;
    const other = await t.app.store.tenants.create(ADMIN, 'Other', null);
    otherKey = (await t.app.store.tenants.createKey(ADMIN, other.id, 'o', [...DEFAULT_KEY_SCOPES])).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** One call from CALLER saying the phrases in order; returns the agent's replies and the call id. */
  async function converse(turns: number): Promise<{ replies: string[]; callId: string }> {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number, from: CALLER });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    for (let i = 1; i <= turns; i++) {
      c.speak(synthesize(i === 1 ? 'I would like to book a table for two' : 'do you remember me'));
      await waitFor(() => conv.turns.length === i, 20_000, `turn ${i}`);
      await agentQuiet(c);
    }
    await c.hangup();
    const rec = (await t.app.store.calls.findCall('twilio', c.callSid))!;
    return { replies: conv.turns.map((x) => x.agent), callId: rec.id };
  }

  async function analysed(callId: string): Promise<any> {
    const t0 = Date.now();
    for (;;) {
      const r = await call('GET', `/v1/calls/${callId}`);
      expect(r.status).toBe(200);
      if (r.body.analysis) return r.body;
      if (Date.now() - t0 > 20_000) throw new Error('the call was never analysed');
      await sleep(100);
    }
  }

  it('a conversed call is analysed after hang-up; a second call from the number hears what the first was about; erasure forgets it', async () => {
    const first = await converse(1);
    const detail = await analysed(first.callId);
    expect(detail.analysis).toMatchObject({
      summary: SUMMARY, sentiment: { label: 'neutral', score: 0 }, outcome: 'booked', qualityScore: 70, data: { partySize: 2 },
      usage: { requests: 1 },
    });
    expect(detail.analysis.error).toBeUndefined();
    expect(detail.analysis.usage.inputTokens).toBeGreaterThan(0);

    // The number, raw or with + percent-encoded.
    const listed = await call('GET', `/v1/memory/${encodeURIComponent(CALLER)}`);
    expect(listed).toMatchObject({ status: 200, body: { number: CALLER, items: [{ callId: first.callId, summary: SUMMARY }] } });
    expect((await call('GET', `/v1/memory/${CALLER}`)).body.items).toHaveLength(1);
    // Hashed at rest: the number is nowhere in the table.
    const dump = JSON.stringify((await t.app.store.db.pool.query('select * from call_memories')).rows);
    expect(dump).toContain('I would like to book');
    expect(dump).not.toContain(CALLER.slice(1));

    const second = await converse(2);
    expect(second.replies[1]).toContain(`Yes, I remember. ${SUMMARY}`);
    await analysed(second.callId);
    expect((await call('GET', `/v1/memory/%2B${CALLER.slice(1)}`)).body.items.map((i: { callId: string }) => i.callId)).toEqual([second.callId, first.callId]);

    // Another tenant neither sees nor erases it.
    expect((await call('GET', `/v1/memory/${encodeURIComponent(CALLER)}`, otherKey)).body.items).toEqual([]);
    expect((await call('DELETE', `/v1/memory/${encodeURIComponent(CALLER)}`, otherKey)).status).toBe(204);
    expect((await call('GET', `/v1/memory/${encodeURIComponent(CALLER)}`)).body.items).toHaveLength(2);

    expect((await call('DELETE', `/v1/memory/${encodeURIComponent(CALLER)}`)).status).toBe(204);
    expect((await call('GET', `/v1/memory/${encodeURIComponent(CALLER)}`)).body.items).toEqual([]);
    expect((await t.app.store.db.pool.query('select 1 from call_memories where tenant_id = $1', [t.tenantId])).rowCount).toBe(0);
    const audit = (await call('GET', '/v1/audit-log')).body.items.find((e: { action: string }) => e.action === 'memory.erase');
    expect(audit).toMatchObject({ objectType: 'memory', objectId: '+1********77', before: { number: '+1********77', summaries: 2 } });
    expect(JSON.stringify(audit)).not.toContain(CALLER.slice(1));

    const third = await converse(2);
    expect(third.replies[1]).not.toContain('I remember');
  });

  it('numbers must be E.164; memory:write is needed to erase; the routes are in the OpenAPI document', async () => {
    expect((await call('GET', '/v1/memory/12345')).status).toBe(422);
    expect((await call('DELETE', '/v1/memory/%2Bnope')).status).toBe(422);
    const readOnly = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'r', ['calls:read'])).key;
    expect((await call('GET', `/v1/memory/${encodeURIComponent(CALLER)}`, readOnly)).status).toBe(200);
    expect((await call('DELETE', `/v1/memory/${encodeURIComponent(CALLER)}`, readOnly)).status).toBe(403);
    const doc = (await (await fetch(`${t.base}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.paths['/v1/memory/{number}'].delete['x-required-access']).toBe('memory:write');
    expect(doc.paths['/v1/memory/{number}'].get['x-required-access']).toBe('calls:read');
  });

  it('agent analysis schemas are compiled at POST and PATCH: unusable ones are a 422', async () => {
    const bad = await call('POST', '/v1/agents', key, { name: 'X', prompt: 'p', analysis: { outcomes: ['a'], schema: { type: 'object', properties: { a: { type: 'strin' } } } } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toMatch(/^analysis\.schema: /);
    const ok = await call('POST', '/v1/agents', key, { name: 'X', prompt: 'p', analysis: { outcomes: ['a'], schema: { type: 'object' } }, memory: { enabled: true } });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ analysis: { outcomes: ['a'] }, memory: { enabled: true } });
    const patched = await call('PATCH', `/v1/agents/${ok.body.id}`, key, { analysis: { outcomes: ['a'], schema: { type: 'object', properties: { p: { type: 'string', pattern: '(a+)+' } } } } });
    expect(patched.status).toBe(422);
    expect((await call('POST', '/v1/agents', key, { name: 'X', prompt: 'p', memory: { enabled: true, retentionDays: 0 } })).status).toBe(422);
  });
});
