// Outbound calls over Twilio, end to end on real PostgreSQL: POST /v1/calls
// → the dialer → the official `twilio` library → the Twilio REST emulator,
// whose emulated callee answers by opening a signed Media Stream to us
// like Twilio does. Covers the conversation, variables, Twilio's async AMD
// (machine → voicemail after the beep, then hang-up; human → greeting),
// transfer_call as a REST redirect to <Dial>, hangup, busy and no-answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { freshDatabase } from '../helpers/databases.js';
import { waitFor } from '../helpers/calls.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { amdTotal, callsTotal } from '../../src/metrics/index.js';
import type { TwilioRestEmulator } from '../../src/providers/emulators/twilio-rest.js';
import type { CallDetail, CallRecord } from '../../src/store/types.js';

const VOICEMAIL = 'Hi, this is the Bay clinic calling to confirm your appointment tomorrow at three. Please call us back. Goodbye.';

describe('outbound calls over Twilio (REST emulator, real PostgreSQL)', () => {
  let t: TestApp;
  let key: string;
  let emulator: TwilioRestEmulator;
  let dialer: OutboundDialer;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(t.base + path, {
      method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const dial = (to: string, extra: Record<string, unknown> = {}) =>
    api('POST', '/v1/calls', { agentId: t.agentId, to, from: '+14155550100', via: 'twilio', ...extra });
  const detail = async (id: string) => (await api('GET', `/v1/calls/${id}`)).body as CallDetail;
  const emulated = (c: CallRecord) => emulator.calls.get(c.externalId)!;
  const amdCount = async (result: string) => (await amdTotal.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

  beforeAll(async () => {
    t = await startTestApp(
      {
        DATABASE_URL: await freshDatabase(),
        EMULATOR_PHRASES: 'Hello?|Yes, this is Sam speaking.|That works for me. Thank you, goodbye.',
        // WORKERS=1: the tests read the REST emulator's calls, this thread's AMD metric, the STT
        // emulator's phrases and the live conversation; with AYBIZA_TEST_WORKERS > 1 each worker
        // has its own emulators and sessions.
        WORKERS: '1',
      },
      { greeting: 'Hello {{name}}, this is the Bay clinic calling about your appointment.', prompt: 'You call {{name}} about their appointment on {{date}}.', transfer: { targets: ['+1415555*'] } },
    );
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'outbound', ['calls:write', 'calls:read'])).key;
    emulator = t.app.providers.emulators!.twilioRest;
    dialer = OutboundDialer.for(t.app.store);
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('places the call through the library, the callee reaches the agent and they converse', async () => {
    const before = (await callsTotal.get()).values.find((v) => v.labels.direction === 'outbound' && v.labels.outcome === 'completed')?.value ?? 0;
    const r = await dial('+14155550123', { variables: { name: 'Sam', date: 'Tuesday' }, metadata: { crm: 'lead-42' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ direction: 'outbound', transport: 'twilio', to: '+14155550123', answeredBy: null, variables: { name: 'Sam', date: 'Tuesday' }, metadata: { crm: 'lead-42' } });
    expect(['dialing', 'queued']).toContain(r.body.status);
    expect(r.body.externalId).toMatch(/^CA[0-9a-f]{32}$/);

    const done = await dialer.whenFinal(r.body.id, 60_000);
    expect(done.status).toBe('completed');
    const d = await detail(r.body.id);
    const agent = d.transcript.filter((s) => s.speaker === 'agent').map((s) => s.text);
    const caller = d.transcript.filter((s) => s.speaker === 'caller').map((s) => s.text);
    // The greeting came from the token's call row and its variables, not from the To number.
    expect(agent[0]).toBe('Hello Sam, this is the Bay clinic calling about your appointment.');
    expect(caller.join(' ')).toContain('Yes, this is Sam speaking');
    expect(d.turns.length).toBeGreaterThanOrEqual(2);
    expect(d.answeredAt).not.toBeNull();

    const e = emulated(done);
    expect(e.twiml[0]).toMatch(/<Connect><Stream url="ws:\/\/127\.0\.0\.1:\d+\/twilio\/media"><Parameter name="token" value="[^"]+"\/><\/Stream><\/Connect>/);
    expect(e.params.StatusCallbackEvent).toEqual(['initiated', 'ringing', 'answered', 'completed']);
    // Every callback was accepted by our signature check (the `completed` one may still be on its way when the session ends).
    await waitFor(() => e.callbacks.some((c) => c.params.CallStatus === 'completed') && e.callbacks.every((c) => c.status !== null), 10_000, 'the callbacks');
    expect(e.callbacks.length).toBeGreaterThanOrEqual(4);
    expect(e.callbacks.every((c) => c.status === 204)).toBe(true);

    const list = await api('GET', '/v1/calls?direction=outbound');
    expect(list.body.items.map((c: CallRecord) => c.id)).toContain(r.body.id);
    expect((await api('GET', '/v1/calls?direction=inbound')).body.items.map((c: CallRecord) => c.id)).not.toContain(r.body.id);
    expect((await api('GET', '/v1/calls?direction=sideways')).status).toBe(400);
    const after = (await callsTotal.get()).values.find((v) => v.labels.direction === 'outbound' && v.labels.outcome === 'completed')?.value ?? 0;
    expect(after).toBe(before + 1);
  }, 90_000);

  for (const amd of ['detect_message_end', 'detect'] as const) {
    it(`AMD ${amd}: a machine gets the voicemail message after its beep, then the call hangs up`, async () => {
      const machines = await amdCount('machine');
      const r = await dial('+14155550666', { amd, voicemail: { message: VOICEMAIL }, variables: { name: 'Sam' } });
      expect(r.status).toBe(201);
      const done = await dialer.whenFinal(r.body.id, 60_000);
      expect(done).toMatchObject({ status: 'completed', answeredBy: 'machine', endReason: 'voicemail left' });
      const e = emulated(done);
      expect(e.params).toMatchObject({ MachineDetection: amd === 'detect' ? 'Enable' : 'DetectMessageEnd', AsyncAmd: 'true' });
      expect(e.answeredBy).toBe(amd === 'detect' ? 'machine_start' : 'machine_end_beep');
      const callee = e.lastCallee!;
      // Nothing of ours before the beep; the message recorded right after it, whole.
      expect(callee.heardBeforeBeep).toBe(0);
      expect(callee.firstRecordedMs).not.toBeNull();
      expect(callee.firstRecordedMs!).toBeLessThan(3000);
      expect(callee.recordedFrames).toBeGreaterThan(50);
      const d = await detail(r.body.id);
      expect(d.transcript.filter((s) => s.speaker === 'agent').map((s) => s.text)).toEqual([VOICEMAIL]);
      expect(await amdCount('machine')).toBe(machines + 1);
    }, 90_000);
  }

  it('AMD: a person hears the greeting', async () => {
    const humans = await amdCount('human');
    const r = await dial('+14155550124', { amd: 'detect', voicemail: { message: VOICEMAIL }, variables: { name: 'Ana' } });
    await waitFor(() => emulator.calls.get(r.body.externalId)?.answeredBy === 'human', 20_000, 'the AMD verdict');
    const done = await dialer.whenFinal(r.body.id, 60_000);
    expect(done).toMatchObject({ status: 'completed', answeredBy: 'human' });
    const agent = (await detail(r.body.id)).transcript.filter((s) => s.speaker === 'agent').map((s) => s.text);
    expect(agent[0]).toBe('Hello Ana, this is the Bay clinic calling about your appointment.');
    expect(agent).not.toContain(VOICEMAIL);
    expect(await amdCount('human')).toBe(humans + 1);
  }, 90_000);

  it('AMD: when Twilio\'s verdict never arrives, the call is stored as answered by `unknown` and the person hears the greeting', async () => {
    emulator.loseAmdCallbacks = true;
    try {
      const r = await dial('+14155550125', { amd: 'detect', voicemail: { message: VOICEMAIL }, variables: { name: 'Lee' } });
      const done = await dialer.whenFinal(r.body.id, 60_000);
      // Twilio decided (its own record says human) but the callback was lost: our screen gave up after Twilio's timeout + 2 s.
      expect(emulated(done).answeredBy).toBe('human');
      expect(done).toMatchObject({ status: 'completed', answeredBy: 'unknown' });
      const agent = (await detail(r.body.id)).transcript.filter((s) => s.speaker === 'agent').map((s) => s.text);
      expect(agent[0]).toBe('Hello Lee, this is the Bay clinic calling about your appointment.');
      expect(agent).not.toContain(VOICEMAIL);
    } finally {
      emulator.loseAmdCallbacks = false;
    }
  }, 90_000);

  it('transfer_call redirects the Twilio call to <Dial> over the REST API', async () => {
    const script = emulator.opts.script;
    const stt = (t.app.providers.emulators!.deepgram as unknown as { opts: { phrases: string[] } }).opts;
    const phrases = stt.phrases;
    emulator.opts.script = ['Please transfer call to +1 (415) 555-0199.'];
    stt.phrases = ['Hello?', 'Please transfer call to +1 (415) 555-0199.'];
    try {
      const r = await dial('+14155550125');
      const e = () => emulator.calls.get(r.body.externalId)!;
      await waitFor(() => e()?.dials.length === 1, 30_000, 'the <Dial>');
      expect(e().dials[0]).toEqual({ target: '+14155550199', callerId: '+14155550100', timeout: '30' });
      expect(e().twiml[1]).toMatch(/<Dial callerId="\+14155550100" timeout="30"><Number>\+14155550199<\/Number><\/Dial>/);
      // The bridged call ends later; Twilio's status callback reports it.
      const done = await dialer.whenFinal(r.body.id, 30_000);
      expect(done.status).toBe('completed');

      // A target the agent may reach but the tenant's guards refuse (do-not-call): nothing is dialled.
      expect((await api('POST', '/v1/dnc', { numbers: ['+14155550198'] })).status).toBe(201);
      emulator.opts.script = ['Please transfer call to +1 (415) 555-0198.'];
      stt.phrases = ['Hello?', 'Please transfer call to +1 (415) 555-0198.'];
      const refused = await dial('+14155550126');
      const conv = () => [...t.app.twilio.sessions.values()].pop() as unknown as { conversation: { turns: { agent: string }[] } } | undefined;
      await waitFor(() => (conv()?.conversation.turns ?? []).some((x) => x.agent.includes('transfer to that destination is not allowed')), 30_000, 'the refused transfer');
      expect(emulator.calls.get(refused.body.externalId)!.dials).toEqual([]);
      await api('POST', `/v1/calls/${refused.body.id}/hangup`);
      expect((await dialer.whenFinal(refused.body.id, 10_000)).status).toBe('completed');
    } finally {
      emulator.opts.script = script;
      stt.phrases = phrases;
    }
  }, 90_000);

  it('hangup cancels a ringing call; busy and no-answer are final statuses', async () => {
    const ringing = await dial('+14155550408');
    await waitFor(() => emulator.calls.get(ringing.body.externalId)?.status === 'ringing', 10_000, 'ringing');
    const h = await api('POST', `/v1/calls/${ringing.body.id}/hangup`);
    expect(h.status).toBe(200);
    expect(h.body.status).toBe('canceled');
    expect(emulator.calls.get(ringing.body.externalId)!.status).toBe('canceled');
    expect((await api('POST', `/v1/calls/${ringing.body.id}/hangup`)).body.status).toBe('canceled');
    const audit = await t.app.store.db.pool.query(`select action from audit_log where object_id = $1 order by id`, [ringing.body.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['call.dial', 'call.hangup']);

    const busy = await dial('+14155550486');
    expect((await dialer.whenFinal(busy.body.id, 20_000)).status).toBe('busy');
    const missed = await dial('+14155550408');
    expect((await dialer.whenFinal(missed.body.id, 20_000)).status).toBe('no-answer');
    expect((await api('POST', '/v1/calls/call_nope/hangup')).status).toBe(404);
  }, 60_000);
});
