// SIP sockets: one UDP socket and one TCP listener on SIP_PORT, and a TLS
// listener on SIP_TLS_PORT when configured. Datagrams and stream frames come
// out as whole message texts with their real source (address, port,
// connection); sip.js never sees the network. TCP and TLS are framed here by
// the blank line + Content-Length (sip.js has no framing), CRLF keepalives
// (RFC 5626) are answered or dropped before any parsing. A TLS handshake that
// fails (or takes over 10 s) closes that connection and is counted.
// Every socket callback runs under the guard (src/guard.ts): an exception
// while handling one datagram drops that datagram; one while handling a TCP
// message drops that message; one in the framing closes only that connection.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { guard, guarded } from '../src/guard.js';
import { countBadInput } from '../src/metrics/index.js';

export type Proto = 'udp' | 'tcp' | 'tls';
/** The connection-oriented transports: framed streams, answers on the request's connection (RFC 3261 §18.2.2). */
export type StreamProto = Exclude<Proto, 'udp'>;

export interface Source {
  proto: Proto;
  address: string;
  port: number;
  /** The TCP or TLS connection the message arrived on. */
  conn?: net.Socket;
}

/** The TLS listener's settings (SIP_TLS_*), and the CAs we trust for outbound TLS trunks besides the system's. */
export interface SipTlsOptions {
  port: number;
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_TCP_CONNECTIONS = 1024;
const TCP_IDLE_MS = 5 * 60_000;
const TLS_HANDSHAKE_MS = 10_000;
/** New TLS connections per second per address (a handshake costs ~1 ms of CPU; a carrier keeps its connection open), with this burst. */
const TLS_CONNECTS_PER_S = 10;
const TLS_CONNECT_BURST = 20;
const MAX_TLS_SOURCES = 10_000;

export class SipSockets {
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private tlsServer: tls.Server | null = null;
  /** Live TCP and TLS connections by "proto|address:port" of the peer (responses go back on them). */
  readonly connections = new Map<string, net.Socket>();
  private _port = 0;
  private _tlsPort = 0;
  /** CAs for outbound TLS: the system's plus SIP_TLS_CA. */
  private readonly outboundCa: string[] | undefined;

  constructor(
    private readonly host: string, private readonly port: number, private readonly onMessage: (text: string, src: Source) => void,
    private readonly tlsOptions: SipTlsOptions | null = null,
  ) {
    this.outboundCa = tlsOptions?.ca ? [...tls.rootCertificates, tlsOptions.ca.toString('utf8')] : undefined;
  }

  get localPort(): number {
    return this._port;
  }

  /** The TLS listener's port; 0 without one. */
  get tlsPort(): number {
    return this._tlsPort;
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
    const tcp = net.createServer(guard('sip_tcp', (c: net.Socket) => this.onConnection(c, 'tcp'), (_err, c) => c.destroy()));
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
    if (this.tlsOptions && this.tlsOptions.port > 0) await this.listenTls(this.tlsOptions).catch(async (err) => {
      await this.close();
      throw err;
    });
    return this._port;
  }

