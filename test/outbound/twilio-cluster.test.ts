// Two nodes on one real PostgreSQL and Redis: node A places the Twilio call,
// Twilio (the REST emulator) opens the Media Stream and posts the status
// callbacks to node B (PUBLIC_URL is B's, as behind a load balancer). B
// rebuilds the agent and variables from the call token's row, carries the
// conversation, and records the outcome; A's onFinal hears it through
// SharedState and reads the same row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { freshDatabase, realRedis, redisPrefix } from '../helpers/databases.js';
import { waitFor } from '../helpers/calls.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import type { CallRecord } from '../../src/store/types.js';

describe('outbound Twilio call across two nodes (real PostgreSQL and Redis)', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    // WORKERS=1: the test asks each node whether it holds the media session, which lives in a
    // worker thread with AYBIZA_TEST_WORKERS > 1.
    const env = { DATABASE_URL: await freshDatabase(), REDIS_URL: realRedis ?? '', REDIS_PREFIX: redisPrefix(), EMULATOR_PHRASES: 'Hello?|Yes, this is Sam speaking.|That works for me. Thank you, goodbye.', WORKERS: '1' };
    b = await startTestApp(env);
    a = await startTestApp({ ...env, PUBLIC_URL: b.base }, { greeting: 'Hello {{name}}, this is the clinic.' });
    await a.app.store.tenants.update(ADMIN, a.tenantId, { outbound: { allowedCountries: ['US'] } });
  }, 60_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('node B carries the media of the call node A placed; both read its outcome', async () => {
    const heardOnA: CallRecord[] = [];
    const off = OutboundDialer.for(a.app.store).onFinal((c) => heardOnA.push(c));
    const key = (await a.app.store.tenants.createKey(ADMIN, a.tenantId, 'k', ['calls:write', 'calls:read'])).key;
    const res = await fetch(`${a.base}/v1/calls`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agentId: a.agentId, to: '+14155550123', from: '+14155550100', via: 'twilio', variables: { name: 'Sam' } }),
    });
    expect(res.status).toBe(201);
    const call = (await res.json()) as CallRecord;
    await waitFor(() => b.app.twilio.sessions.has(call.id), 20_000, 'the media stream on node B');
    expect(a.app.twilio.sessions.size).toBe(0);
    await waitFor(() => heardOnA.some((c) => c.id === call.id), 60_000, 'node A hearing the end');
    off();
    const onB = await OutboundDialer.for(b.app.store).records.get(call.id);
    expect(onB).toMatchObject({ status: 'completed', direction: 'outbound' });
    expect(heardOnA.find((c) => c.id === call.id)!.status).toBe('completed');
    const detail = await b.app.store.calls.detail(null, call.id);
    expect(detail.transcript[0]).toMatchObject({ speaker: 'agent', text: 'Hello Sam, this is the clinic.' });
  }, 90_000);
});
