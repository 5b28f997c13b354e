// The webhook endpoints: validation and the address policy at POST time
// (loopback/private/metadata literals refused without
// TOOLS_ALLOW_PRIVATE_NETWORKS), scopes (default keys get webhooks:read and
// webhooks:write), the secret shown once and masked everywhere else (audit
// log included), tenant isolation; then a live Twilio call against the
// emulators whose call.started and call.ended reach a receiver, verified.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { verifyWebhook, type WebhookEvent } from '../../src/webhooks/verify.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, waitFor } from '../helpers/calls.js';
import { BACKENDS, freshDatabase, realPg } from '../helpers/databases.js';
import { api } from '../helpers/api.js';

const ADMIN_KEY = 'admin-key-webhooks-test';

describe.skipIf(!realPg)('webhooks API', () => {
  let t: TestApp;
  const call = (method: string, path: string, key: string, body?: unknown) => api(t.base, method, path, key, body);
  let key: string;
  let otherKey: string;

  beforeAll(async () => {
    t = await startTestApp({ ADMIN_API_KEY: ADMIN_KEY, DATABASE_URL: await freshDatabase() });
    key = (await call('POST', '/v1/api-keys', ADMIN_KEY, { tenantId: t.tenantId })).body.key;
    const other = (await call('POST', '/v1/tenants', ADMIN_KEY, { name: 'Other' })).body.id;
    otherKey = (await call('POST', '/v1/api-keys', ADMIN_KEY, { tenantId: other })).body.key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a key made without scopes may read and write webhooks; one without them may not', async () => {
    const keys = await call('GET', '/v1/api-keys', ADMIN_KEY);
    const mine = keys.body.items.find((k: { tenantId: string }) => k.tenantId === t.tenantId);
    expect(mine.scopes).toEqual(expect.arrayContaining(['webhooks:read', 'webhooks:write']));
    const reader = (await call('POST', '/v1/api-keys', ADMIN_KEY, { tenantId: t.tenantId, scopes: ['agents:read', 'webhooks:read'] })).body.key;
    expect((await call('POST', '/v1/webhooks', reader, { url: 'https://hooks.example.com/x', events: ['call.ended'] })).status).toBe(403);
    expect((await call('GET', '/v1/webhooks', reader)).status).toBe(200);
    const none = (await call('POST', '/v1/api-keys', ADMIN_KEY, { tenantId: t.tenantId, scopes: ['agents:read'] })).body.key;
    expect((await call('GET', '/v1/webhooks', none)).status).toBe(403);
  });

  it('refuses receivers on loopback, private, link-local and metadata literals, and bad fields', async () => {
    const refused = async (url: string) => {
      const r = await call('POST', '/v1/webhooks', key, { url, events: ['call.ended'] });
      expect(r.status, url).toBe(422);
      return r.body.error.message as string;
    };
    expect(await refused('http://127.0.0.1:9/hook')).toBe('url: refers to a loopback address');
    expect(await refused('http://localhost./hook')).toBe('url: refers to a loopback address');
    expect(await refused('http://2130706433/')).toBe('url: refers to a loopback address');
    expect(await refused('http://10.1.2.3/')).toBe('url: refers to a private network address');
    expect(await refused('http://[::ffff:192.168.0.1]/')).toBe('url: refers to a private network address');
    expect(await refused('http://169.254.169.254/latest/meta-data/')).toBe('url: refers to a cloud metadata address');
    expect(await refused('http://user:pw@hooks.example.com/')).toMatch(/credentials/);
    expect(await refused('ftp://hooks.example.com/')).toMatch(/^url: must match/);
    const bad = async (b: unknown) => (await call('POST', '/v1/webhooks', key, b)).status;
    expect(await bad({ url: 'https://hooks.example.com/', events: [] })).toBe(422);
    expect(await bad({ url: 'https://hooks.example.com/', events: ['call.exploded'] })).toBe(422);
    expect(await bad({ url: 'https://hooks.example.com/', events: ['call.ended'], secret: 'short' })).toBe(422);
    expect(await bad({ url: 'https://hooks.example.com/', events: ['call.ended'], secret: 'has spaces in it, sixteen+' })).toBe(422);
    expect(await bad({ url: 'https://hooks.example.com/', events: ['call.ended'], extra: 1 })).toBe(422);
  });

  it('shows the secret once, masks it everywhere else, and keeps tenants apart', async () => {
    const created = await call('POST', '/v1/webhooks', key, { url: 'https://hooks.example.com/aybiza', events: ['call.started', 'call.ended', 'call.analyzed', 'recording.ready', 'campaign.completed', 'call.ended'] });
    expect(created.status).toBe(201);
    const { id, secret } = created.body;
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^whk_/), url: 'https://hooks.example.com/aybiza', tenantId: t.tenantId });
    expect(created.body.events).toEqual(['call.started', 'call.ended', 'call.analyzed', 'recording.ready', 'campaign.completed']);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const masked = `****${secret.slice(-4)}`;
    expect((await call('GET', `/v1/webhooks/${id}`, key)).body.secret).toBe(masked);
    const list = await call('GET', '/v1/webhooks', key);
    expect(list.body.items.map((w: { id: string; secret: string }) => [w.id, w.secret])).toEqual([[id, masked]]);
    const audit = await call('GET', '/v1/audit-log', key);
    expect(JSON.stringify(audit.body)).not.toContain(secret);
    expect(audit.body.items.find((e: { action: string }) => e.action === 'webhook.create')?.after?.secret).toBe(masked);
    // Another tenant: 404 on every route, and an empty list.
    expect((await call('GET', `/v1/webhooks/${id}`, otherKey)).status).toBe(404);
    expect((await call('GET', `/v1/webhooks/${id}/deliveries`, otherKey)).status).toBe(404);
    expect((await call('DELETE', `/v1/webhooks/${id}`, otherKey)).status).toBe(404);
    expect((await call('GET', '/v1/webhooks', otherKey)).body.items).toEqual([]);
    expect((await call('GET', `/v1/webhooks/${id}/deliveries`, key)).body).toEqual({ items: [], nextCursor: null });
    expect((await call('GET', `/v1/webhooks/${id}/deliveries?cursor=nope`, key)).status).toBe(422);
    expect((await call('DELETE', `/v1/webhooks/${id}`, key)).status).toBe(204);
    expect((await call('GET', `/v1/webhooks/${id}`, key)).status).toBe(404);
    const doc = (await (await fetch(`${t.base}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { 'x-required-access': string }>> };
    expect(doc.paths['/v1/webhooks'].post['x-required-access']).toBe('webhooks:write');
    expect(doc.paths['/v1/webhooks/{id}/deliveries'].get['x-required-access']).toBe('webhooks:read');
  });
});

for (const backend of BACKENDS) {
  const skip = backend.name.startsWith('real') && !realPg;
  describe.skipIf(skip)(`webhooks from a live call on ${backend.name}`, () => {
    let t: TestApp;
    let rx: http.Server;
    let secret = '';
    const got: { event: WebhookEvent; raw: string }[] = [];

    beforeAll(async () => {
      rx = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          try {
            got.push({ event: verifyWebhook(raw, req.headers['aybiza-signature'], secret), raw });
            res.writeHead(204).end();
          } catch {
            res.writeHead(400).end();
          }
        });
      });
      await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
      const env = await backend.env();
      // The receiver is on loopback: allowed only with the development flag, as for HTTP tools.
      t = await startTestApp({ ...env, REDIS_URL: '', ADMIN_API_KEY: ADMIN_KEY, TOOLS_ALLOW_PRIVATE_NETWORKS: 'true' });
    });
    afterAll(async () => {
      await t?.stop();
      rx?.closeAllConnections();
      rx?.close();
    });

    it('delivers call.started and call.ended of a Twilio call, signed, and lists the deliveries', async () => {
      const port = (rx.address() as { port: number }).port;
      const created = await api(t.base, 'POST', '/v1/webhooks', ADMIN_KEY, { tenantId: t.tenantId, url: `http://127.0.0.1:${port}/aybiza`, events: ['call.started', 'call.ended'] });
      expect(created.status).toBe(201);
      secret = created.body.secret;
      // Even with the flag, the metadata address stays refused.
      expect((await api(t.base, 'POST', '/v1/webhooks', ADMIN_KEY, { tenantId: t.tenantId, url: 'http://169.254.169.254/', events: ['call.ended'] })).status).toBe(422);

      const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
      await c.dial();
      await agentQuiet(c);
      await c.hangup();
      await waitFor(() => got.some((g) => g.event.type === 'call.ended'), 15_000, 'call.ended delivered');
      const rec = (await t.app.store.calls.findCall('twilio', c.callSid))!;
      expect(got.map((g) => [g.event.type, g.event.data.callId])).toEqual([['call.started', rec.id], ['call.ended', rec.id]]);
      expect(got[1].event.data).toMatchObject({ transport: 'twilio', to: t.number, status: 'completed', agentId: t.agentId });
      const deliveries = await api(t.base, 'GET', `/v1/webhooks/${created.body.id}/deliveries`, ADMIN_KEY);
      expect(deliveries.body.items.map((d: { type: string; outcome: string; httpStatus: number; deliveryStatus: string }) => [d.type, d.outcome, d.httpStatus, d.deliveryStatus]))
        .toEqual([['call.ended', 'delivered', 204, 'delivered'], ['call.started', 'delivered', 204, 'delivered']]);
    });
  });
}
