// send_dtmf: what we send, decoded by our own receivers. On a SIP call that
// negotiated telephone-event, RFC 4733 events (checked packet by packet, then
// replayed into our RTP receiver, which must report the same keys); on a SIP
// call without it and on a Twilio call, in-band tones, decoded by our native
// DtmfDetector from the audio the far end received.
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, conversationOf, waitFor as waitForCall } from '../helpers/calls.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { startSipApp, waitFor, type SipTestApp } from '../sip/helpers.js';
import { allocateRtpPorts, RtpSession } from '../../sip/rtp.js';
import { DtmfDetector } from '../../src/media/dtmf.js';
import { dtmfProblem, dtmfTones } from '../../src/media/dtmf-tones.js';
import { ulawDecode } from '../../src/media/g711.js';
import { BUILTIN_TOOLS, sendDtmf } from '../../src/pipeline/tools.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import type { CallSession } from '../../src/call/session.js';
import { sippCallee } from './sip-uas.js';

function decode(ulaw: Uint8Array): string {
  const d = new DtmfDetector();
  const keys: string[] = [];
  for (let i = 0; i + 160 <= ulaw.length; i += 160) keys.push(...d.process(ulaw.subarray(i, i + 160)));
  d.close();
  return keys.join('');
}

/** A raw RTP endpoint: every datagram, whole, with its arrival time. */
class RawRtp {
  readonly socket = dgram.createSocket('udp4');
  readonly got: { buf: Buffer; at: number }[] = [];
  port = 0;
  async open(): Promise<number> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.socket.on('message', (buf) => this.got.push({ buf, at: performance.now() }));
    return (this.port = this.socket.address().port);
  }
  packets(from = 0) {
    return this.got.slice(from).filter((g) => g.buf[1]! < 192 || g.buf[1]! > 223).map(({ buf, at }) => ({
      buf, at, pt: buf[1]! & 0x7f, marker: (buf[1]! & 0x80) !== 0, seq: buf.readUInt16BE(2), ts: buf.readUInt32BE(4), payload: buf.subarray(12),
    }));
  }
}

describe('DTMF tones (in-band generator)', () => {
  it('every key decodes with our detector, w pauses half a second, tones at -7 dBm0 each', () => {
    expect(decode(dtmfTones('0123456789*#ABCD'))).toBe('0123456789*#ABCD');
    expect(decode(dtmfTones('1w23#'))).toBe('123#');
    const audio = dtmfTones('1w2');
    // 100 ms on + 100 ms off per key, 500 ms per w; whole 20 ms frames.
    expect(audio.length).toBe(1600 + 4000 + 1600);
    const pcm = ulawDecode(audio.subarray(0, 800));
    const rms = Math.sqrt(pcm.reduce((a, v) => a + v * v, 0) / pcm.length);
    // Two equal tones: each carries half the power. 0 dBm0 is a sine of RMS 32124/10^(3.17/20)/√2.
    const perTone = 20 * Math.log10(rms / Math.SQRT2 / (32124 / 10 ** (3.17 / 20) / Math.SQRT2));
    expect(perTone).toBeGreaterThan(-7.5);
    expect(perTone).toBeLessThan(-6.5);
    expect(ulawDecode(audio.subarray(800, 1600)).every((v) => Math.abs(v) < 8)).toBe(true);
  });

  it('validates what the model asks for', () => {
    expect(dtmfProblem('1w23#')).toBeNull();
    for (const bad of ['', 'x', '12 3', 'W', 'a', '1'.repeat(33), 42, null, undefined]) expect(dtmfProblem(bad), String(bad)).not.toBeNull();
    expect(BUILTIN_TOOLS.map((t) => t.name)).toContain('send_dtmf');
    const refused = sendDtmf({ transport: { sendDigits: () => true } as never, playout: null as never }, { digits: '1;2' });
    expect(refused.ok).toBe(false);
  });
});

