// What the caller's RTCP tells us about our outbound stream (RFC 3550 §6.4):
// report blocks about our SSRC in its SR/RR packets give the loss it saw
// (cumulative lost over the packets expected), its interarrival jitter, and
// with LSR/DLSR the round-trip time (§6.4.1: RTT = A − LSR − DLSR, in 1/65536
// s). An LSR is accepted only if it is one of our own last sender reports, so
// a stray or forged block cannot invent a round trip. Feeds the E-model
// (src/media/quality.ts); nothing here changes how the call runs.
import { countBadInput } from '../src/metrics/index.js';
import type { RemoteReport } from '../src/media/quality.js';

const NTP_EPOCH_OFFSET_S = 2208988800;
const KEEP_SR = 4;
/** Round trips above this are not believed (a clock or a forged block). */
const MAX_RTT_MS = 10_000;

/** NTP time (seconds since 1900) for a Date.now() value. */
export function ntpSeconds(unixMs: number): number {
  return unixMs / 1000 + NTP_EPOCH_OFFSET_S;
}

/** The middle 32 bits of an NTP timestamp (LSR's format): 16 bits of seconds, 16 of fraction. */
export function ntpMiddle32(ntp: number): number {
  return (((Math.floor(ntp) & 0xffff) << 16) | Math.floor((ntp % 1) * 65536)) >>> 0;
}

export class RtcpFeedback {
  private readonly sentLsr: number[] = [];
  private rttSum = 0;
  private rttCount = 0;
  /** The caller's latest report on our stream; null until one arrives. */
  remote: RemoteReport | null = null;

  /** ourSsrc: the SSRC we send with; firstSeq: our first RTP sequence number. */
  constructor(private readonly ourSsrc: number, private readonly firstSeq: number) {}

  /** Mean round trip over the reports that carried one, ms; null when none did. */
  get rttMs(): number | null {
    return this.rttCount > 0 ? this.rttSum / this.rttCount : null;
  }

  /** Remembers a sender report we sent (its NTP time), so a later LSR can be matched. */
  sentReport(ntp: number): void {
    this.sentLsr.push(ntpMiddle32(ntp));
    if (this.sentLsr.length > KEEP_SR) this.sentLsr.shift();
  }

  /** A compound RTCP packet from the caller; `nowUnixMs` is its arrival (Date.now()). */
  receive(buf: Buffer, nowUnixMs: number): void {
    for (let off = 0; off + 8 <= buf.length; ) {
      if (buf[off]! >> 6 !== 2) return countBadInput('rtp', 'bad_rtcp');
      const len = (buf.readUInt16BE(off + 2) + 1) * 4;
      if (off + len > buf.length) return countBadInput('rtp', 'bad_rtcp');
      const pt = buf[off + 1]!;
      const first = pt === 200 ? 28 : pt === 201 ? 8 : 0;
      const count = buf[off]! & 0x1f;
      for (let i = 0; first > 0 && i < count && first + (i + 1) * 24 <= len; i++) this.block(buf, off + first + i * 24, nowUnixMs);
      off += len;
    }
  }

  private block(b: Buffer, at: number, nowUnixMs: number): void {
    if (b.readUInt32BE(at) !== this.ourSsrc) return;
    const cumulativeLost = b.readIntBE(at + 5, 3);
    const expected = b.readUInt32BE(at + 8) - this.firstSeq + 1;
    if (expected > 0 && cumulativeLost >= 0 && cumulativeLost <= expected) {
      this.remote = { expected, lost: cumulativeLost, lossPercent: (100 * cumulativeLost) / expected, jitterMs: b.readUInt32BE(at + 12) / 8 };
    }
    const lsr = b.readUInt32BE(at + 16);
    if (lsr === 0 || !this.sentLsr.includes(lsr)) return;
    const rtt = (((ntpMiddle32(ntpSeconds(nowUnixMs)) - lsr - b.readUInt32BE(at + 20)) >>> 0) / 65536) * 1000;
    if (rtt >= MAX_RTT_MS) return;
    this.rttSum += rtt;
    this.rttCount++;
  }
}
