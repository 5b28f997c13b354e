// The campaign API over HTTP (embedded database): validation, contacts as JSON
// and CSV, tenancy, scopes, the lifecycle and the counts. The dialling itself
// is campaign-dialer.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { redisPrefix } from '../helpers/databases.js';
import { tempDir } from '../helpers/spawn-server.js';

const ADMIN = 'admin-key-for-campaign-tests';

describe('campaign API', () => {
  let app: App;
  let base: string;
  let key: string;
  let readOnly: string;
  let otherKey: string;
  let agentId: string;

  const call = async (method: string, path: string, k: string | null, body?: unknown, opts: { raw?: string; type?: string } = {}) => {
    const res = await fetch(base + path, {
      method,
      headers: { ...(k ? { authorization: `Bearer ${k}` } : {}), 'content-type': opts.type ?? 'application/json' },
      body: opts.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const valid = () => ({
    agentId, from: '+14155550100', via: 'twilio', concurrency: 5, callsPerSecond: 2,
    window: { timezone: 'America/New_York', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '20:00' },
    retry: { maxAttempts: 3, backoffS: 600, on: ['busy', 'no-answer', 'failed'] },
    amd: 'detect', voicemail: { message: 'Hello from the clinic, please call us back.' },
  });

  beforeAll(async () => {
    const config = loadConfig({ DATA_DIR: tempDir('campaign-api-'), PORT: '0', HOST: '127.0.0.1', ADMIN_API_KEY: ADMIN, API_RATE_LIMIT: '1000', SIP_PORT: '0', LOG_LEVEL: 'warn' });
    app = await createApp(config, { redisPrefix: redisPrefix(), seed: false });
    base = `http://127.0.0.1:${await app.server.listen()}`;
    const t = await call('POST', '/v1/tenants', ADMIN, { name: 'Clinic' });
    key = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: t.body.id, scopes: ['agents:write', 'agents:read', 'calls:read', 'calls:write'] })).body.key;
    readOnly = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: t.body.id, scopes: ['calls:read'] })).body.key;
    const other = await call('POST', '/v1/tenants', ADMIN, { name: 'Other' });
    otherKey = (await call('POST', '/v1/api-keys', ADMIN, { tenantId: other.body.id, scopes: ['calls:read', 'calls:write'] })).body.key;
    agentId = (await call('POST', '/v1/agents', key, { name: 'Reminder', prompt: 'Remind {{name}} of {{when}}.' })).body.id;
  });
  afterAll(async () => {
    await app?.server.shutdown();
  });

  it('creates a campaign (draft), adds JSON and CSV contacts without duplicates, and counts them', async () => {
    const c = await call('POST', '/v1/campaigns', key, valid());
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ id: expect.stringMatching(/^cmp_/), status: 'draft', concurrency: 5, callsPerSecond: 2, amd: 'detect', counts: { total: 0 } });
    const id = c.body.id;

    const json = await call('POST', `/v1/campaigns/${id}/contacts`, key, [
      { to: '+14155551001', variables: { name: 'Ada', when: 'Monday' } },
      { to: '+14155551002' },
      { to: '+14155551001' },
    ]);
    expect(json).toEqual({ status: 200, body: { added: 2, duplicates: 1, total: 2 } });

    const csv = '\ufeffTo,name,when\r\n+14155551003,"Lovelace, Ada","Tuesday ""early"""\r\n+14155551002,Bob,Wed\r\n\r\n+14155551004,"multi\nline",Thu\n';
    const up = await call('POST', `/v1/campaigns/${id}/contacts`, key, undefined, { raw: csv, type: 'text/csv; charset=utf-8' });
    expect(up).toEqual({ status: 200, body: { added: 2, duplicates: 1, total: 4 } });
    const vars = (await app.store.db.pool.query('select to_number, variables from campaign_contacts where campaign_id = $1 order by to_number', [id])).rows;
    expect(vars.find((r) => r.to_number === '+14155551003')!.variables).toEqual({ name: 'Lovelace, Ada', when: 'Tuesday "early"' });
    expect(vars.find((r) => r.to_number === '+14155551004')!.variables).toEqual({ name: 'multi\nline', when: 'Thu' });

    const got = await call('GET', `/v1/campaigns/${id}`, readOnly);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      id, status: 'draft',
      counts: { total: 4, pending: 4, in_progress: 0, completed: 0, busy: 0, no_answer: 0, failed: 0, skipped_dnc: 0 },
    });
    const list = await call('GET', '/v1/campaigns?limit=10', readOnly);
    expect(list.body.items.map((x: { id: string }) => x.id)).toContain(id);
    expect(list.body.items.find((x: { id: string }) => x.id === id).counts.total).toBe(4);
  });

  it('refuses bad settings with 422 naming the field', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ window: { ...valid().window, timezone: 'Mars/Olympus_Mons' } }, /window\.timezone/],
      [{ window: { ...valid().window, start: '25:00' } }, /window\.start/],
      [{ window: { ...valid().window, end: '09:00' } }, /window\.end: must differ/],
      [{ window: { ...valid().window, days: ['funday'] } }, /window\.days\[0\]/],
      [{ concurrency: 0 }, /concurrency/],
      [{ concurrency: 5000 }, /concurrency/],
      [{ callsPerSecond: 1000 }, /callsPerSecond/],
      [{ retry: { maxAttempts: 50, backoffS: 1 } }, /retry\.maxAttempts/],
      [{ retry: { maxAttempts: 2, backoffS: 1, on: ['completed'] } }, /retry\.on\[0\]/],
      [{ from: '4155550100' }, /from/],
      [{ via: 'sip' }, /trunkId: is required/],
      [{ extra: 1 }, /extra: is not a known field/],
    ];
    for (const [change, field] of cases) {
      const r = await call('POST', '/v1/campaigns', key, { ...valid(), ...change });
      expect(r.status, JSON.stringify(change)).toBe(422);
      expect(r.body.error.message).toMatch(field);
    }
    expect((await call('POST', '/v1/campaigns', key, { ...valid(), agentId: 'agt_nope' })).status).toBe(404);
  });

  it('refuses bad contacts: numbers, variables, CSV defects (with the line), size', async () => {
    const id = (await call('POST', '/v1/campaigns', key, valid())).body.id;
    const post = (body: unknown, raw?: string) => call('POST', `/v1/campaigns/${id}/contacts`, key, body, raw === undefined ? {} : { raw, type: 'text/csv' });
    expect((await post([{ to: '555-1234' }])).body.error.message).toMatch(/\[0\]\.to/);
    expect((await post([{ to: '+14155551001', variables: { '1x': 'a' } }])).status).toBe(422);
    expect((await post([{ to: '+14155551001', variables: { name: { nested: true } } }])).body.error.message).toMatch(/variables\.name: must be a string/);
    expect((await post({ to: '+14155551001' })).status).toBe(400);
    const csvCases: [string, RegExp][] = [
      ['name\nAda\n', /no "to" column/],
      ['to,name\n+14155551001,"Ada\n', /line 2: a quoted field is not closed/],
      ['to,name\n+14155551001,A"da\n', /line 2: a quote inside an unquoted field/],
      ['to,name\n+14155551001\n', /line 2: 1 fields where the header has 2/],
      ['to,name\n+14155551001,Ada\nnot-a-number,Bob\n', /line 3: "to" must be an E\.164/],
      ['to,na-me\n+14155551001,Ada\n', /column "na-me"/],
      ['to,name,name\n+14155551001,a,b\n', /appears twice/],
      ['', /no header row/],
    ];
    for (const [csv, message] of csvCases) {
      const r = await post(undefined, csv);
      expect(r.status, csv).toBe(422);
      expect(r.body.error.code).toBe('invalid_csv');
      expect(r.body.error.message).toMatch(message);
    }
    // 10,001 rows fit the API's 256 KiB body limit: refused by the row limit; a bigger body by the body limit.
    const rows = 'to\n' + Array.from({ length: 10_001 }, (_, i) => `+1415${String(5000000 + i)}`).join('\n');
    expect((await post(undefined, rows)).body.error.message).toMatch(/more than 10000 rows/);
    expect((await post(undefined, rows + ',x'.repeat(100_000))).status).toBe(413);
    expect((await call('GET', `/v1/campaigns/${id}`, key)).body.counts.total).toBe(0);
  });

  it('keeps tenants apart, needs calls:write to change, and walks start/pause/cancel', async () => {
    const id = (await call('POST', '/v1/campaigns', key, valid())).body.id;
    expect((await call('GET', `/v1/campaigns/${id}`, otherKey)).status).toBe(404);
    expect((await call('POST', `/v1/campaigns/${id}/start`, otherKey)).status).toBe(404);
    expect((await call('POST', `/v1/campaigns/${id}/contacts`, otherKey, [{ to: '+14155551001' }])).status).toBe(404);
    expect((await call('GET', '/v1/campaigns', otherKey)).body.items).toEqual([]);
    expect((await call('POST', `/v1/campaigns/${id}/start`, readOnly)).status).toBe(403);
    expect((await call('POST', '/v1/campaigns', readOnly, valid())).status).toBe(403);

    expect((await call('POST', `/v1/campaigns/${id}/pause`, key)).status).toBe(409); // a draft is not running
    expect((await call('POST', `/v1/campaigns/${id}/start`, key)).body.status).toBe('running');
    expect((await call('POST', `/v1/campaigns/${id}/start`, key)).body.status).toBe('running'); // again: no-op
    expect((await call('POST', `/v1/campaigns/${id}/pause`, key)).body.status).toBe('paused');
    expect((await call('POST', `/v1/campaigns/${id}/cancel`, key)).body.status).toBe('canceled');
    expect((await call('POST', `/v1/campaigns/${id}/start`, key)).status).toBe(409);
    expect((await call('POST', `/v1/campaigns/${id}/contacts`, key, [{ to: '+14155551001' }])).status).toBe(409);
    const audit = await call('GET', '/v1/audit-log?limit=50', ADMIN);
    const actions = audit.body.items.filter((e: { objectId: string }) => e.objectId === id).map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['campaign.create', 'campaign.start', 'campaign.pause', 'campaign.cancel']));
  });
});
