// Call quality on SIP calls (issue 19, need 3): the caller's RTCP report
// blocks give the round trip and our outbound loss (RtpSession level), and a
// SIPp call with induced packet loss stores a `quality` that shows the loss
// and rates lower than a clean call; GET /v1/calls/{id} shows it and
// aybiza_call_mos observes it.
import dgram from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { allocateRtpPorts, RtpSession } from '../../sip/rtp.js';
import type { CallQuality } from '../../src/media/quality.js';
import { scrapeMetric } from '../helpers/app.js';
import { addTrunk, RtpPeer, sipp, speechFrames, startSipApp, waitFor, type SipTestApp } from './helpers.js';

const ADMIN_KEY = 'test-admin-key-quality-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An RTCP receiver report with one block on `ssrc`. */
function receiverReport(ssrc: number, lost: number, highestSeq: number, lsr: number, dlsr: number, jitter = 80): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x81;
  b[1] = 201;
  b.writeUInt16BE(7, 2);
  b.writeUInt32BE(0x5eed5eed, 4);
  b.writeUInt32BE(ssrc, 8);
  b.writeUIntBE(lost, 13, 3);
  b.writeUInt32BE(highestSeq, 16);
  b.writeUInt32BE(jitter, 20);
  b.writeUInt32BE(lsr, 24);
  b.writeUInt32BE(dlsr, 28);
  return b;
}

describe('RtpSession measurements', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const o of open.splice(0)) o.close();
  });

  it('a receiver report answering our sender report gives the round trip and the loss of our stream; a forged LSR gives none', async () => {
    // The caller: RTP on an even port, RTCP on the next.
    const rtcpSock = dgram.createSocket('udp4');
    const rtpSock = dgram.createSocket('udp4');
    open.push(rtcpSock, rtpSock);
    let base = 0;
    for (let p = 46000 + 2 * Math.floor(Math.random() * 2000); !base; p += 2) {
      base = await new Promise<number>((resolve) => {
        rtcpSock.once('error', () => resolve(0));
        rtcpSock.bind(p + 1, '127.0.0.1', () => resolve(p));
      });
    }
    await new Promise<void>((r) => rtpSock.bind(base, '127.0.0.1', () => r()));
    const seqs: number[] = [];
    rtpSock.on('message', (b) => seqs.push(b.readUInt16BE(2)));
    const reports: Buffer[] = [];
    rtcpSock.on('message', (b) => reports.push(b));
    const min = 42000 + 2 * Math.floor(Math.random() * 2000);
    const ports = (await allocateRtpPorts('127.0.0.1', min, min + 200))!;
    const rtp = new RtpSession({
      rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: 'pcmu', pt: 0, dtmfPt: null,
      remote: { address: '127.0.0.1', port: base }, latchFrom: ['127.0.0.1'], onDigit: () => {},
    });
    open.push(rtp);
    for (let i = 0; i < 100; i++) rtp.send(new Uint8Array(160).fill(0xff));
    await waitFor(() => seqs.length === 100, 5000, 'our 100 packets');
    rtp.maybeSendRtcp(performance.now() + 5001);
    await waitFor(() => reports.length === 1, 5000, 'our sender report');
    const sr = reports[0]!;
    const lsr = ((sr.readUInt32BE(8) & 0xffff) << 16 | sr.readUInt32BE(12) >>> 16) >>> 0;
    // Held 300 ms at the caller, of which it reports 100 ms (DLSR, 1/65536 s): a round trip of at least 200 ms.
    await sleep(300);
    const last = seqs[99]!;
    // A block with an LSR we never sent: believed for loss, not for a round trip.
    rtcpSock.send(receiverReport(rtp.ssrcOut, 9, last, (lsr + 12345) >>> 0, 0), ports.port + 1, '127.0.0.1');
    await sleep(100);
    expect(rtp.quality().rttMs).toBeNull();
    rtcpSock.send(receiverReport(rtp.ssrcOut, 5, last, lsr, 6554), ports.port + 1, '127.0.0.1');
    await waitFor(() => rtp.quality().rttMs !== null, 5000, 'a round trip');
    const q = rtp.quality();
    expect(q.rttMs).toBeGreaterThanOrEqual(200);
    expect(q.rttMs).toBeLessThan(5000);
    expect(q.outbound).toMatchObject({ lossPercent: 5, burstR: 1, packets: { expected: 100, lost: 5 }, remoteJitterMs: 10 });
    expect(q.outbound!.delay.networkSource).toBe('rtcp');
    expect(q.outbound!.delay.networkMs).toBe(Math.round((q.rttMs! / 2) * 10) / 10);
    // No caller audio: inbound is not measured; the call is rated by the outbound direction.
    expect(q.inbound).toBeNull();
    expect(q.mos).toBe(q.outbound!.mos);
  });

  it('RFC 4733 events take sequence numbers without being audio loss; a skipped number is', async () => {
    const caller = dgram.createSocket('udp4');
    open.push(caller);
    await new Promise<void>((r) => caller.bind(0, '127.0.0.1', () => r()));
    const min = 42000 + 2 * Math.floor(Math.random() * 2000);
    const ports = (await allocateRtpPorts('127.0.0.1', min, min + 200))!;
    const rtp = new RtpSession({
      rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: 'pcmu', pt: 0, dtmfPt: 101,
      remote: { address: '127.0.0.1', port: caller.address().port }, latchFrom: ['127.0.0.1'], onDigit: () => {},
    });
    open.push(rtp);
    const send = (pt: number, seq: number) => {
      const b = Buffer.alloc(pt === 101 ? 16 : 172, 0xff);
      b[0] = 0x80;
      b[1] = pt;
      b.writeUInt16BE(seq, 2);
      b.writeUInt32BE(8000 + 160 * seq, 4);
      b.writeUInt32BE(77, 8);
      if (pt === 101) b.writeUInt32BE(0x050a00a0, 12);
      caller.send(b, ports.port, '127.0.0.1');
    };
    for (let seq = 1; seq <= 30; seq++) {
      if (seq === 25) continue; // lost
      send(seq >= 11 && seq <= 14 ? 101 : 0, seq);
      await sleep(2);
    }
    await waitFor(() => rtp.packetsIn === 29, 5000, 'the caller\'s packets');
    expect(rtp.quality().inbound!.packets).toEqual({ expected: 30, missing: 1, bursts: 1 });
    // The jitter buffer's counters (media_stats) agree once it has played the stream through.
    const t0 = performance.now();
    for (let k = 0; k < 60; k++) rtp.pop(t0 + 20 * k);
    expect(rtp.stats()).toMatchObject({ lost: 1, late: 0, played: 25 });
  });
});

