// transfer_call on a live call (Twilio protocol, emulated providers): the
// model asks to transfer where the caller told it to; only the agent's
// transfer.targets are dialled, anything else is refused, logged and counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { badInput } from '../../src/metrics/index.js';
import { IN_PROCESS, ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, waitFor } from '../helpers/calls.js';
import type { Conversation } from '../../src/pipeline/conversation.js';
import type { CallSession } from '../../src/call/session.js';

async function refusedTransfers(): Promise<number> {
  const m = await badInput.get();
  return m.values.find((v) => v.labels.source === 'tool' && v.labels.reason === 'transfer_target_refused')?.value ?? 0;
}

describe('transfer_call', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      { ...IN_PROCESS, EMULATOR_PHRASES: 'Please transfer call to +1 900 555 0199.|Then transfer call to +1 (415) 555-0123.|Okay goodbye.' },
      { transfer: { targets: ['+1415555*', 'sip:desk@pbx.example.com'] } },
    );
    // A transfer is a call out: the tenant's outbound guards must allow the country too.
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('refuses a target outside transfer.targets and dials an allowed one', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const session = [...t.app.twilio.sessions.values()].pop() as CallSession;
    const conv = (session as unknown as { conversation: Conversation }).conversation;
    // Twilio Media Streams cannot transfer by themselves: stand in for a transport that can.
    const dialled: string[] = [];
    (session.transport as { transfer?: (target: string) => Promise<boolean> }).transfer = async (target) => {
      dialled.push(target);
      return true;
    };
    const before = await refusedTransfers();

    c.speak(synthesize('please transfer me to plus one nine hundred five five five zero one nine nine'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(dialled).toEqual([]);
    expect(conv.turns[0].agent).toContain('transfer to that destination is not allowed');
    expect(await refusedTransfers()).toBe(before + 1);
    await agentQuiet(c);

    c.speak(synthesize('then transfer me to plus one four one five five five five zero one two three'));
    await waitFor(() => conv.turns.length === 2, 20_000, 'turn 2');
    expect(dialled).toEqual(['+14155550123']);
    expect(conv.turns[1].agent).toContain('"transferred":"+14155550123"');
    expect(await refusedTransfers()).toBe(before + 1);
    await c.hangup();
  });
});
