// Issue 13, SIP side: callback failures stay inside one packet or one call
// (item 1), TCP responses go back on the request's connection (item 5), a
// re-INVITE that moves media re-latches RTP (item 6), a reused Call-ID is a
// new call (item 11), and a failed setup releases its RTP ports (item 15).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import { boundRtpPorts } from '../../sip/rtp.js';
import type { SipCall } from '../../sip/call.js';
import { addTrunk, startSipApp, waitFor, type SipTestApp } from './helpers.js';
import { RawSip, RtpEnd, sdp } from './raw-client.js';

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m.filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, string>)[k] === x)).reduce((a, v) => a + v.value, 0);
}
const internal = (where: string) => metric('aybiza_internal_errors_total', { where });

/** Polls an async value until `cond` holds. */
async function until<T>(get: () => Promise<T>, cond: (v: T) => boolean, what: string, ms = 15_000): Promise<T> {
  let v: T | undefined;
  let busy = false;
  await waitFor(() => {
    if (v !== undefined && cond(v)) return true;
    if (!busy) {
      busy = true;
      void get().then((x) => ((v = x), (busy = false)));
    }
    return false;
  }, ms, what);
  return v!;
}

function callOn(t: SipTestApp, serverRtpPort: number): SipCall {
  const c = [...t.app.sip!.calls.values()].find((x) => x.o.rtp.localPort === serverRtpPort);
  if (!c) throw new Error(`no call on RTP port ${serverRtpPort}`);
  return c;
}

async function bye(c: RawSip, cseq: number): Promise<void> {
  c.send('BYE', cseq);
  await c.final(`${cseq} BYE`);
}

