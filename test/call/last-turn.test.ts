// The last turn of a call that ends abnormally (issue 13 item 14): the caller
// hangs up while the agent is still answering; the stored call keeps that
// turn with the caller's words and what the caller heard, and a turn write
// that fails is retried. Against the real PostgreSQL (TEST_DATABASE_URL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import type { Emulators } from '../../src/providers/emulators/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string) {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const FULL_REPLY = 'You said: I would like to book a table. I can help with that. What else would you like to know?';

describe.skipIf(!realPg)('the last turn of a call that ends mid-reply', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ...IN_PROCESS, DATABASE_URL: await freshDatabase(), EMULATOR_PHRASES: 'I would like to book a table.', EMULATOR_TTS_RTF: '0.02' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('is stored with the caller text and the part of the reply the caller heard, after a failed write is retried', async () => {
    const calls = t.app.store.calls;
    const addTurn = calls.addTurn.bind(calls);
    let attempts = 0;
    calls.addTurn = async (callId, turn) => {
      if (attempts++ === 0) throw new Error('connection reset'); // the first write fails
      return addTurn(callId, turn);
    };
    try {
      const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
      expect((await c.dial()).outcome).toBe('connected');
      await waitFor(() => t.app.twilio.sessions.size === 1, 10_000, 'the session');
      const callId = [...t.app.twilio.sessions.keys()][0];
      // Greeting, then quiet.
      await waitFor(() => c.stats.frames > 0, 10_000, 'the greeting');
      let last = -1;
      let since = Date.now();
      await waitFor(() => {
        if (c.stats.frames !== last) [last, since] = [c.stats.frames, Date.now()];
        return Date.now() - since > 400;
      }, 20_000, 'the greeting to end');
      const beforeReply = c.stats.frames;
      c.speak(synthesize('I would like to book a table please'));
      // About a second of the reply is heard (50 frames), then the caller hangs up.
      await waitFor(() => c.stats.frames - beforeReply >= 50, 20_000, 'the reply to start');
      await c.hangup(0);
      await waitFor(() => t.app.twilio.sessions.size === 0, 10_000, 'the call to end');

      await waitFor(async () => (await calls.detail(null, callId)).turns.length === 1, 10_000, 'the turn to be stored');
      const detail = await calls.detail(null, callId);
      const turn = detail.turns[0];
      expect(turn.userText).toBe('I would like to book a table.');
      expect(turn.interrupted).toBe(true);
      expect(turn.assistantText.length).toBeGreaterThan(0);
      expect(turn.assistantText.length).toBeLessThan(FULL_REPLY.length);
      expect(FULL_REPLY.startsWith(turn.assistantText)).toBe(true);
      expect(attempts).toBe(2); // failed once, retried once
    } finally {
      calls.addTurn = addTurn;
    }
  });

  it('is stored when the language model fails in the middle of the reply', async () => {
    const calls = t.app.store.calls;
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    expect((await c.dial()).outcome).toBe('connected');
    await waitFor(() => t.app.twilio.sessions.size === 1, 10_000, 'the session');
    const callId = [...t.app.twilio.sessions.keys()][0];
    let last = -1;
    let since = Date.now();
    await waitFor(() => {
      if (c.stats.frames !== last) [last, since] = [c.stats.frames, Date.now()];
      return c.stats.frames > 0 && Date.now() - since > 400;
    }, 20_000, 'the greeting to end');
    // The model's stream breaks after its first tokens: the call apologises and ends.
    (t.app.providers as unknown as { emulators: Emulators }).emulators.bedrock.faults.dropMidStream = true;
    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => t.app.twilio.sessions.size === 0, 30_000, 'the call to end');
    await waitFor(async () => (await calls.detail(null, callId)).turns.length === 1, 10_000, 'the turn to be stored');
    const turn = (await calls.detail(null, callId)).turns[0];
    expect(turn.userText).toBe('I would like to book a table.');
    expect(turn.interrupted).toBe(true);
    expect(FULL_REPLY.startsWith(turn.assistantText)).toBe(true);
    await c.hangup(0).catch(() => {});
  });
});
