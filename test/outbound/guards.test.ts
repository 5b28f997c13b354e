// The outbound guards and their API on real PostgreSQL: allowed countries
// (E.164 → ISO country, unknown refused), do-not-call list, the daily cap
// per tenant (counted in the database), each refusal a 422 with its code,
// nothing dialled, counted and audited; the DNC endpoints; tenant outbound
// settings; variables and scopes. Plus the prefix table and the variable
// filling as units.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { freshDatabase } from '../helpers/databases.js';
import { outboundRefused } from '../../src/metrics/index.js';
import { countryOf, KNOWN_COUNTRIES } from '../../src/outbound/countries.js';
import { applyVariables, variablesProblem } from '../../src/outbound/variables.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { parseTwiml } from '../../src/providers/emulators/twiml.js';

describe('countryOf', () => {
  it('names the country of numbers in the codes it claims, null otherwise', () => {
    expect(countryOf('+14155550123')).toBe('US');
    expect(countryOf('+14165550123')).toBe('CA');
    expect(countryOf('+18765550123')).toBe('JM'); // NANP, but not the US: the classic toll-fraud route
    expect(countryOf('+17875550123')).toBe('PR');
    expect(countryOf('+19005550123')).toBeNull(); // premium rate
    expect(countryOf('+12115550123')).toBeNull(); // N11 is not an area code
    expect(countryOf('+11235550123')).toBeNull(); // an area code never starts with 1
    expect(countryOf('+442071234567')).toBe('GB');
    expect(countryOf('+441481123456')).toBe('GG');
    expect(countryOf('+447700900123')).toBe('JE');
    expect(countryOf('+74951234567')).toBe('RU');
    expect(countryOf('+77011234567')).toBe('KZ');
    expect(countryOf('+33123456789')).toBe('FR');
    expect(countryOf('+4930123456')).toBe('DE');
    expect(countryOf('+35312345678')).toBe('IE');
    expect(countryOf('+390669812345')).toBe('VA');
    expect(countryOf('+390212345678')).toBe('IT');
    expect(countryOf('+2125221234567')).toBeNull(); // not claimed: refused, never guessed
    expect(countryOf('+8821234567')).toBeNull(); // international networks
    expect(countryOf('4155550123')).toBeNull();
    expect(countryOf('+1415555012345678')).toBeNull();
    expect(KNOWN_COUNTRIES.has('US') && KNOWN_COUNTRIES.has('JM') && !KNOWN_COUNTRIES.has('XX')).toBe(true);
  });
});

describe('variables', () => {
  it('fills {{name}} in the prompt and greeting verbatim, once; unknown ones stay in the prompt and leave the greeting', () => {
    const c = applyVariables({ name: 'a', prompt: 'Call {{ name }} about {{what}} ({{missing}}).', greeting: 'Hi {{name}}, {{missing}} here.' }, { name: '{{what}}', what: 'a bill' });
    expect(c.prompt).toBe('Call {{what}} about a bill ({{missing}}).');
    expect(c.greeting).toBe('Hi {{what}}, here.');
    expect(variablesProblem({ ok_1: 'x' })).toBeNull();
    expect(variablesProblem({ '1bad': 'x' })).toMatch(/variable name/);
    expect(variablesProblem({ a: 'x'.repeat(1001) })).toMatch(/at most 1000/);
    expect(variablesProblem({ a: 5 })).toMatch(/string/);
    expect(variablesProblem(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`v${i}`, 'x'])))).toMatch(/at most 50/);
  });
});

describe('TwiML reader of the Twilio REST emulator', () => {
  it('reads the verbs we send and refuses what is not well-formed', () => {
    const v = parseTwiml('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://x/twilio/media"><Parameter name="token" value="a&amp;b"/></Stream></Connect><Dial callerId="+1415" timeout="30"><Number>+14155550199</Number></Dial><Hangup/></Response>');
    expect(v.map((x) => x.verb)).toEqual(['Connect', 'Dial', 'Hangup']);
    expect(v[0]!.stream).toEqual({ url: 'wss://x/twilio/media', parameters: { token: 'a&b' } });
    expect(v[1]).toMatchObject({ target: '+14155550199', attrs: { callerId: '+1415', timeout: '30' } });
    for (const bad of ['', '<Response>', '<Response></Dial>', '<Response/><Response/>', 'x<Response/>', '<Response><Say>a<b</Say></Response>', '<a'.repeat(600)]) {
      expect(() => parseTwiml(bad), bad.slice(0, 40)).toThrow();
    }
  });
});

