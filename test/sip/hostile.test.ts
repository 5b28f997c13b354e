// RFC 4475 torture messages (fixtures adapted in test/sip/fixtures/rfc4475)
// and random garbage on the SIP (UDP and TCP) and RTP ports, sent while a
// healthy SIPp call is up: every message is answered or dropped and counted,
// and the healthy call completes with audio both ways.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import { testWorkers } from '../helpers/spawn-server.js';
import { addTrunk, RtpPeer, sipp, speechFrames, startSipApp, waitFor, type SipTestApp } from './helpers.js';

const FIXTURES = path.resolve(__dirname, 'fixtures/rfc4475');

async function badInput(source: string): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_bad_input_total')?.get())?.values ?? [];
  return m.filter((v) => v.labels.source === source).reduce((a, v) => a + v.value, 0);
}
async function rtpEvent(event: string): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_rtp_packets_total')?.get())?.values ?? [];
  return m.filter((v) => v.labels.event === event).reduce((a, v) => a + v.value, 0);
}

/** Fills {{LEN}} with the body's byte length (the RFC's lengths were exact). */
function load(name: string): Buffer {
  const raw = fs.readFileSync(path.join(FIXTURES, name));
  const sep = raw.indexOf('\r\n\r\n');
  const body = raw.subarray(sep + 4);
  return Buffer.from(raw.subarray(0, sep + 4).toString('latin1').replace('{{LEN}}', String(body.length)), 'latin1').length
    ? Buffer.concat([Buffer.from(raw.subarray(0, sep + 4).toString('latin1').replace('{{LEN}}', String(body.length)), 'latin1'), body])
    : raw;
}

// What each fixture must get: a status code, or 'dropped' (no answer, counted as bad input).
const EXPECT: Record<string, number | 'dropped'> = {
  'wsinv.sip': 481, // valid but tortuous; a To-tag for a dialog we do not have
  'intmeth.sip': 405, // unknown method with legal but unusual tokens
  'esc01.sip': 404, // escaped R-URI user is no phone number
  'zeromf.sip': 483, // Max-Forwards 0
  'mismatch01.sip': 400, // CSeq method differs from the request method
  'insuf.sip': 'dropped', // no From/To/Call-ID: nothing to answer with
  'ncl.sip': 'dropped', // negative Content-Length
  'scalar02.sip': 400, // CSeq beyond 2^31
  'unksm2.sip': 'dropped', // To/From/Contact with non-SIP schemes
  'novelsc.sip': 416, // unknown Request-URI scheme
  'badvers.sip': 505, // SIP/7.0
  'ltgtruri.sip': 'dropped', // Request-URI in <>
  'inv2543.sip': 'dropped', // RFC 2543 INVITE without a branch
};

/** Random bytes that are not blank (a blank datagram is a keepalive, not garbage). */
function garbage(max: number): Buffer {
  const b = crypto.randomBytes(1 + crypto.randomInt(max));
  b[0] = 0x21 + (b[0]! % 0x5e);
  return b;
}

