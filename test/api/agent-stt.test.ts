// Agent STT settings for Deepgram Flux (CONTRACT §7: stt.model,
// stt.eotThreshold / eagerEotThreshold / eotTimeoutMs): valid values are
// stored, values Flux would refuse are a 422 naming the field, on create and
// on change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

const ADMIN = 'admin-key-agent-stt-test';

describe('agent stt (Flux) fields', () => {
  let t: TestApp;
  const call = async (method: string, path: string, body: unknown) => {
    const res = await fetch(t.base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const create = (stt: unknown) => call('POST', '/v1/agents', { tenantId: t.tenantId, name: 'flux', prompt: 'p', stt });

  beforeAll(async () => {
    t = await startTestApp({ ADMIN_API_KEY: ADMIN });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('stores a Flux agent with its thresholds', async () => {
    const stt = { model: 'flux-general-en', eotThreshold: 0.8, eagerEotThreshold: 0.5, eotTimeoutMs: 6000 };
    const r = await create(stt);
    expect(r.status).toBe(201);
    expect((await t.app.store.agents.get(null, r.body.id)).stt).toEqual(stt);
    expect((await create({ model: 'flux-general-en', eotThreshold: 1, eagerEotThreshold: 0.9, eotTimeoutMs: 60000 })).status).toBe(201);
    expect((await create({ model: 'flux-general-en', eagerEotThreshold: 0.7 })).status).toBe(201); // ≤ the default 0.7
  });

  it.each([
    [{ eotThreshold: 0.4 }, 'stt.eotThreshold: must be at least 0.5'],
    [{ eotThreshold: 1.1 }, 'stt.eotThreshold: must be at most 1'],
    [{ eagerEotThreshold: 0.2 }, 'stt.eagerEotThreshold: must be at least 0.3'],
    [{ eagerEotThreshold: 0.95 }, 'stt.eagerEotThreshold: must be at most 0.9'],
    [{ eotTimeoutMs: 499 }, 'stt.eotTimeoutMs: must be at least 500'],
    [{ eotTimeoutMs: 60001 }, 'stt.eotTimeoutMs: must be at most 60000'],
    [{ eotTimeoutMs: 1000.5 }, 'stt.eotTimeoutMs: must be an integer'],
    [{ eotThreshold: '0.7' }, 'stt.eotThreshold: must be a number'],
    [{ eotThreshold: 0.6, eagerEotThreshold: 0.65 }, 'stt.eagerEotThreshold: must not exceed stt.eotThreshold (0.6)'],
    [{ eagerEotThreshold: 0.8 }, 'stt.eagerEotThreshold: must not exceed stt.eotThreshold (0.7, the default)'],
  ])('refuses %j with 422 (create and change)', async (fields, message) => {
    const stt = { model: 'flux-general-en', ...fields };
    const r = await create(stt);
    expect(r.status).toBe(422);
    expect(r.body.error).toEqual({ code: 'invalid_field', message });
    const p = await call('PATCH', `/v1/agents/${t.agentId}`, { stt });
    expect(p.status).toBe(422);
    expect(p.body.error.message).toBe(message);
  });
});
