// SIP fuzzing over UDP and TCP: mutations of valid INVITE, OPTIONS, BYE,
// re-INVITE, CANCEL, INFO and ACK; the RFC 4475 torture messages
// (test/sip/fixtures/rfc4475, bench/fuzz/rfc4475); and in-dialog abuse of a
// real call the fuzzer places on its own tenant's number (damaged re-INVITEs
// moving media, INFO, CANCEL, BYE), ended by a valid BYE. Answers are matched
// to what was sent by Call-ID; the rest must be counted as bad input. Some
// datagrams go from 127.0.0.2, an address in no trunk, which the fuzzed
// server gives a small per-source budget (sip/flood.ts): beyond it they are
// dropped unparsed, and must be counted all the same.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Rand } from './random.js';

export interface SipTarget {
  host: string;
  port: number;
  /** The SIP over TLS listener (0: none): a share of the stream messages go there, and some handshakes are garbage. */
  tlsPort?: number;
  /** A number routed on a trunk that admits 127.0.0.1 (the fuzzer's own tenant). */
  number: string;
}

const SDP = (port: number, ip = '127.0.0.1') =>
  `v=0\r\no=- 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n`;

/** Repository root (the folder holding package.json), from src or dist. */
function root(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && !fs.existsSync(path.join(dir, 'package.json')); i++) dir = path.dirname(dir);
  return dir;
}

/** The RFC 4475 torture messages we keep as fixtures ({{LEN}} filled with the body's length). */
export function tortureMessages(): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = [];
  for (const dir of [path.join(root(), 'test/sip/fixtures/rfc4475'), path.join(root(), 'bench/fuzz/rfc4475')]) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.sip')).sort()) {
      const raw = fs.readFileSync(path.join(dir, name));
      const sep = raw.indexOf('\r\n\r\n');
      const body = sep >= 0 ? raw.subarray(sep + 4) : Buffer.alloc(0);
      const head = sep >= 0 ? raw.subarray(0, sep + 4).toString('latin1').replace('{{LEN}}', String(body.length)) : raw.toString('latin1');
      out.push({ name, data: Buffer.concat([Buffer.from(head, 'latin1'), body]) });
    }
  }
  return out;
}

export interface Dialog {
  callId: string;
  fromTag: string;
  toTag: string;
  cseq: number;
}

