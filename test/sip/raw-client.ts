// A raw SIP caller over UDP or TCP for what SIPp cannot express: a Via naming
// another host/port without rport, two dialogs on one Call-ID, a re-INVITE
// moving media, requests that provoke a failure inside the server.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { waitFor } from './helpers.js';

export interface RawSipOptions {
  proto: 'udp' | 'tcp' | 'tls';
  /** The port to send to (the TLS port for 'tls'). */
  sipPort: number;
  /** For 'tls': the CA that signed the server's certificate. */
  ca?: Buffer;
  number: string;
  /** The Via sent-by; default our real address:port. */
  viaHost?: string;
  /** Add `;rport` to the Via (default: true over UDP, false over TCP). */
  rport?: boolean;
  fromTag?: string;
  callId?: string;
}

export function sdp(port: number, version = 1, dir = 'sendrecv'): string {
  return `v=0\r\no=- 1 ${version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=${dir}\r\n`;
}

export class RawSip {
  readonly got: string[] = [];
  port = 0;
  toTag = '';
  readonly callId: string;
  readonly fromTag: string;
  private udp: dgram.Socket | null = null;
  tcp: net.Socket | null = null;
  private buf = Buffer.alloc(0);
  private branches = 0;

  constructor(private readonly o: RawSipOptions) {
    this.callId = o.callId ?? `rawsip-${Date.now()}-${Math.random().toString(36).slice(2)}@127.0.0.1`;
    this.fromTag = o.fromTag ?? `ft${Math.random().toString(36).slice(2, 10)}`;
  }

  async open(): Promise<void> {
    if (this.o.proto === 'udp') {
      const s = (this.udp = dgram.createSocket('udp4'));
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      this.port = s.address().port;
      s.on('message', (m) => this.got.push(m.toString()));
      return;
    }
    const c = (this.tcp = this.o.proto === 'tls'
      ? tls.connect({ port: this.o.sipPort, host: '127.0.0.1', ca: this.o.ca, servername: 'localhost' })
      : net.connect(this.o.sipPort, '127.0.0.1'));
    await new Promise<void>((r, j) => {
      c.once(this.o.proto === 'tls' ? 'secureConnect' : 'connect', () => r());
      c.once('error', j);
    });
    this.port = c.localPort!;
    c.on('error', () => {});
    c.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        while (this.buf.length && (this.buf[0] === 0x0d || this.buf[0] === 0x0a)) this.buf = this.buf.subarray(1);
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/^content-length\s*:\s*(\d+)/im.exec(this.buf.subarray(0, end).toString())?.[1] ?? 0);
        if (this.buf.length < end + 4 + len) return;
        this.got.push(this.buf.subarray(0, end + 4 + len).toString());
        this.buf = this.buf.subarray(end + 4 + len);
      }
    });
  }

  /** Sends a request; returns its branch. */
  send(method: string, cseq: number, opts: { body?: string; contentType?: string; branch?: string; raw?: (text: string) => string } = {}): string {
    const { number, sipPort, proto } = this.o;
    const branch = opts.branch ?? `z9hG4bK-${Math.random().toString(36).slice(2, 12)}-${++this.branches}`;
    const rport = this.o.rport ?? proto === 'udp';
    const via = `SIP/2.0/${proto.toUpperCase()} ${this.o.viaHost ?? `127.0.0.1:${this.port}`};branch=${branch}${rport ? ';rport' : ''}`;
    const body = opts.body ?? '';
    const lines = [
      `${method} sip:${number}@127.0.0.1:${sipPort}${proto === 'udp' ? '' : `;transport=${proto}`} SIP/2.0`, `Via: ${via}`,
      `From: <sip:+15550001111@127.0.0.1:${this.port}>;tag=${this.fromTag}`, `To: <sip:${number}@127.0.0.1>${this.toTag}`, `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`, `Contact: <sip:+15550001111@127.0.0.1:${this.port}${proto === 'udp' ? '' : `;transport=${proto}`}>`, 'Max-Forwards: 70',
      ...(body ? [`Content-Type: ${opts.contentType ?? 'application/sdp'}`] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body,
    ];
    const text = opts.raw ? opts.raw(lines.join('\r\n')) : lines.join('\r\n');
    if (this.udp) this.udp.send(text, sipPort, '127.0.0.1');
    else this.tcp!.write(text);
    return branch;
  }

  /** Responses to `cseq METHOD` (e.g. "1 INVITE"), status line first. */
  answers(cseq: string): string[] {
    return this.got.filter((m) => m.startsWith('SIP/2.0 ') && new RegExp(`^CSeq: ${cseq}\\s*$`, 'm').test(m));
  }

  /** Waits for a final (>= 200) answer to `cseq METHOD` and returns it. */
  async final(cseq: string, ms = 15_000): Promise<string> {
    const fin = () => this.answers(cseq).find((m) => Number(m.slice(8, 11)) >= 200);
    await waitFor(() => fin() !== undefined, ms, `a final answer to ${cseq}`);
    return fin()!;
  }

  /** INVITE with an offer on `rtpPort`, then ACK a 200; returns the server's RTP port from its answer. */
  async call(rtpPort: number): Promise<{ status: number; serverRtpPort: number }> {
    this.send('INVITE', 1, { body: sdp(rtpPort) });
    const fin = await this.final('1 INVITE');
    const status = Number(fin.slice(8, 11));
    if (status !== 200) {
      this.send('ACK', 1);
      return { status, serverRtpPort: 0 };
    }
    this.toTag = ';tag=' + /^To:.*;tag=([^;\s]+)/m.exec(fin)![1];
    this.send('ACK', 1);
    return { status, serverRtpPort: Number(/^m=audio (\d+)/m.exec(fin)?.[1] ?? 0) };
  }

  close(): void {
    this.udp?.close();
    this.tcp?.destroy();
  }
}

/** An RTP endpoint: counts what it receives and sends packets from its own port. */
export class RtpEnd {
  readonly s = dgram.createSocket('udp4');
  port = 0;
  received = 0;
  lastFrom = 0;
  private seq = 1;

  async open(): Promise<number> {
    await new Promise<void>((r) => this.s.bind(0, '127.0.0.1', () => r()));
    this.port = this.s.address().port;
    this.s.on('message', (b, r) => {
      if (b.length >= 12 && b[0]! >> 6 === 2 && !(b[1]! >= 192 && b[1]! <= 223)) {
        this.received++;
        this.lastFrom = r.port;
      }
    });
    return this.port;
  }

  send(toPort: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const p = Buffer.alloc(12 + 160, 0xff);
      p[0] = 0x80;
      p[1] = 0;
      p.writeUInt16BE(this.seq++ & 0xffff, 2);
      p.writeUInt32BE(this.seq * 160, 4);
      p.writeUInt32BE(this.port, 8);
      this.s.send(p, toPort, '127.0.0.1');
    }
  }

  close(): void {
    this.s.close();
  }
}
