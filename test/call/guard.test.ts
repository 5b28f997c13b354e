// Exceptions on the call path end at most that call (issue 13 item 1,
// provider and timer side): a clock member whose tick throws is taken off
// the clock while the others keep ticking; a provider event handler that
// throws ends its call while another call's audio and turns go on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacingClock, type Tickable } from '../../src/call/clock.js';
import { internalErrors } from '../../src/metrics/index.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import type { Conversation } from '../../src/pipeline/conversation.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms: number, what: string) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
async function internal(where: string): Promise<number> {
  return (await internalErrors.get()).values.find((v) => v.labels.where === where)?.value ?? 0;
}

describe('the pacing clock', () => {
  it('takes a throwing member off the clock, tells it, counts it, and keeps ticking the others', async () => {
    const clock = new PacingClock();
    let healthy = 0;
    const failedWith: unknown[] = [];
    const good: Tickable = { tick: () => void healthy++ };
    const bad: Tickable = {
      tick: () => {
        throw new Error('tick bug');
      },
      tickFailed: (err) => failedWith.push(err),
    };
    const before = await internal('timer');
    clock.add(bad);
    clock.add(good);
    await waitFor(() => failedWith.length === 1, 2000, 'the failing tick');
    const at = healthy;
    await waitFor(() => healthy >= at + 10, 2000, 'the healthy member to keep ticking');
    expect(clock.size).toBe(1);
    expect(failedWith).toHaveLength(1);
    expect(await internal('timer')).toBe(before + 1);
    clock.delete(good);
  });
});

describe('a provider handler that throws', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ...IN_PROCESS, EMULATOR_PHRASES: 'I would like to book a table.' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function quiet(c: TwilioCaller, ms = 400): Promise<void> {
    let last = -1;
    let since = Date.now();
    await waitFor(() => {
      if (c.stats.frames !== last) [last, since] = [c.stats.frames, Date.now()];
      return c.stats.frames > 0 && Date.now() - since > ms;
    }, 20_000, 'the agent to be quiet');
  }

  it('ends only its own call; the other call keeps its audio and its turns', async () => {
    const a = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    expect((await a.dial()).outcome).toBe('connected');
    await waitFor(() => t.app.twilio.sessions.size === 1, 10_000, 'call A');
    const sessionA = [...t.app.twilio.sessions.values()][0];
    const b = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    expect((await b.dial()).outcome).toBe('connected');
    await waitFor(() => t.app.twilio.sessions.size === 2, 10_000, 'call B');
    const sessionB = [...t.app.twilio.sessions.values()].find((s) => s !== sessionA)!;
    await Promise.all([quiet(a), quiet(b)]);

    // A bug in call A's transcript handling, reached from the STT socket's message event.
    sessionA.events.onTranscript = () => {
      throw new Error('transcript handler bug');
    };
    const before = await internal('provider');
    a.speak(synthesize('I would like to book a table please'));
    await waitFor(() => a.isClosed, 30_000, 'call A to be ended');
    expect(await internal('provider')).toBeGreaterThan(before);
    expect(sessionA.isEnded).toBe(true);

    // Call B is untouched: it is still up, hears its reply and stores its turn.
    expect(sessionB.isEnded).toBe(false);
    const framesB = b.stats.frames;
    b.speak(synthesize('I would like to book a table please'));
    const convB = (sessionB as unknown as { conversation: Conversation }).conversation;
    await waitFor(() => convB.turns.length === 1, 20_000, 'call B\'s turn');
    expect(b.stats.frames).toBeGreaterThan(framesB + 50);
    expect(convB.turns[0].user).toBe('I would like to book a table.');
    await b.hangup();
  });
});
