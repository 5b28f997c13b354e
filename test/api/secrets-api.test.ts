// Secrets never leave the server (issue 13, item 7): a tool's authHeader is
// masked in every API answer and audit entry, a masked value sent back keeps
// the stored secret, the database holds only ciphertext, and the tool still
// receives the real header during a call. Trunk passwords are never echoed.
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

const ADMIN = 'admin-key-secrets-test';
const HEADER = 'Bearer tool-secret-abcd1234';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('tool secrets through the API and a call', () => {
  let t: TestApp;
  let toolServer: http.Server;
  let toolUrl: string;
  const received: Array<string | undefined> = [];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(t.base + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : null };
  };
  const tool = (authHeader?: string) => ({
    name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { request: { type: 'string' } } },
    url: toolUrl, timeoutMs: 2000, ...(authHeader !== undefined ? { authHeader } : {}),
  });
  const dbText = async () =>
    JSON.stringify((await t.app.store.db.pool.query('select config from agent_versions')).rows) +
    JSON.stringify((await t.app.store.db.pool.query('select before, after from audit_log')).rows);

  beforeAll(async () => {
    toolServer = http.createServer((req, res) => {
      received.push(req.headers.authorization);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"shipped"}'));
    });
    await new Promise<void>((r) => toolServer.listen(0, '127.0.0.1', r));
    toolUrl = `http://127.0.0.1:${(toolServer.address() as { port: number }).port}/orders`;
    t = await startTestApp({
      ADMIN_API_KEY: ADMIN,
      AYBIZA_ENCRYPTION_KEY: crypto.randomBytes(32).toString('base64'),
      TOOLS_ALLOW_PRIVATE_NETWORKS: 'true',
      EMULATOR_PHRASES: 'Please lookup_order 42 for me.|Okay goodbye.',
    });
  });
  afterAll(async () => {
    await t?.stop();
    toolServer?.close();
  });

  it('masks the header in GET, versions and the audit log; a masked PATCH keeps it; the DB holds no plaintext', async () => {
    const created = await call('PATCH', `/v1/agents/${t.agentId}`, { tools: [tool(HEADER)] });
    expect(created.status).toBe(200);
    expect(created.body.tools[0].authHeader).toBe('****1234');
    expect(created.text).not.toContain('tool-secret');

    const got = await call('GET', `/v1/agents/${t.agentId}`);
    expect(got.body.tools[0].authHeader).toBe('****1234');
    const versions = await call('GET', `/v1/agents/${t.agentId}/versions`);
    expect(versions.body.items[0].config.tools[0].authHeader).toBe('****1234');
    const list = await call('GET', '/v1/agents');
    const audit = await call('GET', '/v1/audit-log');
    for (const r of [got, versions, list, audit]) expect(r.text).not.toContain('tool-secret');
    expect(audit.body.items.find((e: { action: string }) => e.action === 'agent.update').after.tools[0].authHeader).toBe('****1234');
    expect(await dbText()).not.toContain('tool-secret');

    // The GET answer sent back with one change: the stored secret stays.
    const edited = { ...got.body.tools[0], timeoutMs: 3000 };
    const kept = await call('PATCH', `/v1/agents/${t.agentId}`, { tools: [edited] });
    expect(kept.status).toBe(200);
    expect(kept.body.tools[0]).toMatchObject({ timeoutMs: 3000, authHeader: '****1234' });
    await call('POST', `/v1/agents/${t.agentId}/deploy`, { version: kept.body.version });
    expect((await t.app.store.resolver.resolveNumber(t.number))!.config.tools![0].authHeader).toBe(HEADER);

    // A mask that is not the stored secret's: refused, never stored as the header.
    const wrong = await call('PATCH', `/v1/agents/${t.agentId}`, { tools: [{ ...edited, authHeader: '****9999' }] });
    expect(wrong.status).toBe(422);
    expect(wrong.body.error).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('tools[0].authHeader') });
    const fresh = await call('POST', '/v1/agents', { tenantId: t.tenantId, name: 'copy', prompt: 'p', tools: [edited] });
    expect(fresh.status).toBe(422);
  });

  it('the tool receives the real header during a call', async () => {
    // Make the masked-PATCH version live (the previous test deployed it).
    expect((await t.app.store.resolver.resolveNumber(t.number))!.config.tools![0].authHeader).toBe(HEADER);
    received.length = 0;
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await sleep(1500); // the greeting
    c.speak(synthesize('please look up my order forty two'));
    const t0 = Date.now();
    while (received.length === 0 && Date.now() - t0 < 20_000) await sleep(20);
    await c.hangup();
    expect(received).toEqual([HEADER]);
  });

  it('never echoes a trunk password or its digest hashes', async () => {
    const trunk = await call('POST', '/v1/sip-trunks', { tenantId: t.tenantId, name: 'carrier', allowedCidrs: ['192.0.2.0/24'], username: 'acme-secrets', password: 'trunk-pass-5678' });
    expect(trunk.status).toBe(201);
    const texts = [trunk.text, (await call('GET', `/v1/sip-trunks/${trunk.body.id}`)).text, (await call('GET', '/v1/sip-trunks')).text, (await call('GET', '/v1/audit-log')).text];
    const ha1 = crypto.createHash('md5').update('acme-secrets:aybiza:trunk-pass-5678').digest('hex');
    for (const text of texts) {
      expect(text).not.toContain('trunk-pass');
      expect(text).not.toContain(ha1);
      expect(text).not.toMatch(/ha1/i);
    }
  });
});