describe('SIP hostile input', () => {
  let t: SipTestApp;
  // WORKERS=1 explicitly for the torture test: it follows the healthy call's RTP session
  // (packets in, against this process's bad-input counters) and ends it from its session,
  // objects that live in a worker thread with AYBIZA_TEST_WORKERS > 1. The same app when the
  // suite runs one worker; SIP signalling (what the torture messages hit) is on the main thread either way.
  let inProcess: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp();
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
    if (testWorkers() === '1') inProcess = t;
    else {
      inProcess = await startSipApp({ WORKERS: '1' });
      await addTrunk(inProcess, { allowedCidrs: ['127.0.0.1/32'] });
    }
  });
  afterAll(async () => {
    await t?.stop();
    if (inProcess !== t) await inProcess?.stop();
  });

  it('answers or drops (and counts) torture messages and garbage while a healthy call continues', async () => {
    const t = inProcess;
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    // The healthy call lasts until we end it (the server's BYE), however long the abuse takes.
    const run = sipp(t, 'uac_server_bye.xml', { rtpPort, timeoutS: 90 });
    await waitFor(() => peer.packets.length > 0, 20_000, 'healthy call media');
    peer.stream(speechFrames(1500));

    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const answers: string[] = [];
    sock.on('message', (m) => answers.push(m.toString('latin1')));
    const outcomes: Record<string, number | 'dropped'> = {};
    // Answers are told apart by Call-ID: an INVITE's error answer is retransmitted until ACKed (Timer G).
    let callId = '';
    const finalCode = (from: number) => answers.slice(from).filter((a) => a.includes(callId)).map((a) => Number(/^SIP\/2\.0 (\d{3})/.exec(a)?.[1])).find((c) => c >= 200);
    for (const [name, expected] of Object.entries(EXPECT)) {
      const before = await badInput('sip');
      const n = answers.length;
      const msg = load(name);
      callId = /^(?:Call-ID|i)\s*:\s*(\S+)/im.exec(msg.toString('latin1'))?.[1] ?? '\u0000';
      sock.send(msg, t.sipPort, '127.0.0.1');
      if (expected === 'dropped') {
        let counted = false;
        await waitFor(() => counted || (void badInput('sip').then((v) => (counted = v > before)), false), 10_000, `a count for ${name}`);
        outcomes[name] = finalCode(n) ?? 'dropped';
      } else {
        await waitFor(() => finalCode(n) !== undefined, 10_000, `a final answer to ${name}`);
        outcomes[name] = finalCode(n)!;
      }
    }
    expect(outcomes).toEqual(EXPECT);

    // Random garbage: UDP datagrams and a TCP stream on the SIP port, datagrams on the RTP port.
    const sipBefore = await badInput('sip');
    // In batches, so the kernel's socket buffer never drops any: each one must be counted.
    for (let b = 0; b < 10; b++) {
      const at = await badInput('sip');
      for (let i = 0; i < 20; i++) sock.send(garbage(1400), t.sipPort, '127.0.0.1');
      let now = at;
      await waitFor(() => now >= at + 20 || (void badInput('sip').then((v) => (now = v)), false), 10_000, 'SIP garbage counted');
    }
    const tcp = net.connect(t.sipPort, '127.0.0.1');
    await new Promise<void>((r) => tcp.once('connect', () => r()));
    tcp.write(crypto.randomBytes(4000));
    tcp.write('INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bKx\r\n\r\n'); // no Content-Length on a stream
    await waitFor(() => tcp.destroyed || tcp.readableEnded, 10_000, 'TCP garbage connection closed');
    tcp.destroy();
    const rtpTarget = peer.server!;
    const intruder = dgram.createSocket('udp4');
    await new Promise<void>((r) => intruder.bind(0, '127.0.0.1', () => r()));
    for (let b = 0; b < 10; b++) {
      const at = await badInput('rtp');
      for (let i = 0; i < 20; i++) intruder.send(garbage(300), rtpTarget.port, rtpTarget.address);
      let now = at;
      await waitFor(() => now >= at + 20 || (void badInput('rtp').then((v) => (now = v)), false), 10_000, 'RTP garbage counted');
    }
    // Well-formed RTP from a port that is not the caller's: dropped as an unexpected source.
    const unexpectedBefore = await rtpEvent('unexpected_source');
    const fake = Buffer.alloc(172);
    fake[0] = 0x80;
    for (let i = 0; i < 20; i++) intruder.send(fake, rtpTarget.port, rtpTarget.address);
    let unexpectedNow = unexpectedBefore;
    await waitFor(() => unexpectedNow >= unexpectedBefore + 20 || (void rtpEvent('unexpected_source').then((v) => (unexpectedNow = v)), false), 10_000, 'unexpected RTP source counted');
    expect(await badInput('sip')).toBeGreaterThanOrEqual(sipBefore + 201);
    intruder.close();
    sock.close();

    // Mangled RTP from the caller's own (latched) address: odd header bits, payload types,
    // sizes, sequence and timestamp jumps, all into the jitter buffer's path.
    const rtpCall = [...t.app.sip!.calls.values()][0]!;
    for (let b = 0; b < 10; b++) {
      const at = rtpCall.o.rtp.packetsIn + (await badInput('rtp'));
      for (let i = 0; i < 20; i++) {
        const p = crypto.randomBytes(12 + [0, 4, 80, 160, 160, 240, 1600][crypto.randomInt(7)]!);
        p[0] = 0x80 | (p[0]! & 0x3f);
        p[1] = [0, 8, 101, 13, 96, 0x80][crypto.randomInt(6)]!;
        peer.socket.send(p, rtpTarget.port, rtpTarget.address);
      }
      let now = at;
      await waitFor(() => now >= at + 20 || (void badInput('rtp').then((v) => (now = rtpCall.o.rtp.packetsIn + v)), false), 10_000, 'mangled RTP handled');
    }

    // The healthy call is still up, with the agent's audio and ours both flowing; it ends normally.
    expect(t.app.sip!.calls.size).toBe(1);
    const call = [...t.app.sip!.calls.values()][0]!;
    await waitFor(() => call.o.rtp.packetsIn >= 100, 20_000, 'the caller\'s audio received');
    await waitFor(() => peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length > 50, 20_000, 'the agent\'s greeting');
    await call.session!.end('test done');
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    expect(peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length).toBeGreaterThan(50);
    expect(peer.packets.every((p) => p.from.port === rtpTarget.port)).toBe(true);
    // And the server still answers.
    expect((await sipp(t, 'options.xml')).code).toBe(0);
  });

  it('survives mutated INVITE, OPTIONS and BYE messages (seeded byte flips) and keeps answering', async () => {
    let seed = 4475;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    const got: string[] = [];
    sock.on('message', (m) => got.push(m.toString('latin1')));
    const msg = (method: string, i: number, body = '') => Buffer.from([
      `${method} sip:+19995550123@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-fuzz-${i};rport`,
      `From: <sip:+15550001111@127.0.0.1:${port}>;tag=f${i}`, `To: <sip:+19995550123@127.0.0.1>${method === 'BYE' ? ';tag=x' : ''}`,
      `Call-ID: fuzz-${i}@127.0.0.1`, `CSeq: 1 ${method}`, `Contact: <sip:+15550001111@127.0.0.1:${port}>`, 'Max-Forwards: 70',
      ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${body.length}`, '', body,
    ].join('\r\n'), 'latin1');
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n';
    const CHARS = Buffer.from(' \t\r\n:;,<>"=@/\\0aZ9%\x00\xff', 'latin1');
    for (let batch = 0; batch < 15; batch++) {
      for (let k = 0; k < 20; k++) {
        const i = batch * 20 + k;
        const m = [msg('INVITE', i, sdp), msg('OPTIONS', i), msg('BYE', i)][i % 3]!;
        for (let f = 1 + rand(5); f > 0; f--) m[rand(m.length)] = rand(2) ? CHARS[rand(CHARS.length)]! : rand(256);
        sock.send(m, t.sipPort, '127.0.0.1');
      }
      // Messages on one socket are handled in order: once this ping is answered, the batch is through.
      const ping = msg('OPTIONS', 100_000 + batch);
      sock.send(ping, t.sipPort, '127.0.0.1');
      await waitFor(() => got.some((a) => a.startsWith('SIP/2.0 200') && a.includes(`fuzz-${100_000 + batch}@`)), 10_000, `ping after batch ${batch}`);
    }
    sock.close();
    expect((await sipp(t, 'options.xml')).code).toBe(0);
  });
});
