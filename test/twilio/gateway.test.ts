// The Twilio gateway end to end with the simulated caller speaking the real
// Media Streams protocol.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import twilio from 'twilio';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { CallTokens } from '../../src/twilio/call-token.js';
import { scrapeMetric, startTestApp, type TestApp } from '../helpers/app.js';
import { testWorkers } from '../helpers/spawn-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms = 10_000, what = 'condition') {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('Twilio gateway', () => {
  let t: TestApp;
  // WORKERS=1 explicitly for the test that drives a session's clear() itself: with
  // AYBIZA_TEST_WORKERS > 1 the sessions live in worker threads. The same app when the suite runs one worker.
  let inProcess: TestApp;
  const caller = (to = t.number, token = t.authToken, on = t) => new TwilioCaller({ baseUrl: on.base, authToken: token, to });
  beforeAll(async () => {
    t = await startTestApp();
    inProcess = testWorkers() === '1' ? t : await startTestApp({ WORKERS: '1' });
  });
  afterAll(async () => {
    await t?.stop();
    if (inProcess !== t) await inProcess?.stop();
  });

  it('answers with <Connect><Stream> to PUBLIC_URL and a call token; the caller hears the greeting and gets marks back', async () => {
    const c = caller();
    const { outcome, twiml } = await c.dial();
    expect(outcome).toBe('connected');
    expect(twiml).toContain(`<Stream url="${t.base.replace('http', 'ws')}/twilio/media">`);
    expect(twiml).toMatch(/<Parameter name="token" value="[^"]+"\/>/);
    await waitFor(() => c.stats.nonSilent > 20, 10_000, 'greeting audio');
    await waitFor(() => c.stats.echoed > 2, 10_000, 'marks echoed');
    await c.hangup();
    const s = c.summary();
    expect(s.partialFrames).toBe(0);
    expect(s.timeToFirstAudioMs).not.toBeNull();
    expect(s.marksReceived).toBeGreaterThan(0);
    const calls = await t.app.store.calls.list(null, 10);
    const rec = calls.items.find((x) => x.externalId === c.callSid)!;
    await waitFor(() => true);
    expect(rec.transport).toBe('twilio');
  });

  it('a clear drops queued audio and settles the marks', async () => {
    const c = caller(inProcess.number, inProcess.authToken, inProcess);
    await c.dial();
    await waitFor(() => c.stats.nonSilent > 5, 10_000, 'greeting starts');
    const session = [...inProcess.app.twilio.sessions.values()].find((s) => s.agent && s.transport)!;
    const { heardMs } = session.clear();
    expect(heardMs).toBeGreaterThan(0);
    await waitFor(() => c.stats.clears === 1, 5000, 'clear received');
    const framesAtClear = c.stats.frames;
    await sleep(400);
    expect(c.stats.frames - framesAtClear).toBeLessThanOrEqual(1);
    expect(session.playout.speaking).toBe(false);
    await c.hangup();
  });

  it('refuses a webhook with a wrong signature (403) and an upgrade with a wrong signature', async () => {
    const bad = caller(t.number, 'not-the-token');
    const res = await bad.webhook();
    expect(res.status).toBe(403);
    const good = caller();
    const { twiml } = await good.webhook();
    const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)![1];
    await expect(good.connect(`${t.base.replace('http', 'ws')}/twilio/media`, { token }, 'wrong-token')).rejects.toThrow(/403/);
    const ws = new WebSocket(`${t.base.replace('http', 'ws')}/twilio/media`);
    const code = await new Promise<number>((resolve) => ws.once('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0)));
    expect(code).toBe(403);
  });

  it('refuses a replayed call token and an expired one', async () => {
    const c1 = caller();
    const { twiml } = await c1.webhook();
    const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)![1];
    const url = `${t.base.replace('http', 'ws')}/twilio/media`;
    await c1.connect(url, { token });
    await waitFor(() => t.app.twilio.sessions.size > 0, 5000, 'first use accepted');
    // the same token again, same CallSid, new stream
    const replay = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    Object.assign(replay, { callSid: c1.callSid });
    await replay.connect(url, { token });
    expect(await replay.waitClosed()).toBe(1008);
    await c1.hangup();
    // an expired token
    const c2 = caller();
    await c2.webhook();
    const expired = new CallTokens(t.authToken, t.app.store.state, -1000).issue(c2.callSid, t.number, '+15005550006');
    await c2.connect(url, { token: expired });
    expect(await c2.waitClosed()).toBe(1008);
    // The server's /metrics: every worker's series (this process's registry holds only WORKERS=1's).
    expect(await scrapeMetric(t.base, 'aybiza_bad_input_total', { source: 'twilio_ws', reason: 'token_replayed' })).toBeGreaterThan(0);
    expect(await scrapeMetric(t.base, 'aybiza_bad_input_total', { source: 'twilio_ws', reason: 'token_expired' })).toBeGreaterThan(0);
  });

  it('answers <Say> + <Hangup/> for an unknown number', async () => {
    const c = caller('+19995550000');
    const { outcome, twiml } = await c.dial();
    expect(outcome).toBe('hangup');
    expect(twiml).toContain('<Say>');
    expect(twiml).toContain('<Hangup/>');
  });

  it('updates the call record from signed status callbacks, idempotently', async () => {
    const c = caller();
    await c.webhook();
    const post = async (status: string) => {
      const params = { CallSid: c.callSid, CallStatus: status, AccountSid: 'AC' + '0'.repeat(32) };
      const sig = twilio.getExpectedTwilioSignature(t.authToken, `${t.base}/twilio/status`, params);
      return fetch(`${t.base}/twilio/status`, { method: 'POST', headers: { 'x-twilio-signature': sig, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString() });
    };
    expect((await post('completed')).status).toBe(204);
    expect((await post('completed')).status).toBe(204);
    expect((await post('in-progress')).status).toBe(204);
    const rec = await t.app.store.calls.findCall('twilio', c.callSid);
    expect(rec?.status).toBe('completed');
    expect(rec?.endedAt).not.toBeNull();
  });
});
