// SIP sockets: one UDP socket and one TCP listener on SIP_PORT. Datagrams and
// TCP stream frames come out as whole message texts with their real source
// (address, port, connection); sip.js never sees the network. TCP is framed
// here by the blank line + Content-Length (sip.js has no framing), CRLF
// keepalives (RFC 5626) are answered or dropped before any parsing.
// Every socket callback runs under the guard (src/guard.ts): an exception
// while handling one datagram drops that datagram; one while handling a TCP
// message drops that message; one in the framing closes only that connection.
import dgram from 'node:dgram';
import net from 'node:net';
import { guard, guarded } from '../src/guard.js';
import { countBadInput } from '../src/metrics/index.js';

export type Proto = 'udp' | 'tcp';

export interface Source {
  proto: Proto;
  address: string;
  port: number;
  /** The TCP connection the message arrived on. */
  conn?: net.Socket;
}

const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_TCP_CONNECTIONS = 1024;
const TCP_IDLE_MS = 5 * 60_000;

export class SipSockets {
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  /** Live TCP connections by "address:port" of the peer (responses go back on them). */
  readonly connections = new Map<string, net.Socket>();
  private _port = 0;

  constructor(private readonly host: string, private readonly port: number, private readonly onMessage: (text: string, src: Source) => void) {}

  get localPort(): number {
    return this._port;
  }

  /** Binds UDP and TCP on the same port (port 0: the OS picks one for UDP, TCP follows). */
  async listen(): Promise<number> {
    const udp = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.port, this.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    this._port = udp.address().port;
    udp.on('message', guard('sip_udp', (buf: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(buf, rinfo)));
    udp.on('error', guard('sip_udp', () => countBadInput('sip', 'udp_socket_error')));
    this.udp = udp;
    const tcp = net.createServer(guard('sip_tcp', (c: net.Socket) => this.onConnection(c), (_err, c) => c.destroy()));
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(this._port, this.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    }).catch((err) => {
      udp.close();
      throw err;
    });
    tcp.on('error', guard('sip_tcp', () => countBadInput('sip', 'tcp_listener_error')));
    this.tcp = tcp;
    return this._port;
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    // A keepalive is only CRLFs (or the odd stray whitespace): no message, no error.
    if (isWhitespace(buf, 0, buf.length)) return;
    this.onMessage(buf.toString('utf8'), { proto: 'udp', address: rinfo.address, port: rinfo.port });
  }

  private onConnection(c: net.Socket): void {
    const key = `${c.remoteAddress}:${c.remotePort}`;
    this.connections.set(key, c);
    c.setNoDelay(true);
    c.setTimeout(TCP_IDLE_MS, guard('timer', () => c.destroy()));
    let buf: Buffer = Buffer.alloc(0);
    c.on(
      'data',
      guard(
        'sip_tcp',
        (d: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, d]) : d;
          buf = this.frame(buf, c);
        },
        // The framing state is unknown after a failure: only this connection goes.
        () => {
          buf = Buffer.alloc(0);
          c.destroy();
        },
      ),
    );
    c.on('error', guard('sip_tcp', () => {}));
    c.on('close', guard('sip_tcp', () => {
      if (this.connections.get(key) === c) this.connections.delete(key);
    }));
  }

  /** Emits every complete message in buf; returns the unconsumed rest. */
  private frame(buf: Buffer, c: net.Socket): Buffer {
    for (;;) {
      // Leading CRLFs: a "\r\n\r\n" ping gets a "\r\n" pong (RFC 5626 §3.5.1).
      let start = 0;
      while (start < buf.length && (buf[start] === 0x0d || buf[start] === 0x0a)) start++;
      if (start >= 4 && buf.subarray(0, 4).toString('latin1') === '\r\n\r\n') c.write('\r\n');
      buf = buf.subarray(start);
      if (buf.length === 0) return buf;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_MESSAGE_BYTES) return this.abort(c, 'tcp_header_too_large');
        return buf;
      }
      const head = buf.subarray(0, end).toString('utf8');
      const m = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$/im.exec(head);
      // RFC 3261 §18.3: Content-Length is mandatory on stream transports.
      if (!m) return this.abort(c, 'tcp_missing_content_length');
      const len = Number(m[1]);
      if (end + 4 + len > MAX_MESSAGE_BYTES) return this.abort(c, 'tcp_message_too_large');
      if (buf.length < end + 4 + len) return buf;
      const text = buf.subarray(0, end + 4 + len).toString('utf8');
      buf = buf.subarray(end + 4 + len);
      // A failure handling one message drops that message; the stream goes on.
      guarded('sip_tcp', () => this.onMessage(text, { proto: 'tcp', address: c.remoteAddress ?? '', port: c.remotePort ?? 0, conn: c }));
    }
  }

  private abort(c: net.Socket, reason: string): Buffer {
    countBadInput('sip', reason);
    c.destroy();
    return Buffer.alloc(0);
  }

  sendUdp(text: string, address: string, port: number): void {
    try {
      this.udp?.send(text, port, address, () => {});
    } catch {
      // A bad destination (e.g. a port out of range from a Via) is the peer's problem, not ours.
      countBadInput('sip', 'unroutable_response');
    }
  }

  /**
   * A TCP connection to a peer for requests we originate (an outbound call
   * over a TCP trunk): an open one is reused; a new one is framed and read
   * like an accepted one, so responses and the far end's requests arrive the same way.
   */
  connect(address: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
    const open = this.connections.get(`${address}:${port}`);
    if (open && !open.destroyed) return Promise.resolve(open);
    return new Promise((resolve, reject) => {
      const c = net.connect({ host: address, port, localAddress: this.host === '0.0.0.0' ? undefined : this.host });
      const timer = setTimeout(() => c.destroy(new Error(`TCP connect to ${address}:${port} timed out`)), timeoutMs);
      c.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      c.once('connect', guard('sip_tcp', () => {
        clearTimeout(timer);
        c.removeAllListeners('error');
        this.onConnection(c);
        resolve(c);
      }, () => c.destroy()));
    });
  }

  /** Writes on an open TCP connection; false if there is none to that peer. */
  sendTcp(text: string, address: string, port: number, conn?: net.Socket): boolean {
    const c = conn && !conn.destroyed ? conn : this.connections.get(`${address}:${port}`);
    if (!c || c.destroyed) return false;
    c.write(text);
    return true;
  }

  async close(): Promise<void> {
    for (const c of this.connections.values()) c.destroy();
    this.connections.clear();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
    this.udp = null;
    this.tcp = null;
  }
}

function isWhitespace(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const b = buf[i];
    if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x09 && b !== 0x00) return false;
  }
  return true;
}