describe('SIP on the open internet (issue 13)', () => {
  let t: SipTestApp;
  const open: { close(): void }[] = [];
  beforeAll(async () => {
    // WORKERS=1 explicitly, whatever AYBIZA_TEST_WORKERS says: these tests reach into the
    // live SipCall objects (their RTP sessions, the UAS, their sessions) and make their
    // callbacks throw, and read this process's internal-error counters; with WORKERS > 1 the
    // calls' media lives in worker threads.
    t = await startSipApp({ WORKERS: '1' });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    for (const o of open) o.close();
    await t?.stop();
  });

  async function raw(o: Partial<ConstructorParameters<typeof RawSip>[0]> = {}): Promise<RawSip> {
    const c = new RawSip({ proto: 'udp', sipPort: t.sipPort, number: t.number, ...o });
    await c.open();
    open.push(c);
    return c;
  }
  async function rtpEnd(): Promise<RtpEnd> {
    const e = new RtpEnd();
    await e.open();
    open.push(e);
    return e;
  }

  // Item 5
  it('answers a TCP request on its own connection when the Via names another host and port without rport', async () => {
    const c = await raw({ proto: 'tcp', viaHost: '10.9.9.9:5999', rport: false });
    c.send('OPTIONS', 1);
    expect((await c.final('1 OPTIONS')).slice(0, 14)).toBe('SIP/2.0 200 OK');
    // A whole call on that connection: 100, 200 with SDP, then BYE → 200.
    const media = await rtpEnd();
    const { status, serverRtpPort } = await c.call(media.port);
    expect(status).toBe(200);
    expect(c.answers('1 INVITE').some((m) => m.startsWith('SIP/2.0 100'))).toBe(true);
    await waitFor(() => media.received > 0, 15_000, 'our RTP');
    // Our BYE (the agent hangs up) goes on the same connection too.
    await callOn(t, serverRtpPort).session!.end('agent ended the call');
    await waitFor(() => c.got.some((m) => m.startsWith('BYE ')), 10_000, 'our BYE on the connection');
    await waitFor(() => ![...t.app.sip!.calls.values()].some((x) => x.o.rtp.localPort === serverRtpPort), 10_000, 'call torn down');
  });

  // Item 6
  it('a re-INVITE moving media to a new port: RTP from the new port is accepted, ours goes there, the old port is refused', async () => {
    const c = await raw();
    const oldEnd = await rtpEnd();
    const newEnd = await rtpEnd();
    const { status, serverRtpPort } = await c.call(oldEnd.port);
    expect(status).toBe(200);
    await waitFor(() => oldEnd.received > 0, 15_000, 'our RTP at the first port');
    const rtp = callOn(t, serverRtpPort).o.rtp;
    oldEnd.send(serverRtpPort, 10);
    await waitFor(() => rtp.packetsIn >= 10, 10_000, 'RTP from the first port');
    const unexpected0 = rtp.unexpectedSource;

    c.send('INVITE', 2, { body: sdp(newEnd.port, 2) });
    const re = await c.final('2 INVITE');
    expect(re.slice(0, 14)).toBe('SIP/2.0 200 OK');
    c.send('ACK', 2);
    // Our RTP now arrives at the new port.
    await waitFor(() => newEnd.received > 5, 10_000, 'our RTP at the new port');
    // The caller's RTP from the new port is received, not counted as an unexpected source.
    const in0 = rtp.packetsIn;
    newEnd.send(serverRtpPort, 10);
    await waitFor(() => rtp.packetsIn >= in0 + 10, 10_000, 'RTP from the new port accepted');
    expect(rtp.unexpectedSource).toBe(unexpected0);
    // The old port is refused from now on, and our RTP does not go back there.
    const oldReceived = oldEnd.received;
    oldEnd.send(serverRtpPort, 5);
    await waitFor(() => rtp.unexpectedSource >= unexpected0 + 5, 10_000, 'old port refused');
    expect(rtp.packetsIn).toBe(in0 + 10);
    const newReceived = newEnd.received;
    await waitFor(() => newEnd.received > newReceived + 5, 10_000, 'more RTP at the new port');
    expect(oldEnd.received - oldReceived).toBeLessThanOrEqual(1); // at most one in flight at the switch
    await bye(c, 3);
  });

  it('a re-INVITE without SDP gets our description as the offer; the answer in its ACK moves the media', async () => {
    const c = await raw();
    const oldEnd = await rtpEnd();
    const newEnd = await rtpEnd();
    const { status, serverRtpPort } = await c.call(oldEnd.port);
    expect(status).toBe(200);
    await waitFor(() => oldEnd.received > 0, 15_000, 'our RTP at the first port');
    c.send('INVITE', 2);
    const re = await c.final('2 INVITE');
    expect(re.slice(0, 14)).toBe('SIP/2.0 200 OK');
    expect(re).toMatch(new RegExp(`^m=audio ${serverRtpPort} RTP/AVP`, 'm'));
    c.send('ACK', 2, { body: sdp(newEnd.port, 2) });
    await waitFor(() => newEnd.received > 5, 10_000, 'our RTP at the port the ACK\'s answer names');
    await bye(c, 3);
  });

  it('an UPDATE (RFC 3311) moving media re-latches the same way; an UPDATE outside any dialog gets 481', async () => {
    const c = await raw();
    const oldEnd = await rtpEnd();
    const newEnd = await rtpEnd();
    const { status, serverRtpPort } = await c.call(oldEnd.port);
    expect(status).toBe(200);
    await waitFor(() => oldEnd.received > 0, 15_000, 'our RTP at the first port');
    const rtp = callOn(t, serverRtpPort).o.rtp;
    oldEnd.send(serverRtpPort, 5);
    await waitFor(() => rtp.packetsIn >= 5, 10_000, 'RTP from the first port');
    const unexpected0 = rtp.unexpectedSource;
    c.send('UPDATE', 2, { body: sdp(newEnd.port, 2) });
    const up = await c.final('2 UPDATE');
    expect(up.slice(0, 14)).toBe('SIP/2.0 200 OK');
    expect(up).toMatch(new RegExp(`^m=audio ${serverRtpPort} RTP/AVP 0 101`, 'm'));
    await waitFor(() => newEnd.received > 5, 10_000, 'our RTP at the new port');
    const in0 = rtp.packetsIn;
    newEnd.send(serverRtpPort, 5);
    await waitFor(() => rtp.packetsIn >= in0 + 5, 10_000, 'RTP from the new port accepted');
    oldEnd.send(serverRtpPort, 3);
    await waitFor(() => rtp.unexpectedSource >= unexpected0 + 3, 10_000, 'old port refused');
    await bye(c, 3);

    const stranger = await raw();
    stranger.toTag = ';tag=nosuchdialog';
    stranger.send('UPDATE', 1, { body: sdp(newEnd.port, 1) });
    expect((await stranger.final('1 UPDATE')).slice(0, 11)).toBe('SIP/2.0 481');
  });

  // Item 11
  it('two INVITEs with one Call-ID and different From-tags are two calls; the first call\'s turns are untouched', async () => {
    const callId = `dup-${Date.now()}@127.0.0.1`;
    const a = await raw({ callId, fromTag: 'first' });
    const ea = await rtpEnd();
    const first = await a.call(ea.port);
    expect(first.status).toBe(200);
    await waitFor(() => ea.received > 10, 15_000, 'first call media');
    const firstId = [...t.app.sip!.calls.entries()].find(([, x]) => x.o.rtp.localPort === first.serverRtpPort)![0];
    await t.app.store.calls.addTurn(firstId, { seq: 100, userText: 'first caller', assistantText: 'first answer', interrupted: false, latencies: {} });
    const turnsBefore = (await t.app.store.calls.detail(null, firstId)).turns;

    // A second dialog (another From-tag) reusing the Call-ID, while the first is still up.
    const b = await raw({ callId, fromTag: 'second' });
    const eb = await rtpEnd();
    const second = await b.call(eb.port);
    expect(second.status).toBe(200);
    await waitFor(() => eb.received > 10, 15_000, 'second call media');
    const secondId = [...t.app.sip!.calls.entries()].find(([, x]) => x.o.rtp.localPort === second.serverRtpPort)![0];
    expect(secondId).not.toBe(firstId);
    await t.app.store.calls.addTurn(secondId, { seq: 100, userText: 'second caller', assistantText: 'second answer', interrupted: false, latencies: {} });
    await bye(b, 2);
    await bye(a, 2);

    const rows = (await t.app.store.calls.list(null, 100)).items.filter((r) => r.transport === 'sip' && r.externalId === callId);
    expect(rows.map((r) => r.id).sort()).toEqual([firstId, secondId].sort());
    expect(rows.every((r) => r.tenantId === t.tenantId)).toBe(true);
    expect((await t.app.store.calls.detail(null, firstId)).turns).toEqual(turnsBefore);
    expect((await t.app.store.calls.detail(null, secondId)).turns.map((x) => x.userText)).toEqual(['second caller']);
    // The lookup by external id picks the newest call.
    expect((await t.app.store.calls.findCall('sip', callId))!.id).toBe(secondId);
  });

  it('a Twilio CallSid stays one call: a repeated voice webhook returns the same row, status callbacks find it', async () => {
    const sid = `CA${'0123456789abcdef'.repeat(2)}`;
    const c = { tenantId: t.tenantId, agentId: t.agentId, agentVersion: 1, transport: 'twilio' as const, externalId: sid, from: '+15550001111', to: t.number, status: 'ringing' };
    const one = await t.app.store.calls.createCall(c);
    const two = await t.app.store.calls.createCall(c);
    expect(two.id).toBe(one.id);
    expect((await t.app.store.calls.findCall('twilio', sid))!.id).toBe(one.id);
  });

  // Item 1
  it('a SIP message whose handling throws is dropped and counted (UDP and TCP); the server keeps answering', async () => {
    const uas = (t.app.sip as unknown as { uas: { receive(text: string, src: unknown): void } }).uas;
    const receive = uas.receive.bind(uas);
    uas.receive = (text, src) => {
      if (text.includes('X-Provoke: throw')) throw new Error('provoked failure');
      receive(text, src);
    };
    try {
      const provoke = (s: string) => s.replace('Max-Forwards: 70', 'Max-Forwards: 70\r\nX-Provoke: throw');
      for (const proto of ['udp', 'tcp'] as const) {
        const where = proto === 'udp' ? 'sip_udp' : 'sip_tcp';
        const before = await internal(where);
        const c = await raw({ proto });
        c.send('OPTIONS', 1, { raw: provoke });
        await until(() => internal(where), (v) => v === before + 1, `internal error counted (${where})`);
        // Nothing answered the provoked message; the next one (same socket/connection) is answered.
        c.send('OPTIONS', 2);
        expect((await c.final('2 OPTIONS')).slice(0, 14)).toBe('SIP/2.0 200 OK');
        expect(c.answers('1 OPTIONS')).toEqual([]);
      }
    } finally {
      uas.receive = receive;
    }
  });

  it('a failing RTP handler drops the packet, a failing clock tick ends only its call, a failing re-INVITE gets 500; another call goes on', async () => {
    const ca = await raw();
    const cb = await raw();
    const ea = await rtpEnd();
    const eb = await rtpEnd();
    const A = await ca.call(ea.port);
    const B = await cb.call(eb.port);
    expect([A.status, B.status]).toEqual([200, 200]);
    await waitFor(() => ea.received > 0 && eb.received > 0, 15_000, 'media on both calls');
    const callA = callOn(t, A.serverRtpPort);
    const callB = callOn(t, B.serverRtpPort);

    // RTP: the packet handler throws → that packet is dropped and counted as where="rtp".
    const rtpA = callA.o.rtp as unknown as { onPacket(...a: unknown[]): void };
    const onPacket = rtpA.onPacket.bind(rtpA);
    rtpA.onPacket = () => {
      throw new Error('provoked RTP failure');
    };
    const rtpBefore = await internal('rtp');
    ea.send(A.serverRtpPort, 3);
    await until(() => internal('rtp'), (v) => v === rtpBefore + 3, 'RTP failures counted');
    rtpA.onPacket = onPacket;
    ea.send(A.serverRtpPort, 3);
    await waitFor(() => callA.o.rtp.packetsIn >= 3, 10_000, 'RTP accepted again');

    // re-INVITE: the handler throws → 500 to that re-INVITE; the call stays up.
    const media = callA.o.media as unknown as { reinvite(b?: string): string | null };
    const reinvite = media.reinvite.bind(media);
    media.reinvite = () => {
      throw new Error('provoked re-INVITE failure');
    };
    const sipBefore = await internal('sip');
    ca.send('INVITE', 2, { body: sdp(ea.port, 2) });
    expect((await ca.final('2 INVITE')).slice(0, 11)).toBe('SIP/2.0 500');
    ca.send('ACK', 2);
    media.reinvite = reinvite;
    expect(await internal('sip')).toBeGreaterThan(sipBefore);
    expect(callA.isClosed).toBe(false);

    // Clock tick: call A's tick throws → call A ends with our BYE; call B keeps its media and its dialog.
    const timerBefore = await internal('timer');
    (callA.o.rtp as unknown as { pop(): unknown }).pop = () => {
      throw new Error('provoked tick failure');
    };
    await waitFor(() => ca.got.some((m) => m.startsWith('BYE ')), 10_000, 'our BYE to call A');
    expect(callA.isClosed).toBe(true);
    expect(await internal('timer')).toBeGreaterThan(timerBefore);
    const bReceived = eb.received;
    await waitFor(() => eb.received > bReceived + 25, 10_000, 'call B media continues');
    expect(callB.isClosed).toBe(false);
    await bye(cb, 2);
  });
});

