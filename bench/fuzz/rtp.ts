// RTP/RTCP fuzzing: random bytes; valid headers with random payload sizes and
// types; wrong versions; CSRC counts, header-extension lengths and padding
// that claim more than the packet holds; RTCP with lying length fields. Sent
// to the healthy call's RTP and RTCP ports (from a stranger: dropped and
// counted as an unexpected source; now and then from the caller's own
// latched socket, which the server must parse) and to random ports of the
// RTP range.
import dgram from 'node:dgram';
import type { Rand } from './random.js';

export interface RtpTarget {
  host: string;
  /** The healthy call's server RTP port (RTCP is +1), when known. */
  callPort: () => number | null;
  rangeMin: number;
  rangeMax: number;
  /** Sends from the healthy caller's own socket (the latched source); null when not available. */
  sendAsCaller?: (pkt: Buffer) => void;
}

export function rtpPacket(r: Rand): Buffer {
  const kind = r.int(9);
  if (kind === 0) return r.bytes(r.size(1500));
  const payload = r.pick([0, 1, 3, 4, 12, 80, 159, 160, 161, 320, 1400, r.size(1400)]);
  const cc = kind === 3 ? 15 : r.chance(0.2) ? r.int(16) : 0;
  const ext = kind === 4 || r.chance(0.1);
  const pad = kind === 5 || r.chance(0.1);
  const head = Buffer.alloc(12 + (kind === 3 ? r.int(8) : cc * 4));
  const version = kind === 2 ? r.pick([0, 1, 3]) : 2;
  head[0] = (version << 6) | (pad ? 0x20 : 0) | (ext ? 0x10 : 0) | cc;
  head[1] = (r.chance(0.1) ? 0x80 : 0) | r.pick([0, 8, 101, 13, 96, 127, 72, 73, 200 & 0x7f, r.int(128)]);
  head.writeUInt16BE(r.int(65536), 2);
  head.writeUInt32BE(r.int(2 ** 32), 4);
  head.writeUInt32BE(r.chance(0.5) ? 0x5eed5eed : r.int(2 ** 32), 8);
  const parts: Buffer[] = [head];
  if (ext) {
    const e = Buffer.alloc(4);
    e.writeUInt16BE(r.pick([0xbede, 0x1000, r.int(65536)]), 0);
    e.writeUInt16BE(r.pick([0, 1, 0xffff, r.int(65536)]), 2); // length in 32-bit words, often beyond the packet
    parts.push(e, r.bytes(r.int(12)));
  }
  parts.push(r.bytes(payload));
  if (pad) parts.push(Buffer.from([r.pick([0, 1, 255, r.int(256)])])); // last byte: the padding count
  if (kind === 6) {
    // A telephone event with odd fields.
    head[1] = 101;
    return Buffer.concat([head, Buffer.from([r.int(256), r.int(256), r.int(256), r.int(256)]).subarray(0, r.int(5))]);
  }
  return Buffer.concat(parts);
}

export function rtcpPacket(r: Rand): Buffer {
  if (r.chance(0.3)) return r.bytes(r.size(600));
  const pt = r.pick([200, 201, 202, 203, 204, 205, 206, 207, r.int(256)]);
  const count = r.int(32);
  const body = r.bytes(r.pick([0, 4, 20, 24, 48, r.size(500)]));
  const h = Buffer.alloc(8);
  h[0] = (r.chance(0.9) ? 0x80 : r.int(256) & 0xc0) | count;
  h[1] = pt;
  h.writeUInt16BE(r.chance(0.5) ? (body.length + 4) / 4 : r.int(65536), 2); // length in words minus one, often a lie
  h.writeUInt32BE(r.int(2 ** 32), 4);
  const p = Buffer.concat([h, body]);
  return r.chance(0.3) ? Buffer.concat([p, rtcpPacket(r)]) : p; // compound
}

export class RtpFuzzer {
  private sock!: dgram.Socket;
  readonly stats = { sent: 0, toCall: 0, toCallRtcp: 0, toRange: 0, asCaller: 0 };

  constructor(private readonly r: Rand, private readonly t: RtpTarget) {}

  async open(): Promise<void> {
    this.sock = dgram.createSocket('udp4');
    this.sock.on('error', () => {});
    await new Promise<void>((res) => this.sock.bind(0, '127.0.0.1', () => res()));
  }

  /** One packet. Returns it (for the report). */
  step(): Buffer {
    const r = this.r;
    const callPort = this.t.callPort();
    const where = r.int(10);
    let pkt: Buffer;
    let port: number;
    if (callPort && where < 4) {
      pkt = rtpPacket(r);
      port = callPort;
      this.stats.toCall++;
    } else if (callPort && where < 6) {
      pkt = rtcpPacket(r);
      port = callPort + 1;
      this.stats.toCallRtcp++;
    } else if (callPort && where === 6 && this.t.sendAsCaller && r.chance(0.2)) {
      // From the latched source itself: header damage the server parses (payload stays audio-sized).
      pkt = rtpPacket(r);
      this.t.sendAsCaller(pkt);
      this.stats.asCaller++;
      this.stats.sent++;
      return pkt;
    } else {
      pkt = r.chance(0.7) ? rtpPacket(r) : rtcpPacket(r);
      port = r.range(this.t.rangeMin, this.t.rangeMax);
      this.stats.toRange++;
    }
    this.stats.sent++;
    this.sock.send(pkt.length > 65_000 ? pkt.subarray(0, 65_000) : pkt, port, this.t.host);
    return pkt;
  }

  close(): void {
    this.sock.close();
  }
}
