// Answering-machine detection end to end on outbound SIP calls: the dial
// asks for AMD and a voicemail message, SIPp answers (uas_amd_play.xml) and
// plays a recording as RTP. A voicemail greeting with a beep: the call is
// stored as answered by a machine, the agent's greeting never plays, the
// message goes out only after the beep has come in, then our BYE. A person's
// "Hello?": answered by a human, and the agent's greeting plays after the
// verdict. Frame counts, not wall-clock times, order the events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ulawEncode } from '../../src/media/g711.js';
import { ADMIN } from '../helpers/app.js';
import { startSipApp, waitFor, type SipTestApp } from '../sip/helpers.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { speak } from '../../bench/vad/corpus.js';
import { sippPlaying } from './amd-sipp.js';

const RATE = 8000;
const silence = (ms: number) => new Int16Array((ms * RATE) / 1000);
const tone = (hz: number, ms: number) => Int16Array.from({ length: (ms * RATE) / 1000 }, (_, i) => Math.round(0.2 * 32767 * Math.sin((2 * Math.PI * hz * i) / RATE)));
function recording(...parts: Int16Array[]): { ulaw: Uint8Array; frames: number[] } {
  const pcm = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  const frames: number[] = [];
  let at = 0;
  for (const p of parts) pcm.set(p, at), (at += p.length), frames.push(at / 160);
  return { ulaw: ulawEncode(pcm).slice(), frames };
}

// The message's placeholders are filled from the dial's variables, as the greeting's are.
const TEMPLATE = 'Hi {{name}}, this is the clinic calling about your appointment. Please call us back.';
const MESSAGE = 'Hi Anna, this is the clinic calling about your appointment. Please call us back.';

describe('AMD on outbound SIP calls (SIPp plays the answer)', () => {
  let t: SipTestApp;
  let dialer: OutboundDialer;
  let trunkId = '';
  beforeAll(async () => {
    // WORKERS=1: both tests watch the live call's session (its frames in and out), which with
    // AYBIZA_TEST_WORKERS > 1 the test's app offers only as a count of calls.
    t = await startSipApp({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', WORKERS: '1' });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
    dialer = OutboundDialer.for(t.app.store);
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function dialTo(port: number) {
    const trunk = await t.app.store.trunks.create(ADMIN, t.tenantId, { name: `amd-${port}`, allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${port}`, transport: 'udp' } });
    trunkId = trunk.id;
    return dialer.dial(t.tenantId, {
      agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId, amd: 'detect', voicemail: { message: TEMPLATE }, variables: { name: 'Anna' },
    });
  }

  /** Watches the call's session: inbound frames when its first outbound frame went out. */
  async function firstOutbound(callId: string, until: () => boolean): Promise<number | null> {
    let at: number | null = null;
    await waitFor(() => {
      const s = t.app.sip!.calls.get(callId)?.session;
      if (s && at === null && s.playout.framesSent > 0) at = s.framesIn;
      return until() || at !== null;
    }, 30_000, 'agent audio');
    return at;
  }

  it('a voicemail greeting with a beep: machine; the message after the beep; then our hang-up', async () => {
    const GREETING = "Hi, you've reached Anna. I can't come to the phone right now. Please leave a message after the tone.";
    const rec = recording(silence(500), speak('en', 160, 45, GREETING), silence(400), tone(1000, 700), silence(8000));
    const beepEndFrame = rec.frames[3];
    const callee = await sippPlaying(rec.ulaw);
    const call = await dialTo(callee.port);
    const framesInAtFirstAudio = await firstOutbound(call.id, () => false);
    // Nothing of ours went out before the beep had come in (no greeting into the voicemail).
    expect(framesInAtFirstAudio).toBeGreaterThanOrEqual(beepEndFrame);
    const final = await dialer.whenFinal(call.id, 40_000);
    expect(final.status).toBe('completed');
    expect(final.answeredBy).toBe('machine');
    expect(final.endReason).toMatch(/voicemail left/);
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0); // SIPp got our BYE
    const detail = await t.app.store.calls.detail(t.tenantId, call.id);
    const agentLines = detail.transcript.filter((s) => s.speaker === 'agent').map((s) => s.text);
    expect(agentLines).toEqual([MESSAGE]);
  });

  it('a person\'s "Hello?": human; the agent\'s greeting after the verdict', async () => {
    const rec = recording(silence(600), speak('en-us', 170, 50, 'Hello?'), silence(15_000));
    const helloEndFrame = rec.frames[1];
    const callee = await sippPlaying(rec.ulaw);
    const call = await dialTo(callee.port);
    await waitFor(() => t.app.sip!.calls.get(call.id)?.session !== undefined, 20_000, 'answer');
    const framesInAtFirstAudio = await firstOutbound(call.id, () => false);
    // The greeting waited for the silence after "Hello?".
    expect(framesInAtFirstAudio).toBeGreaterThan(helloEndFrame);
    await dialer.settled(call.id);
    const rec2 = await dialer.records.get(call.id);
    expect(rec2?.answeredBy).toBe('human');
    await waitFor(() => t.app.sip!.calls.get(call.id)!.session!.playout.framesSent > 50, 20_000, 'greeting audio');
    const ended = await dialer.hangup(t.tenantId, call.id);
    expect(ended.answeredBy).toBe('human');
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
    const detail = await t.app.store.calls.detail(t.tenantId, call.id);
    expect(detail.transcript.filter((s) => s.speaker === 'agent').map((s) => s.text)).toEqual(['Hello! Thanks for calling. How can I help you today?']);
  });
});
