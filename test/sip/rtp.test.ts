// RtpSession on real sockets: outbound header fields, PCMA conversion,
// symmetric latching, RFC 4733 de-duplication, and the jitter buffer feed.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { allocateRtpPorts, RtpSession } from '../../sip/rtp.js';
import { alawToUlaw } from '../../src/media/g711.js';
import { parseRtp, waitFor, type RtpPacket } from './helpers.js';

async function udp(): Promise<{ s: dgram.Socket; port: number; got: RtpPacket[] }> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const got: RtpPacket[] = [];
  s.on('message', (b, r) => {
    const p = parseRtp(b, r);
    if (p) got.push(p);
  });
  return { s, port: s.address().port, got };
}

function packet(pt: number, seq: number, ts: number, ssrc: number, payload: Uint8Array, marker = false): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = pt | (marker ? 0x80 : 0);
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(ssrc, 8);
  b.set(payload, 12);
  return b;
}

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

async function session(codec: 'pcmu' | 'pcma', peerPort: number, digits: string[] = []) {
  const min = 40000 + 2 * Math.floor(Math.random() * 5000);
  const ports = (await allocateRtpPorts('127.0.0.1', min, min + 200))!;
  const rtp = new RtpSession({
    rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec, pt: codec === 'pcmu' ? 0 : 8, dtmfPt: 101,
    remote: { address: '127.0.0.1', port: peerPort }, latchFrom: ['127.0.0.1'], onDigit: (d) => digits.push(d),
  });
  open.push(rtp);
  return rtp;
}