describe('quality of SIP calls', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp({ ADMIN_API_KEY: ADMIN_KEY });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** A SIPp call during which the caller streams `n` speech frames, skipping those `drop` names (their sequence numbers are lost). */
  async function call(n: number, drop: (i: number) => boolean): Promise<{ id: string; quality: CallQuality }> {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const known = new Set((await t.app.store.calls.list(null, 100)).items.map((c) => c.id));
    const run = sipp(t, 'uac_call.xml', { rtpPort, args: ['-d', String(n * 20 + 1500)] });
    await waitFor(() => peer.server !== null, 20_000, 'first RTP packet');
    const frames = speechFrames(n);
    const to = peer.server!;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      while (performance.now() - t0 < i * 20) await sleep(2);
      if (drop(i)) continue;
      const pkt = Buffer.alloc(172);
      pkt[0] = 0x80;
      pkt[1] = i === 0 ? 0x80 : 0;
      pkt.writeUInt16BE((3000 + i) & 0xffff, 2);
      pkt.writeUInt32BE(160_000 + 160 * i, 4);
      pkt.writeUInt32BE(0x1234abcd, 8);
      pkt.set(frames[i]!, 12);
      peer.socket.send(pkt, to.port, to.address);
    }
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const rec = (await t.app.store.calls.list(null, 100)).items.find((c) => c.transport === 'sip' && !known.has(c.id))!;
    expect(rec).toBeDefined();
    let quality: CallQuality | null = null;
    await waitFor(() => quality !== null || (void t.app.store.calls.findCall('sip', rec.externalId).then((c) => (quality = c?.quality ?? null)), false), 15_000, 'quality stored');
    return { id: rec.id, quality: quality! };
  }

  it('a call with 20 % of its packets lost in bursts of 4 stores that loss and rates lower than a clean call; GET /v1/calls/{id} and aybiza_call_mos show it', async () => {
    // The server's /metrics (every worker's series with AYBIZA_TEST_WORKERS > 1), not this process's registry.
    const mosCount = () => scrapeMetric(t.base, 'aybiza_call_mos_count');
    const before = await mosCount();
    const clean = await call(200, () => false);
    const lossy = await call(200, (i) => i % 20 >= 10 && i % 20 < 14);

    // Nothing dropped; a packet the jitter buffer found late on a loaded machine would count, hence not exactly 0.
    expect(clean.quality.inbound!.lossPercent).toBeLessThan(2);
    expect(clean.quality.inbound!.packets.expected).toBeGreaterThanOrEqual(190);
    expect(clean.quality.mos).toBeGreaterThan(4);

    const inbound = lossy.quality.inbound!;
    expect(inbound.packets.missing).toBeGreaterThanOrEqual(36);
    expect(inbound.lossPercent).toBeGreaterThan(17);
    expect(inbound.lossPercent).toBeLessThan(23);
    // Runs of 4 at 20 %: BurstR = 4 · (1 − 0.2) = 3.2 (src/media/loss-pattern.ts).
    expect(inbound.burstR).toBeGreaterThan(2.5);
    expect(inbound.jitterBuffer.received).toBeGreaterThan(100);
    expect(inbound.delay.networkSource).toBe('assumed'); // SIPp sends no RTCP
    expect(lossy.quality.outbound).toBeNull();
    expect(lossy.quality.mos!).toBeLessThan(clean.quality.mos! - 1);
    expect(lossy.quality.r!).toBeLessThan(clean.quality.r!);

    const res = await fetch(`${t.base}/v1/calls/${lossy.id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { quality: CallQuality };
    expect(body.quality).toEqual(lossy.quality);

    // Documented in the OpenAPI document.
    const doc = (await (await fetch(`${t.base}/v1/openapi.json`)).json()) as { paths: Record<string, any>; components: { schemas: Record<string, any> } };
    expect(doc.paths['/v1/calls/{id}'].get.responses['200'].content['application/json'].schema.properties.quality.$ref).toBe('#/components/schemas/CallQuality');
    expect(Object.keys(doc.components.schemas.CallQuality.properties)).toEqual(expect.arrayContaining(['r', 'mos', 'inbound', 'outbound']));

    expect(await mosCount()).toBe(before + 2);
    const text = await (await fetch(`${t.base}/metrics`)).text();
    expect(text).toMatch(/^# TYPE aybiza_call_mos histogram$/m);
    expect(text).toMatch(/^aybiza_call_mos_bucket\{le="3.6"\} \d+$/m);
    expect(Number(/^aybiza_call_mos_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
  });
});