describe('send_dtmf on an outbound SIP call', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    // WORKERS=1: the tests send keys through the live call's session, which with
    // AYBIZA_TEST_WORKERS > 1 the test's app offers only as a count of calls.
    t = await startSipApp({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', WORKERS: '1' });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** Dials SIPp (scenario) with its media at our raw socket; resolves with the live call's session once the greeting is over. */
  async function call(scenario: string, peer: RawRtp) {
    const callee = await sippCallee(scenario, { rtpPort: peer.port });
    const trunk = await t.app.store.trunks.create(ADMIN, t.tenantId, { name: 'o', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${callee.port}`, transport: 'udp' } });
    const dialer = OutboundDialer.for(t.app.store);
    const rec = await dialer.dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId: trunk.id });
    await waitFor(() => t.app.sip!.calls.get(rec.id)?.session !== undefined, 10_000, 'answer');
    const session = t.app.sip!.calls.get(rec.id)!.session as CallSession;
    await waitFor(() => peer.packets().length > 20 && !session.playout.speaking, 20_000, 'greeting played');
    return { session, end: async () => (await dialer.hangup(t.tenantId, rec.id), expect((await callee.done).code).toBe(0)) };
  }

  it('telephone-event negotiated: RFC 4733 events, not overlapping the audio, decoded by our RTP receiver', async () => {
    const peer = new RawRtp();
    await peer.open();
    const { session, end } = await call('uas_answer.xml', peer);
    const from = peer.got.length;
    // Speech queued right behind the keys waits for them.
    const out = sendDtmf(session, { digits: '1w23#' });
    session.say('Done.');
    session.flush();
    expect(out).toEqual({ ok: true, result: { sent: '1w23#', as: 'rfc4733' } });
    await waitFor(() => peer.packets(from).filter((p) => p.pt === 101 && (p.payload[1]! & 0x80)).length === 12, 10_000, 'four events ended');
    await waitFor(() => peer.packets(from).some((p) => p.pt === 0 && p.seq > peer.packets(from).filter((q) => q.pt === 101).pop()!.seq), 10_000, 'audio after the keys');
    await end();
    const pk = peer.packets(from);
    const events = new Map<number, typeof pk>();
    for (const p of pk.filter((x) => x.pt === 101)) events.set(p.ts, [...(events.get(p.ts) ?? []), p]);
    expect([...events.values()].map((e) => '0123456789*#ABCD'[e[0]!.payload[0]!]).join('')).toBe('123#');
    const starts = [...events.keys()];
    for (const e of events.values()) {
      expect(e[0]!.marker).toBe(true);
      expect(e.slice(1).every((p) => !p.marker)).toBe(true);
      const durations = e.map((p) => p.payload.readUInt16BE(2));
      for (let i = 1; i < durations.length; i++) expect(durations[i]!).toBeGreaterThanOrEqual(durations[i - 1]!);
      expect(e.slice(-3).every((p) => (p.payload[1]! & 0x80) !== 0 && p.payload.readUInt16BE(2) === durations.at(-1))).toBe(true);
      expect(e.slice(0, -3).every((p) => (p.payload[1]! & 0x80) === 0)).toBe(true);
      // No audio packet in the event's time span.
      const span = [e[0]!.ts, e[0]!.ts + durations.at(-1)!];
      expect(pk.filter((p) => p.pt === 0 && ((p.ts - span[0]!) >>> 0) < span[1]! - span[0]!)).toEqual([]);
    }
    // w: a pause between 1 and 2 that 2 and 3 do not have (25 clock ticks; timestamps follow the wall
    // clock, and a loaded machine's late ticks compress it, so only its presence is checked here).
    expect(((starts[1]! - starts[0]!) >>> 0) - ((starts[2]! - starts[1]!) >>> 0)).toBeGreaterThanOrEqual(2000);
    // One sequence, no gaps, events and audio interleaved.
    for (let i = 1; i < pk.length; i++) expect((pk[i]!.seq - pk[i - 1]!.seq) & 0xffff).toBe(1);

    // Our own receiver, fed what went over the wire, reports each key once.
    const min = 30000 + 2 * Math.floor(Math.random() * 5000);
    const ports = (await allocateRtpPorts('127.0.0.1', min, min + 200))!;
    const heard: string[] = [];
    const rx = new RtpSession({ rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: 'pcmu', pt: 0, dtmfPt: 101, remote: null, latchFrom: ['127.0.0.1'], onDigit: (d) => heard.push(d) });
    for (const p of pk) peer.socket.send(p.buf, ports.port, '127.0.0.1');
    await waitFor(() => heard.length >= 4, 5000, 'keys heard');
    await new Promise((r) => setTimeout(r, 100));
    rx.close();
    peer.socket.close();
    expect(heard.join('')).toBe('123#');
  });

  it('no telephone-event in the answer: in-band tones, decoded by our DtmfDetector', async () => {
    const peer = new RawRtp();
    await peer.open();
    const { session, end } = await call('uas_answer_pcmu.xml', peer);
    const from = peer.got.length;
    expect(sendDtmf(session, { digits: '9*0#' })).toEqual({ ok: true, result: { sent: '9*0#', as: 'tones' } });
    await waitFor(() => peer.packets(from).length >= 40 && !session.playout.speaking, 10_000, 'tones played');
    await end();
    peer.socket.close();
    const audio = Buffer.concat(peer.packets(from).filter((p) => p.pt === 0).map((p) => p.payload));
    expect(decode(audio)).toBe('9*0#');
  });
});

describe('send_dtmf on a Twilio call', () => {
  let t: TestApp;
  beforeAll(async () => {
    // WORKERS=1: the test sends keys through the live session, which lives in a worker thread
    // with AYBIZA_TEST_WORKERS > 1.
    t = await startTestApp({ WORKERS: '1' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('in-band tones through the playout, decoded by our DtmfDetector from what the caller received', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number, record: true });
    await c.dial();
    await agentQuiet(c);
    const session = [...t.app.twilio.sessions.values()].pop()! as CallSession;
    const from = c.received.length;
    expect(sendDtmf(session, { digits: '1w23#' })).toEqual({ ok: true, result: { sent: '1w23#', as: 'tones' } });
    // 4 × 200 ms of keys + 500 ms of pause.
    await waitForCall(() => Buffer.concat(c.received.slice(from)).length >= 8000 * 1.3, 10_000, 'tones received');
    await agentQuiet(c);
    expect(decode(Buffer.concat(c.received.slice(from)))).toBe('123#');
    await c.hangup();
  });
});

describe('send_dtmf through the conversation', () => {
  let t: TestApp;
  beforeAll(async () => {
    // The emulated model calls the tool it is asked for, with the keys at the end of what it heard.
    // WORKERS=1: the test reads the conversation's history, which lives in a worker thread with
    // AYBIZA_TEST_WORKERS > 1.
    t = await startTestApp({ EMULATOR_PHRASES: 'Please use send_dtmf 4w5#', WORKERS: '1' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('the model asks for keys: they are played to the caller, decodable, and the tool result is in the history', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number, record: true });
    await c.dial();
    await agentQuiet(c);
    const from = c.received.length;
    c.speak(synthesize('please press some keys'));
    const conv = conversationOf(t);
    await waitForCall(() => conv.turns.length === 1, 20_000, 'the turn with the tool');
    await agentQuiet(c, 600);
    expect(decode(Buffer.concat(c.received.slice(from)))).toBe('45#');
    const result = conv.history.flatMap((m) => m.content).find((b) => 'toolResult' in b) as { toolResult: { status: string; content: { json: unknown }[] } };
    expect(result.toolResult.status).toBe('success');
    expect(result.toolResult.content[0]!.json).toEqual({ sent: '4w5#', as: 'tones' });
    await c.hangup();
  });
});