// Item 15
describe('SIP setup failures release their RTP ports', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    // One RTP port pair in the whole range: a leaked pair means the next call gets 503.
    const min = 30000 + 2 * Math.floor(Math.random() * 5000);
    // WORKERS=1 explicitly: the faults are injected into this thread's store and state, and
    // the RTP ports counted are this thread's (with WORKERS > 1 a worker binds them).
    t = await startSipApp({ RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 2), WORKERS: '1' });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function attempt(): Promise<{ c: RawSip; status: number; serverRtpPort: number }> {
    const c = new RawSip({ proto: 'udp', sipPort: t.sipPort, number: t.number });
    await c.open();
    return { c, ...(await c.call(9)) };
  }

  it('the call record insert fails after the ports are bound: 500, the ports are free, the next call is answered', async () => {
    const store = t.app.store.calls;
    const createCall = store.createCall.bind(store);
    store.createCall = async () => {
      throw new Error('database down');
    };
    let r;
    try {
      r = await attempt();
    } finally {
      store.createCall = createCall;
    }
    r.c.close();
    expect(r.status).toBe(500);
    await waitFor(() => boundRtpPorts() === 0, 10_000, 'RTP ports released');
    const ok = await attempt();
    expect(ok.status).toBe(200);
    await bye(ok.c, 2);
    ok.c.close();
    await waitFor(() => boundRtpPorts() === 0 && t.app.sip!.calls.size === 0, 10_000, 'idle again');
  });

  it('a failure after the 200 (registering the call) ends that call with BYE and frees its ports', async () => {
    const state = t.app.store.state;
    const registerCall = state.registerCall.bind(state);
    state.registerCall = async () => {
      throw new Error('redis down');
    };
    let r;
    try {
      r = await attempt();
      await waitFor(() => r!.c.got.some((m) => m.startsWith('BYE ')), 10_000, 'our BYE');
    } finally {
      state.registerCall = registerCall;
    }
    r.c.close();
    expect(r.status).toBe(200);
    await waitFor(() => boundRtpPorts() === 0 && t.app.sip!.calls.size === 0, 10_000, 'RTP ports released');
    const ok = await attempt();
    expect(ok.status).toBe(200);
    await bye(ok.c, 2);
    ok.c.close();
  });
});
