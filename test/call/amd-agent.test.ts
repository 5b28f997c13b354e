// The agent's `amd` settings (src/call/amd.ts AmdSettings): valid values are
// stored and read back; out-of-range, wrongly typed or unknown fields are a
// 422 naming the field, on create and on change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { AMD_LIMITS } from '../../src/call/amd.js';

const ADMIN = 'admin-key-agent-amd-test';

describe('agent amd settings', () => {
  let t: TestApp;
  const call = async (method: string, path: string, body: unknown) => {
    const res = await fetch(t.base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const create = (amd: unknown) => call('POST', '/v1/agents', { tenantId: t.tenantId, name: 'amd', prompt: 'p', amd });

  beforeAll(async () => {
    t = await startTestApp({ ADMIN_API_KEY: ADMIN });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('stores the settings given (any subset) and changes them', async () => {
    const amd = { greetingMs: 2000, afterGreetingSilenceMs: 700, maxWords: 4, speechProbability: 0.7, transcript: false };
    const r = await create(amd);
    expect(r.status).toBe(201);
    expect((await t.app.store.agents.get(null, r.body.id)).amd).toEqual(amd);
    const all = Object.fromEntries(Object.entries(AMD_LIMITS).map(([k, [, max]]) => [k, max]));
    expect((await create(all)).status).toBe(201);
    const p = await call('PATCH', `/v1/agents/${r.body.id}`, { amd: { totalAnalysisMs: 3000 } });
    expect(p.status).toBe(200);
    expect((await t.app.store.agents.get(null, r.body.id)).amd).toEqual({ totalAnalysisMs: 3000 });
  });

  it.each([
    [{ greetingMs: 299 }, 'amd.greetingMs: must be at least 300'],
    [{ totalAnalysisMs: 10_001 }, 'amd.totalAnalysisMs: must be at most 10000'],
    [{ maxWords: 0 }, 'amd.maxWords: must be at least 1'],
    [{ minWordMs: 50.5 }, 'amd.minWordMs: must be an integer'],
    [{ speechProbability: 1 }, 'amd.speechProbability: must be at most 0.99'],
    [{ afterGreetingSilenceMs: '800' }, 'amd.afterGreetingSilenceMs: must be an integer'],
    [{ transcript: 'yes' }, 'amd.transcript: must be true or false'],
  ])('refuses %j with 422 (create and change)', async (amd, message) => {
    const r = await create(amd);
    expect(r.status).toBe(422);
    expect(r.body.error).toEqual({ code: 'invalid_field', message });
    const p = await call('PATCH', `/v1/agents/${t.agentId}`, { amd });
    expect(p.status).toBe(422);
    expect(p.body.error.message).toBe(message);
  });

  it('refuses unknown fields and a non-object', async () => {
    expect((await create({ beepHz: 1000 })).status).toBe(422);
    expect((await create([1])).status).toBe(422);
    expect((await create('detect')).status).toBe(422);
  });
});