  private async listenTls(o: SipTlsOptions): Promise<void> {
    const server = tls.createServer(
      { cert: o.cert, key: o.key, minVersion: 'TLSv1.2', handshakeTimeout: TLS_HANDSHAKE_MS },
      guard('sip_tls', (c: tls.TLSSocket) => this.onConnection(c, 'tls'), (_err, c) => c.destroy()),
    );
    server.maxConnections = MAX_TCP_CONNECTIONS;
    // Before any handshake work: an address opening connections faster than a carrier would is refused.
    const limited = new WeakSet<net.Socket>();
    server.on('connection', guard('sip_tls', (raw: net.Socket) => {
      if (this.admitTls(raw.remoteAddress ?? '')) return;
      limited.add(raw);
      countBadInput('sip', 'tls_connection_rate_limited');
      raw.destroy();
    }, (_err, raw) => raw.destroy()));
    // A failed or slow handshake (not TLS, a bad certificate, nothing sent) closes that connection only.
    server.on('tlsClientError', guard('sip_tls', (_err: Error, c: tls.TLSSocket) => {
      const raw = (c as unknown as { _parent?: net.Socket })._parent;
      if (!raw || !limited.has(raw)) countBadInput('sip', 'tls_handshake_failed');
      c.destroy();
    }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', guard('sip_tls', () => countBadInput('sip', 'tls_listener_error')));
    this._tlsPort = (server.address() as net.AddressInfo).port;
    this.tlsServer = server;
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    // A keepalive is only CRLFs (or the odd stray whitespace): no message, no error.
    if (isWhitespace(buf, 0, buf.length)) return;
    this.onMessage(buf.toString('utf8'), { proto: 'udp', address: rinfo.address, port: rinfo.port });
  }

  private readonly tlsBudget = new Map<string, { tokens: number; at: number }>();

  /** Spends one new-connection token of this address (a token bucket); false when it has none. */
  private admitTls(address: string): boolean {
    const now = performance.now();
    let b = this.tlsBudget.get(address);
    if (!b) {
      // Bounded: the oldest address goes first (a flood from many addresses is the listener's maxConnections' job).
      if (this.tlsBudget.size >= MAX_TLS_SOURCES) this.tlsBudget.delete(this.tlsBudget.keys().next().value!);
      this.tlsBudget.set(address, (b = { tokens: TLS_CONNECT_BURST, at: now }));
    }
    b.tokens = Math.min(TLS_CONNECT_BURST, b.tokens + ((now - b.at) / 1000) * TLS_CONNECTS_PER_S);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  private onConnection(c: net.Socket, proto: StreamProto): void {
    const key = `${proto}|${c.remoteAddress}:${c.remotePort}`;
    const where = proto === 'tcp' ? 'sip_tcp' : 'sip_tls';
    this.connections.set(key, c);
    c.setNoDelay(true);
    c.setTimeout(TCP_IDLE_MS, guard('timer', () => c.destroy()));
    let buf: Buffer = Buffer.alloc(0);
    c.on(
      'data',
      guard(
        where,
        (d: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, d]) : d;
          buf = this.frame(buf, c, proto);
        },
        // The framing state is unknown after a failure: only this connection goes.
        () => {
          buf = Buffer.alloc(0);
          c.destroy();
        },
      ),
    );
    c.on('error', guard(where, () => {}));
    c.on('close', guard(where, () => {
      if (this.connections.get(key) === c) this.connections.delete(key);
    }));
  }

  /** Emits every complete message in buf; returns the unconsumed rest. */
  private frame(buf: Buffer, c: net.Socket, proto: StreamProto): Buffer {
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
      guarded(proto === 'tcp' ? 'sip_tcp' : 'sip_tls', () => this.onMessage(text, { proto, address: c.remoteAddress ?? '', port: c.remotePort ?? 0, conn: c }));
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
   * A TCP or TLS connection to a peer for requests we originate (an outbound
   * call over a TCP or TLS trunk): an open one is reused; a new one is framed
   * and read like an accepted one, so responses and the far end's requests
   * arrive the same way. Over TLS the peer's certificate must chain to a
   * trusted CA (the system's, plus SIP_TLS_CA) and name `servername` (the
   * trunk's host name; its address when the trunk is an IP literal).
   */
  connect(proto: StreamProto, address: string, port: number, servername?: string, timeoutMs = 5000): Promise<net.Socket> {
    const open = this.connections.get(`${proto}|${address}:${port}`);
    if (open && !open.destroyed) return Promise.resolve(open);
    const where = proto === 'tcp' ? 'sip_tcp' : 'sip_tls';
    return new Promise((resolve, reject) => {
      const localAddress = this.host === '0.0.0.0' ? undefined : this.host;
      const c = proto === 'tcp'
        ? net.connect({ host: address, port, localAddress })
        : tls.connect({
          socket: net.connect({ host: address, port, localAddress }), minVersion: 'TLSv1.2', ca: this.outboundCa, rejectUnauthorized: true,
          // SNI takes host names only; an IP literal trunk is checked against the certificate's IP addresses.
          ...(servername && !net.isIP(servername) ? { servername } : {}),
          checkServerIdentity: (_host, cert) => tls.checkServerIdentity(servername ?? address, cert),
        });
      const timer = setTimeout(() => c.destroy(new Error(`${proto.toUpperCase()} connect to ${address}:${port} timed out`)), timeoutMs);
      c.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      c.once(proto === 'tcp' ? 'connect' : 'secureConnect', guard(where, () => {
        clearTimeout(timer);
        c.removeAllListeners('error');
        this.onConnection(c, proto);
        resolve(c);
      }, () => c.destroy()));
    });
  }

  /** Writes on an open TCP or TLS connection; false if there is none to that peer. */
  sendStream(proto: StreamProto, text: string, address: string, port: number, conn?: net.Socket): boolean {
    const c = conn && !conn.destroyed ? conn : this.connections.get(`${proto}|${address}:${port}`);
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
      new Promise<void>((r) => (this.tlsServer ? this.tlsServer.close(() => r()) : r())),
    ]);
    this.udp = null;
    this.tcp = null;
    this.tlsServer = null;
  }
}

function isWhitespace(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const b = buf[i];
    if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x09 && b !== 0x00) return false;
  }
  return true;
}
