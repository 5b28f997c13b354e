// The admin API end to end over plain HTTP, against each storage backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startApp } from '../helpers/app.js';
import { BACKENDS, realPg, redisPrefix } from '../helpers/databases.js';
import { testWorkers } from '../helpers/spawn-server.js';

const ADMIN = 'admin-key-for-tests';

for (const backend of BACKENDS) {
  const skip = backend.name.startsWith('real') && !realPg;
  describe.skipIf(skip)(`admin API on ${backend.name}`, () => {
    let app: App;
    let base: string;
    const call = async (method: string, path: string, key: string | null, body?: unknown, raw?: string) => {
      const res = await fetch(base + path, {
        method,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' },
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
    };

    // WORKERS is AYBIZA_TEST_WORKERS: with more than one, the workers serve the API.
    const open = async (vars: Record<string, string> = {}) => {
      const env = await backend.env();
      const a = await startApp({ ...env, PORT: '0', HOST: '127.0.0.1', ADMIN_API_KEY: ADMIN, API_RATE_LIMIT: '40', SIP_PORT: '0', LOG_LEVEL: 'warn', ...vars }, { redisPrefix: redisPrefix() });
      return { app: a, base: `http://127.0.0.1:${await a.server.listen()}` };
    };
    beforeAll(async () => {
      ({ app, base } = await open());
    });
    afterAll(async () => {
      await app?.server.shutdown();
    });

    it('walks the whole contract: tenants, keys, agents and versions, deploy/rollback, numbers, trunks, calls, audit', async () => {
      const tenant = await call('POST', '/v1/tenants', ADMIN, { name: 'Acme' });
      expect(tenant.status).toBe(201);
      expect(tenant.body).toMatchObject({ id: expect.stringMatching(/^ten_/), name: 'Acme' });

      const key = await call('POST', '/v1/api-keys', ADMIN, { tenantId: tenant.body.id, name: 'ops' });
      expect(key.status).toBe(201);
      expect(key.body.key).toMatch(/^ayb_/);
      // Every tenant scope but keys:write (DEFAULT_KEY_SCOPES), the outbound and webhook scopes included.
      expect(key.body.scopes).toEqual(['agents:read', 'agents:write', 'numbers:write', 'trunks:write', 'calls:read', 'audit:read', 'calls:write', 'webhooks:read', 'webhooks:write', 'memory:write', 'recordings:read']);
      const k = key.body.key as string;

      const agent = await call('POST', '/v1/agents', k, { name: 'Front desk', prompt: 'You are helpful.', greeting: 'Hello!' });
      expect(agent.status).toBe(201);
      expect(agent.body).toMatchObject({ version: 1, liveVersion: 1, name: 'Front desk', greeting: 'Hello!' });
      const id = agent.body.id as string;

      const v2 = await call('PATCH', `/v1/agents/${id}`, k, { greeting: 'Hi there!' });
      expect(v2.status).toBe(200);
      expect(v2.body).toMatchObject({ id, version: 2, liveVersion: 1, greeting: 'Hi there!', prompt: 'You are helpful.' });

      const deployed = await call('POST', `/v1/agents/${id}/deploy`, k, { version: 2 });
      expect(deployed.body).toMatchObject({ liveVersion: 2 });
      const rolledBack = await call('POST', `/v1/agents/${id}/deploy`, k, { version: 1 });
      expect(rolledBack.body).toMatchObject({ liveVersion: 1, version: 2 });
      const got = await call('GET', `/v1/agents/${id}`, k);
      expect(got.body.liveVersion).toBe(1);
      const versions = await call('GET', `/v1/agents/${id}/versions`, k);
      expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
      expect(versions.body.items[1].config.greeting).toBe('Hello!');

      const num = await call('POST', '/v1/phone-numbers', k, { number: '+14155550100', agentId: id });
      expect(num.status).toBe(201);
      expect(num.body).toMatchObject({ number: '+14155550100', agentId: id });
      const dup = await call('POST', '/v1/phone-numbers', k, { number: '+14155550100', agentId: id });
      expect(dup.status).toBe(409);
      const resolved = await app.store.resolver.resolveNumber('+14155550100');
      expect(resolved).toMatchObject({ agentId: id, agentVersion: 1, config: { greeting: 'Hello!' } });

      const trunk = await call('POST', '/v1/sip-trunks', k, { name: 'carrier', allowedCidrs: ['192.0.2.0/24', '198.51.100.7'], username: 'acme', password: 's3cret-pass' });
      expect(trunk.status).toBe(201);
      expect(trunk.body.allowedCidrs).toEqual(['192.0.2.0/24', '198.51.100.7/32']);
      expect(JSON.stringify(trunk.body)).not.toContain('s3cret');
      expect(trunk.body).not.toHaveProperty('password');
      const byAddr = await app.store.trunks.trunksForAddress('192.0.2.55');
      expect(byAddr.map((t) => t.id)).toEqual([trunk.body.id]);
      expect(byAddr[0].ha1Md5).toMatch(/^[0-9a-f]{32}$/);
      expect(await app.store.trunks.trunksForAddress('203.0.113.1')).toEqual([]);

      const calls = await call('GET', '/v1/calls', k);
      expect(calls.status).toBe(200);
      expect(calls.body).toEqual({ items: [], nextCursor: null });

      const log = await call('GET', '/v1/audit-log', k);
      expect(log.status).toBe(200);
      const actions = log.body.items.map((e: { action: string }) => e.action).reverse();
      expect(actions).toEqual(['tenant.create', 'api_key.create', 'agent.create', 'agent.update', 'agent.deploy', 'agent.deploy', 'phone_number.create', 'sip_trunk.create']);
      const deploy = log.body.items.find((e: { action: string }) => e.action === 'agent.deploy');
      expect(deploy.before.liveVersion).toBe(2);
      expect(deploy.after.liveVersion).toBe(1);
      expect(deploy.actor).toContain(key.body.id);
      expect(deploy.at).toMatch(/^\d{4}-/);
    });

    it('isolates tenants (404), and answers 401/403/400/413/422', async () => {
      const a = await call('POST', '/v1/tenants', ADMIN, { name: 'A' });
      const b = await call('POST', '/v1/tenants', ADMIN, { name: 'B' });
      const ka = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: a.body.id })).body.key;
      const kb = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: b.body.id })).body.key;
      const agent = await call('POST', '/v1/agents', ka, { name: 'a', prompt: 'p' });

      expect((await call('GET', `/v1/agents/${agent.body.id}`, kb)).status).toBe(404);
      expect((await call('PATCH', `/v1/agents/${agent.body.id}`, kb, { name: 'x' })).status).toBe(404);
      expect((await call('POST', '/v1/phone-numbers', kb, { number: '+14155550111', agentId: agent.body.id })).status).toBe(404);
      expect((await call('GET', '/v1/agents', kb)).body.items).toEqual([]);
      expect((await call('POST', '/v1/agents', kb, { name: 'x', prompt: 'p', tenantId: a.body.id })).status).toBe(404);

      const none = await call('GET', `/v1/agents/${agent.body.id}`, null);
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe('unauthorized');
      expect((await call('GET', '/v1/agents', 'not-a-key')).status).toBe(401);

      const readOnly = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: a.body.id, scopes: ['agents:read'] })).body.key;
      const forbidden = await call('PATCH', `/v1/agents/${agent.body.id}`, readOnly, { name: 'x' });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.error.message).toContain('agents:write');
      expect((await call('POST', '/v1/tenants', ka, { name: 'nope' })).status).toBe(403);

      const malformed = await call('POST', '/v1/agents', ka, undefined, '{"name": "x", ');
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.code).toBe('invalid_json');

      const missing = await call('POST', '/v1/agents', ka, { name: 'x' });
      expect(missing.status).toBe(422);
      expect(missing.body.error.message).toContain('prompt');
      const wrongType = await call('POST', '/v1/agents', ka, { name: 'x', prompt: 'p', llm: { temperature: 'hot' } });
      expect(wrongType.status).toBe(422);
      expect(wrongType.body.error.message).toContain('llm.temperature');
      const badNumber = await call('POST', '/v1/phone-numbers', ka, { number: '555-0100', agentId: agent.body.id });
      expect(badNumber.status).toBe(422);
      expect(badNumber.body.error.message).toContain('number');
      const badCidr = await call('POST', '/v1/sip-trunks', ka, { name: 't', allowedCidrs: ['10.0.0.0/33'] });
      expect(badCidr.status).toBe(422);
      expect(badCidr.body.error.message).toContain('allowedCidrs[0]');
      const badVersion = await call('POST', `/v1/agents/${agent.body.id}/deploy`, ka, { version: 9 });
      expect(badVersion.status).toBe(422);

      const huge = await call('POST', '/v1/agents', ka, undefined, JSON.stringify({ name: 'x', prompt: 'p'.repeat(400 * 1024) }));
      expect(huge.status).toBe(413);
    });

    it('pages lists with a cursor', async () => {
      const t = await call('POST', '/v1/tenants', ADMIN, { name: 'Pager' });
      const k = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: t.body.id })).body.key;
      for (let i = 0; i < 5; i++) await call('POST', '/v1/agents', k, { name: `a${i}`, prompt: 'p' });
      const first = await call('GET', '/v1/agents?limit=2', k);
      expect(first.body.items.length).toBe(2);
      const second = await call('GET', `/v1/agents?limit=2&cursor=${first.body.nextCursor}`, k);
      const third = await call('GET', `/v1/agents?limit=2&cursor=${second.body.nextCursor}`, k);
      const names = [...first.body.items, ...second.body.items, ...third.body.items].map((a: { name: string }) => a.name);
      expect(names).toEqual(['a4', 'a3', 'a2', 'a1', 'a0']);
      expect(third.body.nextCursor).toBeNull();
      expect((await call('GET', '/v1/agents?cursor=garbage', k)).status).toBe(422);
      expect((await call('GET', '/v1/agents?limit=0', k)).status).toBe(400);
    });

    it('rate-limits a key with 429', async () => {
      const t = await call('POST', '/v1/tenants', ADMIN, { name: 'Busy' });
      const k = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: t.body.id })).body.key;
      const statuses = await Promise.all(Array.from({ length: 120 }, () => call('GET', '/v1/agents', k).then((r) => r.status)));
      expect(statuses).toContain(429);
      expect(statuses).toContain(200);
    });

    it('serves an OpenAPI document that lists every route', async () => {
      const doc = await call('GET', '/v1/openapi.json', null);
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toMatch(/^3\./);
      // The routes are read from the router itself: with AYBIZA_TEST_WORKERS > 1 the routers are
      // in the workers, so an app with WORKERS=1 is asked (it serves the same document).
      const one = testWorkers() === '1' ? { app, base } : await open({ WORKERS: '1' });
      try {
        const oneDoc = one.base === base ? doc.body : await (await fetch(`${one.base}/v1/openapi.json`)).json();
        expect(oneDoc.paths).toEqual(doc.body.paths);
        const routes = one.app.server.router.routes().filter((r) => r.pattern.startsWith('/v1/'));
        expect(routes.length).toBeGreaterThan(15);
        for (const r of routes) {
          const path = r.pattern.replace(/:(\w+)/g, '{$1}');
          expect(doc.body.paths[path]?.[r.method.toLowerCase()], `${r.method} ${path}`).toBeDefined();
        }
        // Campaign contacts are accepted as CSV as well as JSON, and the document says so.
        const contacts = doc.body.paths['/v1/campaigns/{id}/contacts'].post.requestBody.content;
        expect(Object.keys(contacts).sort()).toEqual(['application/json', 'text/csv']);
        expect(contacts['text/csv'].schema).toMatchObject({ type: 'string' });
      } finally {
        if (one.app !== app) await one.app.server.shutdown();
      }
    });
  });
}