describe('outbound guards and API (real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  let adminKey: string;

  const api = async (method: string, path: string, body?: unknown, bearer = key) => {
    const res = await fetch(t.base + path, {
      method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const dial = (to: string, extra: Record<string, unknown> = {}) => api('POST', '/v1/calls', { agentId: t.agentId, to, from: '+14155550100', via: 'twilio', ...extra });
  const refused = async (reason: string) => (await outboundRefused.get()).values.find((v) => v.labels.kind === 'dial' && v.labels.reason === reason)?.value ?? 0;
  const placed = () => t.app.providers.emulators!.twilioRest.stats.created;

  beforeAll(async () => {
    // WORKERS=1: the tests count the calls the REST emulator was asked to place and this thread's
    // refusal metric; with AYBIZA_TEST_WORKERS > 1 each worker has its own emulator.
    t = await startTestApp({ DATABASE_URL: await freshDatabase(), ADMIN_API_KEY: 'ayb_test_admin_key_for_outbound_guards', WORKERS: '1' });
    adminKey = 'ayb_test_admin_key_for_outbound_guards';
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'k', ['calls:write', 'calls:read', 'audit:read'])).key;
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('refuses every dial while the tenant allows no country (the default), with 422 destination_not_allowed', async () => {
    const before = [placed(), await refused('destination_not_allowed')];
    const r = await dial('+14155550123');
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('destination_not_allowed');
    expect([placed(), await refused('destination_not_allowed')]).toEqual([before[0], before[1]! + 1]);
    expect((await api('GET', '/v1/calls?direction=outbound')).body.items).toEqual([]);
  });

  it('tenant outbound settings: at creation and by PATCH (platform admin only), unknown countries refused', async () => {
    const created = await api('POST', '/v1/tenants', { name: 'T2', outbound: { allowedCountries: ['CA'], dailyCap: 5 } }, adminKey);
    expect(created.status).toBe(201);
    expect(created.body.outbound).toEqual({ allowedCountries: ['CA'], dailyCap: 5 });
    expect((await api('POST', '/v1/tenants', { name: 'T3' }, adminKey)).body.outbound).toEqual({ allowedCountries: [], dailyCap: 1000 });
    expect((await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { allowedCountries: ['US'] } })).status).toBe(403);
    expect((await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { allowedCountries: ['XX'] } }, adminKey)).status).toBe(422);
    expect((await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { allowedCountries: ['us'] } }, adminKey)).status).toBe(422);
    expect((await api('PATCH', '/v1/tenants/ten_nope', { outbound: { dailyCap: 1 } }, adminKey)).status).toBe(404);
    const p = await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { allowedCountries: ['US', 'CA'] } }, adminKey);
    expect(p.status).toBe(200);
    expect(p.body.outbound).toEqual({ allowedCountries: ['US', 'CA'], dailyCap: 1000 });
    const audit = (await api('GET', '/v1/audit-log')).body.items;
    expect(audit.find((e: { action: string }) => e.action === 'tenant.update').after.outbound.allowedCountries).toEqual(['US', 'CA']);
  });

  it('refuses a country outside the list, and an unknown one, without dialling', async () => {
    const n = placed();
    for (const to of ['+442071234567', '+18765550123', '+19005550123']) {
      const r = await dial(to);
      expect(r.status, to).toBe(422);
      expect(r.body.error.code).toBe('destination_not_allowed');
    }
    expect(placed()).toBe(n);
    const audit = (await api('GET', '/v1/audit-log')).body.items;
    expect(audit.filter((e: { action: string }) => e.action === 'outbound.dial_refused').length).toBeGreaterThanOrEqual(4);
  });

  it('DNC list: add, list, refuse with 422 dnc, delete, tenant-scoped', async () => {
    const add = await api('POST', '/v1/dnc', { numbers: ['+14155550111', '+14155550112', '+14155550111'] });
    expect(add.status).toBe(201);
    expect(add.body).toEqual({ added: 2, numbers: ['+14155550111', '+14155550112'] });
    expect((await api('POST', '/v1/dnc', { numbers: ['+14155550111'] })).body.added).toBe(0);
    expect((await api('POST', '/v1/dnc', { numbers: ['4155550111'] })).status).toBe(422);
    expect((await api('POST', '/v1/dnc', { numbers: [] })).status).toBe(422);
    const list = await api('GET', '/v1/dnc?limit=1');
    expect(list.body.items).toHaveLength(1);
    const rest = await api('GET', `/v1/dnc?limit=5&cursor=${list.body.nextCursor}`);
    expect([...list.body.items, ...rest.body.items].map((e: { number: string }) => e.number).sort()).toEqual(['+14155550111', '+14155550112']);

    const n = placed();
    const before = await refused('dnc');
    const r = await dial('+14155550111');
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('dnc');
    expect(placed()).toBe(n);
    expect(await refused('dnc')).toBe(before + 1);
    // A transfer to a listed number is refused too.
    await expect(OutboundDialer.for(t.app.store).guards.checkTransfer(t.tenantId, '+14155550111')).rejects.toMatchObject({ code: 'dnc' });
    await expect(OutboundDialer.for(t.app.store).guards.checkTransfer(t.tenantId, '+442071234567')).rejects.toMatchObject({ code: 'destination_not_allowed' });

    // Another tenant neither sees nor removes this tenant's list.
    const other = await t.app.store.tenants.create(ADMIN, 'Other', null);
    const otherKey = (await t.app.store.tenants.createKey(ADMIN, other.id, 'o', ['calls:write', 'calls:read'])).key;
    expect((await api('GET', '/v1/dnc', undefined, otherKey)).body.items).toEqual([]);
    expect((await api('DELETE', `/v1/dnc/${encodeURIComponent('+14155550111')}`, undefined, otherKey)).status).toBe(404);

    expect((await api('DELETE', `/v1/dnc/${encodeURIComponent('+14155550111')}`)).status).toBe(204);
    expect((await api('DELETE', `/v1/dnc/${encodeURIComponent('+14155550111')}`)).status).toBe(404);
    expect((await api('DELETE', '/v1/dnc/not-a-number')).status).toBe(422);
    const audit = (await api('GET', '/v1/audit-log')).body.items.map((e: { action: string }) => e.action);
    expect(audit).toEqual(expect.arrayContaining(['dnc.add', 'dnc.remove', 'outbound.dial_refused']));
  });

  it('the daily cap: dials past it are refused with 422 daily_cap, counted in the database', async () => {
    await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { dailyCap: 2 } }, adminKey);
    const dialer = OutboundDialer.for(t.app.store);
    const used = await dialer.guards.dialsToday(t.tenantId);
    expect(used).toBe(0); // refused dials cost nothing
    const a = await dial('+14155550486');
    const b = await dial('+14155550486');
    expect([a.status, b.status]).toEqual([201, 201]);
    const n = placed();
    const c = await dial('+14155550486');
    expect(c.status).toBe(422);
    expect(c.body.error.code).toBe('daily_cap');
    expect(placed()).toBe(n);
    expect(await dialer.guards.dialsToday(t.tenantId)).toBe(2);
    await dialer.whenFinal(a.body.id, 10_000);
    await dialer.whenFinal(b.body.id, 10_000);
    await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { dailyCap: 0 } }, adminKey);
    expect((await dial('+14155550486')).body.error.code).toBe('daily_cap');
    await api('PATCH', `/v1/tenants/${t.tenantId}`, { outbound: { dailyCap: 1000 } }, adminKey);
  });

  it('validates the call body and needs calls:write', async () => {
    expect((await dial('+14155550123', { variables: { '1x': 'y' } })).status).toBe(422);
    expect((await dial('+14155550123', { variables: { x: 1 } })).status).toBe(422);
    expect((await dial('+14155550123', { metadata: { blob: 'x'.repeat(5000) } })).status).toBe(422);
    expect((await dial('+14155550123', { voicemail: { message: 'hi' } })).body.error.message).toMatch(/needs amd/);
    expect((await dial('+14155550123', { amd: 'sometimes' })).status).toBe(422);
    expect((await dial('+14155550123', { via: 'sip' })).body.error.message).toMatch(/trunkId/);
    expect((await dial('4155550123')).status).toBe(422);
    expect((await api('POST', '/v1/calls', { agentId: 'agt_nope', to: '+14155550123', from: '+14155550100', via: 'twilio' })).status).toBe(404);
    const readOnly = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'ro', ['calls:read'])).key;
    expect((await api('POST', '/v1/calls', { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'twilio' }, readOnly)).status).toBe(403);
    expect((await api('POST', '/v1/dnc', { numbers: ['+14155550113'] }, readOnly)).status).toBe(403);
    // A platform admin names the tenant.
    expect((await api('POST', '/v1/calls', { agentId: t.agentId, to: '+14155550486', from: '+14155550100', via: 'twilio' }, adminKey)).status).toBe(422);
    const asAdmin = await api('POST', '/v1/calls', { tenantId: t.tenantId, agentId: t.agentId, to: '+14155550486', from: '+14155550100', via: 'twilio' }, adminKey);
    expect(asAdmin.status).toBe(201);
    await OutboundDialer.for(t.app.store).whenFinal(asAdmin.body.id, 10_000);
  });
});
