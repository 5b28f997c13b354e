// Agent create/update refuse what would make the server a proxy or a dialler:
// tool URLs on refused literal addresses (422 naming the field) and malformed
// transfer targets. TOOLS_ALLOW_PRIVATE_NETWORKS lifts loopback/private only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { startApp } from '../helpers/app.js';
import { freshDatabase, realPg, redisPrefix } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';

const ADMIN = 'admin-key-for-tests';

async function start(env: Record<string, string>): Promise<{ app: App; base: string }> {
  const db: Record<string, string> = realPg ? { DATABASE_URL: await freshDatabase() } : {};
  // WORKERS is AYBIZA_TEST_WORKERS: with more than one, the workers serve the API.
  const app = await startApp({ DATA_DIR: tempDir('guards-'), ...db, PORT: '0', HOST: '127.0.0.1', ADMIN_API_KEY: ADMIN, SIP_PORT: '0', LOG_LEVEL: 'warn', ...env }, { redisPrefix: redisPrefix(), seed: false });
  return { app, base: `http://127.0.0.1:${await app.server.listen()}` };
}

const tool = (url: string) => ({ name: 'lookup', description: 'Look something up', parameters: { type: 'object' }, url });

describe('agent create/update guards', () => {
  let strict: { app: App; base: string };
  let dev: { app: App; base: string };
  let tenantId: string;
  const call = async (base: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  beforeAll(async () => {
    strict = await start({});
    dev = await start({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true' });
  });
  afterAll(async () => {
    await strict?.app.server.shutdown();
    await dev?.app.server.shutdown();
  });

  it('refuses tool URLs on loopback, private, metadata and other refused literals at POST and PATCH, naming the field', async () => {
    tenantId = (await call(strict.base, 'POST', '/v1/tenants', { name: 'Acme' })).body.id;
    const create = (url: string) => call(strict.base, 'POST', '/v1/agents', { tenantId, name: 'A', prompt: 'p', tools: [tool('https://api.example.com/x'), tool(url)] });
    const cases: [string, string][] = [
      ['http://127.0.0.1:8080/x', 'tools[1].url: refers to a loopback address'],
      ['http://2130706433/', 'tools[1].url: refers to a loopback address'],
      ['http://0x7f000001/', 'tools[1].url: refers to a loopback address'],
      ['http://[::ffff:127.0.0.1]/', 'tools[1].url: refers to a loopback address'],
      ['http://localhost./', 'tools[1].url: refers to a loopback address'],
      ['http://192.168.0.10/', 'tools[1].url: refers to a private network address'],
      ['http://169.254.169.254/latest/meta-data/', 'tools[1].url: refers to a cloud metadata address'],
      ['https://user:pass@api.example.com/', 'tools[1].url: must not carry credentials (use authHeader)'],
    ];
    for (const [url, message] of cases) {
      const r = await create(url);
      expect(r.status, url).toBe(422);
      expect(r.body.error, url).toMatchObject({ code: 'invalid_field', message });
    }
    const ok = await create('https://api.example.com/y');
    expect(ok.status).toBe(201);
    const patched = await call(strict.base, 'PATCH', `/v1/agents/${ok.body.id}`, { tools: [tool('http://10.0.0.1/')] });
    expect(patched.status).toBe(422);
    expect(patched.body.error.message).toBe('tools[0].url: refers to a private network address');
    const metrics = await (await fetch(`${strict.base}/metrics`)).text();
    expect(metrics).toMatch(/aybiza_bad_input_total\{source="api",reason="tool_url_refused"\} (9|[1-9]\d+)/);
  });

  it('with TOOLS_ALLOW_PRIVATE_NETWORKS accepts loopback/private tools but never the metadata address', async () => {
    const t = (await call(dev.base, 'POST', '/v1/tenants', { name: 'Dev' })).body.id;
    const create = (url: string) => call(dev.base, 'POST', '/v1/agents', { tenantId: t, name: 'A', prompt: 'p', tools: [tool(url)] });
    expect((await create('http://127.0.0.1:8080/x')).status).toBe(201);
    expect((await create('http://10.1.2.3/x')).status).toBe(201);
    const meta = await create('http://169.254.169.254/');
    expect(meta.status).toBe(422);
    expect(meta.body.error.message).toBe('tools[0].url: refers to a cloud metadata address');
    expect((await create('http://[fe80::1]/')).body.error.message).toBe('tools[0].url: refers to a link-local address');
  });

  it('validates transfer.targets at create and update', async () => {
    const ok = await call(strict.base, 'POST', '/v1/agents', { tenantId, name: 'T', prompt: 'p', transfer: { targets: ['+14155550123', '+1415555*', 'sip:*@pbx.example.com'] } });
    expect(ok.status).toBe(201);
    expect(ok.body.transfer).toEqual({ targets: ['+14155550123', '+1415555*', 'sip:*@pbx.example.com'] });
    for (const bad of ['*', '+*', '4155550123', 'sip:desk@*', 'sip:desk@pbx.example.com;transport=tcp']) {
      const r = await call(strict.base, 'PATCH', `/v1/agents/${ok.body.id}`, { transfer: { targets: [bad] } });
      expect(r.status, bad).toBe(422);
      expect(r.body.error.message, bad).toMatch(/^transfer\.targets\[0\]|^\/?transfer\/targets\/0|transfer.*targets/);
    }
    const patched = await call(strict.base, 'PATCH', `/v1/agents/${ok.body.id}`, { transfer: { targets: ['sip:desk@pbx.example.com'] } });
    expect(patched.status).toBe(200);
    expect(patched.body.transfer).toEqual({ targets: ['sip:desk@pbx.example.com'] });
  });
});