describe('RtpSession', () => {
  it('allocates an even port with RTCP on the next one', async () => {
    const p = (await allocateRtpPorts('127.0.0.1', 41001, 41101))!;
    expect(p.port % 2).toBe(0);
    expect(p.rtcp.address().port).toBe(p.port + 1);
    p.rtp.close();
    p.rtcp.close();
  });

  it('sends RTP with one SSRC, consecutive sequence numbers, +160 timestamps and a marker on the first packet; PCMA is converted', async () => {
    const peer = await udp();
    open.push(peer.s);
    const rtp = await session('pcma', peer.port);
    const silence = new Uint8Array(160).fill(0xff);
    for (let i = 0; i < 5; i++) rtp.send(silence);
    await waitFor(() => peer.got.length === 5, 5000, 'five packets');
    const g = peer.got;
    expect(g.map((p) => p.marker)).toEqual([true, false, false, false, false]);
    expect(g.every((p) => p.pt === 8 && p.ssrc === rtp.ssrcOut && p.payload.every((b) => b === 0xd5))).toBe(true);
    for (let i = 1; i < 5; i++) {
      expect((g[i]!.seq - g[i - 1]!.seq) & 0xffff).toBe(1);
      expect((g[i]!.ts - g[i - 1]!.ts) >>> 0).toBe(160);
    }
    expect(g[0]!.from.port).toBe(rtp.localPort);
  });

  it('feeds the jitter buffer from the latched source only (A-law in → μ-law out) and counts other sources', async () => {
    const peer = await udp();
    const intruder = await udp();
    open.push(peer.s, intruder.s);
    const rtp = await session('pcmu', peer.port);
    const alawSilence = new Uint8Array(160).fill(0xd5);
    for (let i = 0; i < 10; i++) peer.s.send(packet(8, 100 + i, 16000 + 160 * i, 7, alawSilence), rtp.localPort, '127.0.0.1');
    await waitFor(() => rtp.packetsIn === 10, 5000, 'ten packets in');
    for (let i = 0; i < 5; i++) intruder.s.send(packet(0, 500 + i, 0, 9, alawSilence), rtp.localPort, '127.0.0.1');
    await waitFor(() => rtp.unexpectedSource === 5, 5000, 'intruder counted');
    expect(rtp.stats().received).toBe(10);
    let frame = null;
    for (let t = 0; t < 50 && !frame; t++) frame = rtp.pop(performance.now() + t * 20);
    expect(frame).not.toBeNull();
    const expected = alawToUlaw(Uint8Array.of(0xd5))[0];
    expect(frame!.payload.every((b) => b === expected)).toBe(true);
  });

  it('reports each RFC 4733 event once: updates and the three end packets share a timestamp', async () => {
    const peer = await udp();
    open.push(peer.s);
    const digits: string[] = [];
    const rtp = await session('pcmu', peer.port, digits);
    const ev = (event: number, end: boolean, duration: number) => Uint8Array.of(event, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);
    let seq = 7000;
    for (const [event, ts] of [[5, 80000], [11, 82400]] as const) {
      for (let i = 1; i <= 7; i++) peer.s.send(packet(101, seq++, ts, 3, ev(event, false, 320 * i), i === 1), rtp.localPort, '127.0.0.1');
      for (let i = 0; i < 3; i++) peer.s.send(packet(101, seq, ts, 3, ev(event, true, 2240)), rtp.localPort, '127.0.0.1');
      seq++;
    }
    await waitFor(() => rtp.packetsIn === 20, 5000, 'all event packets');
    expect(digits).toEqual(['5', '#']);
  });

  it('sends an RTCP sender report (with a block on the caller\'s stream) and SDES CNAME to the peer\'s RTP port + 1 every 5 s', async () => {
    const peerRtcp = dgram.createSocket('udp4');
    open.push(peerRtcp);
    // The peer's RTP port is even so its RTCP port (+1) can be bound here.
    let base = 0;
    for (let p = 44000 + 2 * Math.floor(Math.random() * 2000); !base; p += 2) {
      base = await new Promise<number>((resolve) => {
        peerRtcp.once('error', () => resolve(0));
        peerRtcp.bind(p + 1, '127.0.0.1', () => resolve(p));
      }).catch(() => 0);
    }
    const reports: Buffer[] = [];
    peerRtcp.on('message', (b) => reports.push(b));
    const rtp = await session('pcmu', base);
    // One packet from the peer first, so the report carries a block about it.
    const caller = dgram.createSocket('udp4');
    open.push(caller);
    await new Promise<void>((r) => caller.bind(base, '127.0.0.1', () => r()));
    caller.send(packet(0, 4242, 1000, 0xabcdef01, new Uint8Array(160).fill(0xff)), rtp.localPort, '127.0.0.1');
    await waitFor(() => rtp.packetsIn === 1, 5000, 'the caller\'s packet');
    rtp.send(new Uint8Array(160).fill(0xff));
    rtp.maybeSendRtcp(performance.now()); // too early: nothing
    rtp.maybeSendRtcp(performance.now() + 5001);
    await waitFor(() => reports.length === 1, 5000, 'a sender report');
    const sr = reports[0]!;
    expect(sr[0]! >> 6).toBe(2);
    expect(sr[1]).toBe(200);
    expect(sr.readUInt32BE(4)).toBe(rtp.ssrcOut);
    expect(sr.readUInt32BE(20)).toBe(1); // packets sent
    expect(sr[0]! & 0x1f).toBe(1); // one report block: the caller's stream
    expect(sr.readUInt32BE(28)).toBe(0xabcdef01);
    expect(sr.readUInt32BE(36)).toBe(4242); // highest sequence number received
    const sdes = 4 * (sr.readUInt16BE(2) + 1);
    expect(sr[sdes + 1]).toBe(202);
    expect(sr.subarray(sdes + 10, sdes + 16).toString()).toBe('aybiza');
  });

  it('sends digits as RFC 4733 events: one timestamp per event, growing duration, marker first, three end packets', async () => {
    const peer = await udp();
    open.push(peer.s);
    const rtp = await session('pcmu', peer.port);
    expect(rtp.sendDigits('1#')).toBe(true);
    expect(rtp.sendDigits('x')).toBe(false);
    for (let i = 0; i < 40; i++) rtp.tickDigits();
    await waitFor(() => peer.got.length === 20, 5000, 'twenty event packets');
    const g = peer.got;
    expect(g.every((p) => p.pt === 101 && p.payload.length === 4)).toBe(true);
    for (let i = 1; i < g.length; i++) expect((g[i]!.seq - g[i - 1]!.seq) & 0xffff).toBe(1);
    const [one, hash] = [g.slice(0, 10), g.slice(10)];
    for (const [ev, code] of [[one, 1], [hash, 11]] as const) {
      expect(new Set(ev.map((p) => p.ts)).size).toBe(1);
      expect(ev.map((p) => p.payload[0])).toEqual(Array(10).fill(code));
      expect(ev.map((p) => p.marker)).toEqual([true, ...Array(9).fill(false)]);
      expect(ev.map((p) => p.payload.readUInt16BE(2))).toEqual([160, 320, 480, 640, 800, 960, 1120, 1280, 1280, 1280]);
      expect(ev.map((p) => (p.payload[1]! & 0x80) !== 0)).toEqual([...Array(7).fill(false), true, true, true]);
    }
    expect((hash[0]!.ts - one[0]!.ts) >>> 0).toBeGreaterThanOrEqual(8 * 160);
  });

  it('a session without telephone-event cannot send digits', async () => {
    const peer = await udp();
    open.push(peer.s);
    const min = 40000 + 2 * Math.floor(Math.random() * 5000);
    const ports = (await allocateRtpPorts('127.0.0.1', min, min + 200))!;
    const rtp = new RtpSession({ rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: 'pcmu', pt: 0, dtmfPt: null, remote: { address: '127.0.0.1', port: peer.port }, latchFrom: [], onDigit: () => {} });
    open.push(rtp);
    expect(rtp.sendDigits('1')).toBe(false);
  });
});