/** A request as a UA would send it from `local` ('udp'|'tcp' port), optionally in a dialog. */
export function request(method: string, o: { t: SipTarget; proto: 'UDP' | 'TCP'; localPort: number; callId: string; branch: string; cseq?: number; fromTag?: string; toTag?: string; body?: string; user?: string; extra?: string[] }): Buffer {
  const user = o.user ?? o.t.number;
  const body = o.body ?? '';
  return Buffer.from([
    `${method} sip:${user}@${o.t.host}:${o.t.port}${o.proto === 'TCP' ? ';transport=tcp' : ''} SIP/2.0`,
    `Via: SIP/2.0/${o.proto} 127.0.0.1:${o.localPort};branch=${o.branch};rport`,
    `From: "Fuzz" <sip:+15550009999@127.0.0.1:${o.localPort}>;tag=${o.fromTag ?? 'fz' + o.branch.slice(-6)}`,
    `To: <sip:${user}@${o.t.host}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId}`, `CSeq: ${o.cseq ?? 1} ${method === 'ACK' || method === 'CANCEL' ? method : method}`,
    `Contact: <sip:+15550009999@127.0.0.1:${o.localPort}${o.proto === 'TCP' ? ';transport=tcp' : ''}>`, 'Max-Forwards: 70',
    'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO',
    ...(o.extra ?? []),
    ...(body ? [method === 'INFO' ? 'Content-Type: application/dtmf-relay' : 'Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`, '', body,
  ].join('\r\n'), 'latin1');
}

/** Header-level damage that byte flips rarely reach: lengths, counts, odd folding, huge values. */
/** Session-timer headers (RFC 4028, sip/session-timer.ts): malformed, out of range, too small, compact forms. */
const SESSION_TIMER_DAMAGE = [
  'Session-Expires: 0', 'Session-Expires: -1', 'Session-Expires: 4294967296', 'Session-Expires: 99999999999', 'Session-Expires: x',
  'Session-Expires: 90;refresher=', 'Session-Expires: 90;refresher=both', `Session-Expires: 1800;refresher=uac;${'p;'.repeat(100)}`,
  'Supported: timer\r\nSession-Expires: 30', 'Supported: timer\r\nSession-Expires: 100\r\nMin-SE: 4294967296', 'Min-SE: -5', 'Min-SE: ',
  'x: 1', 'k: timer\r\nx: 89;refresher=uas', 'Require: timer\r\nSession-Expires: 90;refresher=uac',
];

function headerDamage(r: Rand, m: Buffer): Buffer {
  let s = m.toString('latin1');
  switch (r.int(10)) {
    case 0: s = s.replace(/Content-Length: \d+/, `Content-Length: ${r.pick(['-1', '99999999', '0', '4294967296', 'abc', '1e3', ''])}`); break;
    case 1: s = s.replace(/CSeq: \d+/, `CSeq: ${r.pick(['-1', '4294967296', '36893488147419103232', '0', 'x'])}`); break;
    case 2: s = s.replace(/Max-Forwards: 70/, `Max-Forwards: ${r.pick(['0', '-1', '256', '99999999999', ''])}`); break;
    case 3: s = s.replace(/^Via: .*$/m, (v) => Array.from({ length: r.pick([2, 70, 500]) }, () => v).join('\r\n')); break;
    case 4: s = s.replace(/^(From: .*)$/m, `$1;${'p=x;'.repeat(r.pick([10, 1000]))}`); break;
    case 5: s = s.replace(/\r\n\r\n/, `\r\n${r.pick(['Require: 100rel, timer', 'Proxy-Require: foo', 'Authorization: Digest username="fuzz", realm="aybiza", nonce="x", uri="sip:x", response="00", qop=auth, nc=ffffffff, cnonce="a"', 'Supported: ' + 'x,'.repeat(2000), 'Route: <sip:evil.example.com;lr>', 'Record-Route: <sip:' + 'a'.repeat(5000) + '>', 'Content-Encoding: gzip', 'X: ' + '\x00\xff'.repeat(100), ...SESSION_TIMER_DAMAGE])}\r\n\r\n`); break;
    case 6: s = s.replace(/m=audio \d+/, `m=audio ${r.pick(['0', '65536', '-1', '99999999999', '1'])}`).replace(/c=IN IP4 [^\r]+/, `c=IN IP4 ${r.pick(['0.0.0.0', '255.255.255.255', '169.254.169.254', '::1', 'x', '999.1.1.1', '224.0.0.1'])}`); break;
    case 7: s = s.replace(/\r\n/g, r.pick(['\n', '\r', '\r\n ', '\r\n\t'])); break;
    case 8: s = s.replace(/a=rtpmap:[^\r]*\r\n/g, () => r.pick(['', 'a=rtpmap:0 PCMU/0\r\n', 'a=rtpmap:127 x/99999999999\r\n', 'a=rtpmap:\r\n', `a=fmtp:101 ${'0-16,'.repeat(500)}\r\n`])); break;
    default: s = s.replace(/ SIP\/2\.0\r\n/, ` ${r.pick(['SIP/2.0', 'SIP/3.0', 'SIP/2.0 ', 'sip/2.0', 'HTTP/1.1'])}\r\n`);
  }
  return Buffer.from(s, 'latin1');
}

export interface SipStats {
  sent: number;
  udp: number;
  tcp: number;
  torture: number;
  dialogs: number;
  /** Dialogs the server answered 200 (their in-dialog abuse reached a live call). */
  dialogsAnswered: number;
  answeredCallIds: number;
  /** Sent messages whose Call-ID got no answer within the wait (dropped by design, or lost). */
  unanswered: number;
  tcpConnectionsClosedByServer: number;
  /** Datagrams sent from 127.0.0.2 (outside every trunk: the per-source budget applies). */
  fromStranger: number;
  /** Connections over TLS that carried messages, and ones that sent garbage for a handshake. */
  tls: number;
  tlsBadHandshakes: number;
}

/** Call-ID as the server would read it (full or compact form), for matching answers. */
function callIdOf(m: Buffer): string | null {
  return /^(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]*)/im.exec(m.toString('latin1'))?.[1]?.trim() ?? null;
}

export class SipFuzzer {
  private udp!: dgram.Socket;
  /** Bound to 127.0.0.2 (no trunk admits it); null where that address cannot be bound. */
  private stranger: dgram.Socket | null = null;
  private localPort = 0;
  private readonly waiting = new Set<string>();
  private readonly answered = new Set<string>();
  private readonly answers = new Map<string, string[]>();
  private seq = 0;
  private readonly tcpInFlight = new Set<Promise<void>>();
  readonly torture = tortureMessages();
  readonly stats: SipStats = { sent: 0, udp: 0, tcp: 0, torture: 0, dialogs: 0, dialogsAnswered: 0, answeredCallIds: 0, unanswered: 0, tcpConnectionsClosedByServer: 0, fromStranger: 0, tls: 0, tlsBadHandshakes: 0 };

  constructor(private readonly r: Rand, private readonly t: SipTarget) {}

  async open(): Promise<void> {
    this.udp = dgram.createSocket('udp4');
    await new Promise<void>((res) => this.udp.bind(0, '127.0.0.1', () => res()));
    this.localPort = this.udp.address().port;
    this.udp.on('message', (m) => this.onAnswer(m));
    this.udp.on('error', () => {});
    const stranger = dgram.createSocket('udp4');
    stranger.on('error', () => {});
    this.stranger = await new Promise<dgram.Socket | null>((res) => {
      stranger.once('error', () => res(null));
      stranger.bind(0, '127.0.0.2', () => res(stranger));
    });
    this.stranger?.on('message', (m) => this.onAnswer(m));
  }

  private onAnswer(m: Buffer): void {
    const id = callIdOf(m);
    if (id === null) return;
    if (this.waiting.delete(id)) this.answered.add(id);
    const list = this.answers.get(id);
    if (list) list.push(m.toString('latin1'));
  }

  private note(m: Buffer): void {
    const id = callIdOf(m);
    // ACKs and responses are never answered; they must be absorbed quietly.
    const first = m.subarray(0, 8).toString('latin1');
    if (id !== null && !first.startsWith('ACK ') && !first.startsWith('SIP/')) this.waiting.add(id);
  }

  /** Every torture message once, over UDP (then they recur, sometimes mutated, among the generated cases). */
  async tortureOnce(): Promise<void> {
    for (const m of this.torture) {
      this.sendUdp(m.data);
      this.stats.torture++;
      await new Promise((res) => setTimeout(res, 5));
    }
  }

  /** One fuzz case: a damaged message (or a torture message) over UDP or TCP. Returns what was sent. */
  async step(): Promise<Buffer> {
    const r = this.r;
    const n = ++this.seq;
    let m: Buffer;
    if (this.torture.length && r.chance(0.08)) {
      m = r.pick(this.torture).data;
      if (r.chance(0.3)) m = r.mutate(m, 3);
      this.stats.torture++;
    } else {
      const method = r.pick(['INVITE', 'INVITE', 'OPTIONS', 'BYE', 'reINVITE', 'CANCEL', 'INFO', 'ACK', 'REGISTER', 'SUBSCRIBE', 'UPDATE', 'PRACK', 'REFER', 'MESSAGE', r.text(12).replace(/\s/g, '') || 'X']);
      const proto = r.chance(0.3) ? 'TCP' : 'UDP';
      const callId = `fz-${this.r.seed}-${n}@127.0.0.1`;
      const inDialog = method === 'BYE' || method === 'reINVITE' || method === 'INFO' || method === 'ACK' || r.chance(0.1);
      const body = method === 'INVITE' || method === 'reINVITE' ? SDP(r.range(1024, 65000)) : method === 'INFO' ? 'Signal=5\r\nDuration=160\r\n' : '';
      m = request(method === 'reINVITE' ? 'INVITE' : method, {
        t: this.t, proto, localPort: this.localPort, callId, branch: `z9hG4bK-fz${n}`, cseq: r.range(1, 5),
        toTag: inDialog ? r.text(10).replace(/[\s;]/g, '') || 'x' : undefined, body,
        // Mostly numbers nobody answers: an admitted INVITE is a real call that holds a slot until its media times out.
        user: r.chance(0.15) ? undefined : r.pick(['+19995550123', '0', '+1555555', r.text(20).replace(/[\s@:;]/g, '') || 'x']),
      });
      if (r.chance(0.5)) m = headerDamage(r, m);
      if (r.chance(0.6)) m = r.mutate(m, 6);
      if (r.chance(0.02)) m = r.bytes(r.size(1400));
    }
    // TCP connections run in the background (each lingers up to a second for its answers), at most 32 at once.
    if (r.chance(0.3) && this.tcpInFlight.size < 32) {
      const p: Promise<void> = this.sendTcp([m], !!this.t.tlsPort && r.chance(0.3)).finally(() => this.tcpInFlight.delete(p));
      this.tcpInFlight.add(p);
    } else this.sendUdp(m, r.chance(0.2));
    return m;
  }

  /** `stranger`: from 127.0.0.2 (fuzz cases only: the dialogs and torture messages come from the trunk's address). */
  private sendUdp(m: Buffer, stranger = false): void {
    this.note(m);
    this.stats.sent++;
    this.stats.udp++;
    // Answers to the stranger's messages (if any) come back to whichever socket the Via names.
    const from = stranger && this.stranger ? this.stranger : this.udp;
    if (from !== this.udp) this.stats.fromStranger++;
    // Larger than a datagram may carry: the kernel refuses it; send a truncated one instead.
    from.send(m.length > 65_000 ? m.subarray(0, 65_000) : m, this.t.port, this.t.host);
  }

  /**
   * Messages on one TCP connection, or over TLS (sometimes split in odd
   * places, sometimes garbage first); a few TLS connections send garbage
   * instead of a handshake, or stop in the middle of one.
   */
  async sendTcp(ms: Buffer[], overTls = false): Promise<void> {
    const r = this.r;
    if (overTls && r.chance(0.1)) return this.badHandshake();
    const sock: net.Socket = overTls
      ? tls.connect({ port: this.t.tlsPort!, host: this.t.host, rejectUnauthorized: false })
      : net.connect(this.t.port, this.t.host);
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      for (const part of d.toString('latin1').split(/(?=SIP\/2\.0 \d{3})/)) this.onAnswer(Buffer.from(part, 'latin1'));
    });
    let closedByServer = false;
    sock.on('end', () => (closedByServer = true));
    await new Promise<void>((res) => {
      sock.once(overTls ? 'secureConnect' : 'connect', () => res());
      sock.once('error', () => res());
    });
    if (overTls) this.stats.tls++;
    for (const m of ms) {
      this.note(m);
      this.stats.sent++;
      this.stats.tcp++;
      if (r.chance(0.3)) {
        const cut = r.int(m.length + 1);
        sock.write(m.subarray(0, cut));
        await new Promise((res) => setTimeout(res, r.int(30)));
        sock.write(m.subarray(cut));
      } else sock.write(m);
    }
    await new Promise((res) => setTimeout(res, 300 + r.int(700)));
    if (closedByServer) this.stats.tcpConnectionsClosedByServer++;
    sock.destroy();
  }

  /** Bytes that are not a TLS handshake (or half of one) on the TLS port: the server must drop that connection only. */
  private async badHandshake(): Promise<void> {
    const r = this.r;
    const sock = net.connect(this.t.tlsPort!, this.t.host);
    sock.on('error', () => {});
    await new Promise<void>((res) => {
      sock.once('connect', () => res());
      sock.once('error', () => res());
    });
    // A TLS record header claiming a ClientHello, then random bytes; or plain SIP; or random bytes.
    const junk = r.pick([Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), r.bytes(r.size(600))]), Buffer.from('OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n'), r.bytes(r.size(1400))]);
    sock.write(junk);
    this.stats.tlsBadHandshakes++;
    await new Promise((res) => setTimeout(res, 200 + r.int(300)));
    sock.destroy();
  }

  /**
   * A real call on the fuzzer's number: INVITE, ACK, then damaged in-dialog
   * requests (re-INVITEs moving media, INFO, CANCEL, BYE), then a valid BYE.
   */
  async dialog(abuse: number): Promise<void> {
    const r = this.r;
    const n = ++this.seq;
    const d: Dialog = { callId: `fzd-${this.r.seed}-${n}@127.0.0.1`, fromTag: `fd${n}`, toTag: '', cseq: 1 };
    this.answers.set(d.callId, []);
    const base = { t: this.t, proto: 'UDP' as const, localPort: this.localPort, callId: d.callId, fromTag: d.fromTag };
    this.stats.dialogs++;
    // Half the calls run a session timer (RFC 4028), so damaged re-INVITEs and UPDATEs meet a live one.
    const timer = r.chance(0.5) ? ['Supported: timer', `Session-Expires: 90;refresher=${r.pick(['uac', 'uas'])}`] : undefined;
    const invite = request('INVITE', { ...base, branch: `z9hG4bK-fzd${n}`, body: SDP(r.range(1024, 65000)), extra: timer });
    this.sendUdp(invite);
    const t0 = Date.now();
    let ok: string | undefined;
    while (Date.now() - t0 < 5000) {
      ok = this.answers.get(d.callId)!.find((a) => /^SIP\/2\.0 [2-6]\d\d/.test(a));
      if (ok) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    if (!ok || !ok.startsWith('SIP/2.0 200')) {
      this.answers.delete(d.callId);
      return;
    }
    this.stats.dialogsAnswered++;
    d.toTag = /^(?:To|t)\s*:.*;tag=([^;\s]+)/im.exec(ok)?.[1] ?? '';
    this.udp.send(request('ACK', { ...base, branch: `z9hG4bK-fzda${n}`, toTag: d.toTag, cseq: 1 }), this.t.port, this.t.host);
    for (let i = 0; i < abuse; i++) {
      const method = r.pick(['reINVITE', 'reINVITE', 'INFO', 'UPDATE', 'CANCEL', 'OPTIONS', 'BYE', 'ACK', 'REFER', 'NOTIFY']);
      const body = method === 'reINVITE' || method === 'UPDATE'
        ? SDP(r.range(1024, 65000), r.pick(['127.0.0.1', '127.0.0.2', '0.0.0.0', '169.254.169.254', '255.255.255.255', '10.0.0.1']))
        : method === 'INFO' ? `Signal=${r.pick(['5', '#', 'x', '99', ''])}\r\nDuration=${r.pick(['160', '-1', '999999999999'])}\r\n` : '';
      let m = request(method === 'reINVITE' ? 'INVITE' : method, { ...base, branch: `z9hG4bK-fzd${n}-${i}`, toTag: d.toTag, cseq: ++d.cseq + (r.chance(0.1) ? -5 : 0), body });
      if (r.chance(0.5)) m = headerDamage(r, m);
      if (r.chance(0.4)) m = r.mutate(m, 3);
      // A damaged BYE may well end the call: then the rest meet 481, which is an answer too.
      this.sendUdp(m);
      await new Promise((res) => setTimeout(res, 20 + r.int(80)));
    }
    this.sendUdp(request('BYE', { ...base, branch: `z9hG4bK-fzdb${n}`, toTag: d.toTag, cseq: ++d.cseq + 100 }));
    await new Promise((res) => setTimeout(res, 500));
    this.answers.delete(d.callId);
  }

  /** Settles the accounting: waits for late answers, then counts what went unanswered. */
  async finish(waitMs = 2000): Promise<SipStats> {
    await Promise.all(this.tcpInFlight);
    await new Promise((res) => setTimeout(res, waitMs));
    this.stats.answeredCallIds = this.answered.size;
    this.stats.unanswered = this.waiting.size;
    this.udp.close();
    this.stranger?.close();
    return this.stats;
  }
}
