// RtcpFeedback (sip/rtcp.ts) on hostile input: truncated, lying and random
// compound packets, many with report blocks on our own SSRC (which the
// network fuzzer, not knowing the SSRC, rarely reaches). It never throws and
// never believes an impossible figure.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ntpMiddle32, ntpSeconds, RtcpFeedback } from '../../sip/rtcp.js';

const OUR_SSRC = 0xdeadbeef;
const FIRST_SEQ = 65_000;

function report(pt: number, blocks: Buffer[]): Buffer {
  const head = Buffer.alloc(pt === 200 ? 28 : 8);
  head[0] = 0x80 | blocks.length;
  head[1] = pt;
  head.writeUInt16BE((head.length + 24 * blocks.length) / 4 - 1, 2);
  return Buffer.concat([head, ...blocks]);
}

function block(fields: { lost: number; highest: number; lsr: number; dlsr: number; jitter?: number }, ssrc = OUR_SSRC): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32BE(ssrc, 0);
  b.writeIntBE(fields.lost, 5, 3);
  b.writeUInt32BE(fields.highest >>> 0, 8);
  b.writeUInt32BE(fields.jitter ?? 0, 12);
  b.writeUInt32BE(fields.lsr >>> 0, 16);
  b.writeUInt32BE(fields.dlsr >>> 0, 20);
  return b;
}

describe('RtcpFeedback', () => {
  it('reads a block in an SR or an RR, after other packets of a compound; ignores blocks on other SSRCs and negative or excessive loss', () => {
    const fb = new RtcpFeedback(OUR_SSRC, FIRST_SEQ);
    const now = Date.now();
    fb.sentReport(ntpSeconds(now - 250));
    const lsr = ntpMiddle32(ntpSeconds(now - 250));
    // 2^16 + 1000 - 65000 + 1 = 1537 expected across the wrap, 20 lost.
    const rr = report(201, [block({ lost: 7, highest: 0, lsr: 0, dlsr: 0 }, 0x1111), block({ lost: 20, highest: 0x10000 + 1000, lsr, dlsr: 65536 / 20, jitter: 160 })]);
    fb.receive(Buffer.concat([report(200, []), rr]), now);
    expect(fb.remote).toEqual({ expected: 1537, lost: 20, lossPercent: (100 * 20) / 1537, jitterMs: 20 });
    expect(fb.rttMs).toBeGreaterThan(199);
    expect(fb.rttMs).toBeLessThan(201);
    fb.receive(report(201, [block({ lost: -3, highest: 0x10000 + 1100, lsr: 0, dlsr: 0 })]), now);
    fb.receive(report(201, [block({ lost: 5000, highest: 0x10000 + 1100, lsr: 0, dlsr: 0 })]), now);
    expect(fb.remote!.lost).toBe(20);
    // A DLSR longer than the time since our report: the round trip would be negative, so it is not believed.
    fb.receive(report(201, [block({ lost: 20, highest: 0x10000 + 1000, lsr, dlsr: 65536 })]), now);
    expect(fb.rttMs).toBeGreaterThan(199);
    expect(fb.rttMs).toBeLessThan(201);
  });

  it('survives 20,000 mutated and random compound packets with figures that stay possible', () => {
    const fb = new RtcpFeedback(OUR_SSRC, FIRST_SEQ);
    const now = Date.now();
    for (let i = 0; i < 4; i++) fb.sentReport(ntpSeconds(now - 1000 * i));
    const lsrs = [0, 1, 2, 3].map((i) => ntpMiddle32(ntpSeconds(now - 1000 * i)));
    const rand = (n: number) => crypto.randomInt(n);
    const impossible: unknown[] = [];
    for (let i = 0; i < 20_000; i++) {
      const blocks = Array.from({ length: rand(4) }, () => block({
        lost: rand(1 << 23) - (rand(2) ? 0 : 1 << 22), highest: rand(2 ** 32), lsr: rand(3) === 0 ? lsrs[rand(4)]! : rand(2 ** 32), dlsr: rand(2) ? rand(65536) : rand(2 ** 32), jitter: rand(2 ** 32),
      }, rand(4) ? OUR_SSRC : rand(2 ** 32)));
      let pkt = Buffer.concat([report(rand(2) ? 200 : 201, blocks), ...(rand(3) === 0 ? [report(201, [])] : [])]);
      const how = rand(5);
      if (how === 1) pkt = pkt.subarray(0, rand(pkt.length + 1)); // truncated
      else if (how === 2) pkt.writeUInt16BE(rand(65536), 2 + 0); // lying length
      else if (how === 3) pkt[rand(pkt.length)] = rand(256); // one byte flipped
      else if (how === 4) pkt = crypto.randomBytes(rand(200)); // noise
      fb.receive(pkt, now); // a throw fails the test
      const rtt = fb.rttMs;
      const r = fb.remote;
      if ((rtt !== null && !(rtt >= 0 && rtt < 10_000)) || (r && !(r.lossPercent >= 0 && r.lossPercent <= 100 && r.expected > 0))) impossible.push({ rtt, r });
    }
    expect(impossible).toEqual([]);
    // The planted blocks were read: some loss figure and some round trip were believed.
    expect(fb.remote).not.toBeNull();
    expect(fb.rttMs).not.toBeNull();
  });
});
