// Request validation by Ajv (issue 13, item 19): keys that live on
// Object.prototype are refused like any unknown field, at every depth; hostile
// shapes (deep nesting, huge numbers) get a 4xx, never a 500; the OpenAPI
// document shows the very schemas that are enforced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import * as S from '../../src/api/schemas.js';

const ADMIN = 'admin-key-validation-test';

describe('request validation', () => {
  let t: TestApp;
  const post = async (path: string, raw: string, method = 'POST') => {
    const res = await fetch(t.base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: raw });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const agentCount = async () => (await t.app.store.db.pool.query('select count(*)::int as n from agents')).rows[0].n as number;

  beforeAll(async () => {
    t = await startTestApp({ ADMIN_API_KEY: ADMIN });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('keeps the error shape, naming the field', async () => {
    const r = await post('/v1/agents', JSON.stringify({ tenantId: t.tenantId, name: 'x', prompt: 'p', llm: { temperature: 'hot' } }));
    expect(r.status).toBe(422);
    expect(r.body).toEqual({ error: { code: 'invalid_field', message: 'llm.temperature: must be a number' } });
    const item = await post('/v1/agents', JSON.stringify({ tenantId: t.tenantId, name: 'x', prompt: 'p', tools: [{ name: 'a', description: 'd', parameters: {}, url: 'ftp://x' }] }));
    expect(item.body.error.message).toBe('tools[0].url: must match ^https?://');
    const missing = await post('/v1/agents', JSON.stringify({ tenantId: t.tenantId, name: 'x' }));
    expect(missing.body.error.message).toBe('prompt: is required');
  });

  it('refuses __proto__ and constructor keys (422), at the top and nested, and pollutes nothing', async () => {
    const before = await agentCount();
    const bodies = [
      ['__proto__', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","__proto__":{"admin":true}}`],
      ['constructor', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","constructor":{"prototype":{"admin":true}}}`],
      ['llm.__proto__', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":{"__proto__":{"admin":true}}}`],
      ['llm.constructor', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":{"constructor":1}}`],
      ['tools[0].__proto__', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","tools":[{"name":"a","description":"d","parameters":{},"url":"https://x.example","__proto__":{"admin":true}}]}`],
      ['tools[0].parameters.properties.__proto__', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","tools":[{"name":"a","description":"d","parameters":{"properties":{"__proto__":{"admin":true}}},"url":"https://x.example"}]}`],
      ['toString', `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","toString":"x"}`],
    ];
    for (const [field, raw] of bodies) {
      const r = await post('/v1/agents', raw);
      expect(r.status, raw).toBe(422);
      expect(r.body.error).toEqual({ code: 'invalid_field', message: `${field}: is not a known field` });
    }
    const patched = await post(`/v1/agents/${t.agentId}`, '{"__proto__":{"prompt":"pwned"}}', 'PATCH');
    expect(patched.status).toBe(422);
    const tenant = await post('/v1/tenants', '{"name":"t","constructor":{"name":"x"}}');
    expect(tenant.status).toBe(422);
    expect(await agentCount()).toBe(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    expect((await t.app.store.agents.get(null, t.agentId)).prompt).not.toBe('pwned');
  });

  it('answers deep nesting and huge numbers with a 4xx, never a 500', async () => {
    const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const cases = [
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","tools":[{"name":"a","description":"d","url":"https://x.example","parameters":${deep(1000)}}]}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","tools":[{"name":"a","description":"d","url":"https://x.example","parameters":${deep(60_000)}}]}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":{"maxTokens":1e400}}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":{"temperature":-1e400}}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","latencyBudgetMs":${'9'.repeat(5000)}}`,
      `{"tenantId":"${t.tenantId}","name":"x","prompt":"y","llm":{"maxTokens":1.5}}`,
    ];
    for (const raw of cases) {
      const r = await post('/v1/agents', raw);
      expect(r.status, raw.slice(0, 120)).toBeGreaterThanOrEqual(400);
      expect(r.status, raw.slice(0, 120)).toBeLessThan(500);
    }
    expect((await post(`/v1/agents/${t.agentId}/deploy`, '{"version":1e400}')).status).toBe(422);
    expect((await post('/v1/tenants', '{"name":"t","maxConcurrentCalls":1e308}')).status).toBe(422);
  });

  it('renders the enforced schemas in the OpenAPI document', async () => {
    const doc = await (await fetch(`${t.base}/v1/openapi.json`)).json();
    const schema = doc.paths['/v1/agents'].post.requestBody.content['application/json'].schema;
    expect(schema).toEqual(JSON.parse(JSON.stringify(S.agentCreate)));
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.tools.items.properties.parameters).toMatchObject({ type: 'object' });
  });
});
