// A campaign end to end on one server as it runs in production (real
// PostgreSQL): the campaign and DNC APIs over HTTP, the server's own
// campaign runner, the dialer, the official `twilio` library against the
// Twilio REST emulator, whose callees answer and converse through a Media
// Stream (or are busy: numbers ending 0486). The queue's rules across nodes
// are campaign-dialer.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { freshDatabase, realPg } from '../helpers/databases.js';

describe.skipIf(!realPg)('a campaign over Twilio (REST emulator, real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(t.base + path, {
      method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  beforeAll(async () => {
    t = await startTestApp(
      { DATABASE_URL: await freshDatabase(), EMULATOR_PHRASES: 'Hello?|Yes, speaking.|Thanks, goodbye.' },
      { greeting: 'Hello {{name}}, this is the clinic.', prompt: 'You remind {{name}} of an appointment.' },
    );
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'campaigns', ['calls:write', 'calls:read'])).key;
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('dials each contact through the library, retries the busy one, skips the DNC one, completes', async () => {
    const c = await api('POST', '/v1/campaigns', {
      agentId: t.agentId, from: '+14155550100', via: 'twilio', concurrency: 2, callsPerSecond: 5,
      window: { timezone: 'America/Los_Angeles', days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '00:00', end: '24:00' },
      retry: { maxAttempts: 2, backoffS: 1, on: ['busy'] },
    });
    expect(c.status).toBe(201);
    const id = c.body.id as string;
    expect((await api('POST', '/v1/dnc', { numbers: ['+14155557003'] })).status).toBe(201);
    const csv = 'to,name\n+14155557001,Ada\n+14155557002,Grace\n+14155557003,Dee\n+14155550486,Busy\n';
    const up = await fetch(`${t.base}/v1/campaigns/${id}/contacts`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' }, body: csv });
    expect(await up.json()).toEqual({ added: 4, duplicates: 0, total: 4 });
    expect((await api('POST', `/v1/campaigns/${id}/start`)).body.status).toBe('running');

    let done = (await api('GET', `/v1/campaigns/${id}`)).body;
    for (const until = Date.now() + 60_000; done.status !== 'completed' && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 250));
      done = (await api('GET', `/v1/campaigns/${id}`)).body;
    }
    expect(done.counts).toEqual({ total: 4, pending: 0, in_progress: 0, completed: 2, busy: 1, no_answer: 0, failed: 0, skipped_dnc: 1 });

    // The calls: outbound Twilio calls of this campaign, one per dial; the busy number twice, the DNC number never.
    const calls = (
      await t.app.store.db.pool.query(`select to_number, status, transport, external_id from calls where campaign_id = $1 order by started_at`, [id])
    ).rows as { to_number: string; status: string; transport: string; external_id: string }[];
    const byNumber = (n: string) => calls.filter((x) => x.to_number === n).map((x) => x.status);
    expect(byNumber('+14155557001')).toEqual(['completed']);
    expect(byNumber('+14155557002')).toEqual(['completed']);
    expect(byNumber('+14155550486')).toEqual(['busy', 'busy']);
    expect(byNumber('+14155557003')).toEqual([]);
    expect(calls.every((x) => x.transport === 'twilio' && /^CA[0-9a-f]{32}$/.test(x.external_id))).toBe(true);
    // The answered ones conversed: the agent greeted them by their CSV variable.
    const answered = calls.find((x) => x.to_number === '+14155557001')!;
    const detail = (await api('GET', `/v1/calls/${(await t.app.store.calls.findCall('twilio', answered.external_id))!.id}`)).body;
    expect(detail.transcript.some((s: { speaker: string; text: string }) => s.speaker === 'agent' && s.text.includes('Hello Ada'))).toBe(true);
    expect(detail.transcript.some((s: { speaker: string }) => s.speaker === 'caller')).toBe(true);
  }, 90_000);
});
