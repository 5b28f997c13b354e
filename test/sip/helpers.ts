// Test helpers for SIP: an in-process server with SIP on random loopback
// ports, a trunk for 127.0.0.1, SIPp runs, and a small RTP peer.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { freeSipPort } from '../../src/commands/child.js';
import { tempDir } from '../helpers/spawn-server.js';

export const SCENARIOS = path.resolve(__dirname, 'scenarios');
const PCAP_DIR = '/usr/share/sip-tester';

export interface SipTestApp extends TestApp {
  sipPort: number;
}

/** A free port for both UDP and TCP on 127.0.0.1. */
export { freeSipPort };

export async function startSipApp(env: Record<string, string> = {}): Promise<SipTestApp> {
  const sipPort = await freeSipPort();
  // A random 400-port slice of the RTP range, so parallel test files rarely meet
  // (and when they do, allocation skips ports in use).
  const min = 20000 + 2 * Math.floor(Math.random() * 10000);
  const t = await startTestApp({
    SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1',
    RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 400), ...env,
  });
  return { ...t, sipPort };
}

export async function addTrunk(t: TestApp, trunk: { allowedCidrs: string[]; username?: string; password?: string; allowRefer?: boolean }) {
  return t.app.store.trunks.create(ADMIN, t.tenantId, { name: 'test trunk', ...trunk });
}

export interface SippResult {
  code: number | null;
  stdout: string;
  errors: string;
  dir: string;
}

type SippOptions = { service?: string; args?: string[]; rtpPort?: number; localIp?: string; timeoutS?: number };

/** Runs SIPp with a scenario from test/sip/scenarios against the server; resolves on exit. */
/** `scenario` is a file in test/sip/scenarios, or `sn:<name>` for one of SIPp's built-in scenarios. */
export async function sipp(t: Pick<SipTestApp, 'sipPort' | 'number'>, scenario: string, opts: SippOptions = {}): Promise<SippResult> {
  // SIPp also binds ports next to the ones it is given (video RTP at -mp + 2): on a machine
  // running other tests one may be taken. SIPp then stops before sending anything, so it is
  // started again on fresh ports.
  for (let attempt = 1; ; attempt++) {
    const r = await runSipp(t, scenario, opts);
    if (r.code === 0 || attempt === 3 || !/Unable to bind .*Address already in use/.test(r.stdout + r.errors)) return r;
  }
}

async function runSipp(t: Pick<SipTestApp, 'sipPort' | 'number'>, scenario: string, opts: SippOptions): Promise<SippResult> {
  const dir = tempDir('sipp-');
  // Built-in pcap scenarios look for ./pcap/; Debian's sip-tester keeps the captures here.
  if (fs.existsSync(PCAP_DIR)) fs.symlinkSync(PCAP_DIR, path.join(dir, 'pcap'));
  const localPort = await freeSipPort();
  const which = scenario.startsWith('sn:') ? ['-sn', scenario.slice(3)] : ['-sf', path.join(SCENARIOS, scenario)];
  const args = [
    `127.0.0.1:${t.sipPort}`, ...which, '-s', opts.service ?? t.number,
    '-i', opts.localIp ?? '127.0.0.1', '-p', String(localPort), '-mi', '127.0.0.1', '-key', 'rtp_port', String(opts.rtpPort ?? 9),
    '-m', '1', '-nostdin', '-timeout', `${opts.timeoutS ?? 40}s`, '-timeout_error', '-trace_err', '-trace_msg',
    // SIPp binds media sockets even when unused; its default (6000) would clash between parallel runs.
    ...(opts.args?.includes('-mp') ? [] : ['-mp', String(await freeSipPort())]),
    ...(opts.args ?? []),
  ];
  return new Promise((resolve) => {
    const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('exit', (code) => {
      const errFile = fs.readdirSync(dir).find((f) => f.endsWith('_errors.log'));
      const msgFile = fs.readdirSync(dir).find((f) => f.endsWith('_messages.log'));
      const errors = (errFile ? fs.readFileSync(path.join(dir, errFile), 'utf8') : '') + (code !== 0 && msgFile ? fs.readFileSync(path.join(dir, msgFile), 'utf8').slice(-6000) : '');
      resolve({ code, stdout, errors, dir });
    });
  });
}

export interface RtpPacket {
  pt: number;
  marker: boolean;
  seq: number;
  ts: number;
  ssrc: number;
  payload: Buffer;
  at: number;
  from: { address: string; port: number };
}

export function parseRtp(buf: Buffer, from: dgram.RemoteInfo): RtpPacket | null {
  if (buf.length < 12 || buf[0]! >> 6 !== 2) return null;
  const b1 = buf[1]!;
  if (b1 >= 192 && b1 <= 223) return null;
  return {
    pt: b1 & 0x7f, marker: (b1 & 0x80) !== 0, seq: buf.readUInt16BE(2), ts: buf.readUInt32BE(4), ssrc: buf.readUInt32BE(8),
    payload: buf.subarray(12), at: performance.now(), from: { address: from.address, port: from.port },
  };
}

/**
 * The packets in RTP sequence order. The sender's first sequence number is random, so a call of a
 * few hundred packets wraps past 65535 now and then: order by the distance from the first packet
 * received (mod 2^16, signed), not by the raw number.
 */
export function inSeqOrder(packets: readonly RtpPacket[]): RtpPacket[] {
  const s0 = packets[0]?.seq ?? 0;
  const ext = (p: RtpPacket): number => ((((p.seq - s0) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
  return [...packets].sort((a, b) => ext(a) - ext(b));
}

/** The caller's media: collects the server's RTP and streams 20 ms μ-law frames back (symmetric RTP). */
export class RtpPeer {
  readonly socket = dgram.createSocket('udp4');
  readonly packets: RtpPacket[] = [];
  rtcp = 0;
  port = 0;
  private timer: NodeJS.Timeout | null = null;
  private seq = 1000;
  private ts = 50_000;
  sent = 0;

  async open(): Promise<number> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
    this.socket.on('message', (buf, rinfo) => {
      const p = parseRtp(buf, rinfo);
      if (p) this.packets.push(p);
      else this.rtcp++;
    });
    return this.port;
  }

  get server(): { address: string; port: number } | null {
    return this.packets[0]?.from ?? null;
  }

  /** Streams `frames` (160-byte μ-law each) every 20 ms to the server's RTP source. */
  stream(frames: Uint8Array[], pt = 0): void {
    let i = 0;
    const t0 = performance.now();
    const next = () => {
      const to = this.server;
      if (!to || i >= frames.length) return;
      // Sent on an absolute schedule so a slow tick does not stretch the stream.
      while (i < frames.length && performance.now() - t0 >= i * 20) {
        const pkt = Buffer.alloc(12 + 160);
        pkt[0] = 0x80;
        pkt[1] = pt | (i === 0 ? 0x80 : 0);
        pkt.writeUInt16BE(this.seq++ & 0xffff, 2);
        pkt.writeUInt32BE(this.ts, 4);
        this.ts += 160;
        pkt.writeUInt32BE(0x5eed5eed, 8);
        pkt.set(frames[i]!, 12);
        this.socket.send(pkt, to.port, to.address);
        this.sent++;
        i++;
      }
      this.timer = setTimeout(next, 5);
    };
    next();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.socket.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export async function waitFor(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** μ-law frames of a 300 Hz + 1 kHz warble at speech level (not silence, not a DTMF pair). */
export function speechFrames(n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let f = 0; f < n; f++) {
    const frame = new Uint8Array(160);
    for (let i = 0; i < 160; i++) {
      const t = (f * 160 + i) / 8000;
      const s = Math.round(6000 * Math.sin(2 * Math.PI * 300 * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t)) + 2000 * Math.sin(2 * Math.PI * 1000 * t));
      frame[i] = linearToUlaw(s);
    }
    out.push(frame);
  }
  return out;
}

function linearToUlaw(sample: number): number {
  const BIAS = 0x84;
  let sign = 0;
  let s = sample;
  if (s < 0) {
    s = -s;
    sign = 0x80;
  }
  s = Math.min(s, 32635) + BIAS;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  const mant = (s >> (exp + 3)) & 0x0f;
  return ~(sign | (exp << 4) | mant) & 0xff;
}

/** A bare-bones UDP caller for what SIPp cannot show (it hides retransmissions). */
export class RawUac {
  readonly sock = dgram.createSocket('udp4');
  readonly got: string[] = [];
  port = 0;
  toTag = '';
  readonly callId = `raw-${Date.now()}-${Math.random().toString(36).slice(2)}@127.0.0.1`;

  constructor(private readonly t: Pick<SipTestApp, 'sipPort' | 'number'>) {}

  async open(): Promise<void> {
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
    this.sock.on('message', (m) => this.got.push(m.toString()));
  }

  send(method: string, branch: string, cseq: number, body = '', contentType = 'application/sdp'): void {
    const { number, sipPort } = this.t;
    const lines = [
      `${method} sip:${number}@127.0.0.1:${sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      `From: <sip:+15550001111@127.0.0.1:${this.port}>;tag=raw1`, `To: <sip:${number}@127.0.0.1>${this.toTag}`, `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`, `Contact: <sip:+15550001111@127.0.0.1:${this.port}>`, 'Max-Forwards: 70',
      ...(body ? [`Content-Type: ${contentType}`] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body,
    ];
    this.sock.send(lines.join('\r\n'), sipPort, '127.0.0.1');
  }

  invite(branch: string): void {
    this.send('INVITE', branch, 1, 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n');
  }

  /** Answers (status line first) to `cseq METHOD` received since index `from`. */
  answers(cseq: string, from = 0): string[] {
    return this.got.slice(from).filter((m) => m.startsWith('SIP/2.0 ') && new RegExp(`^CSeq: ${cseq}\\s*$`, 'm').test(m));
  }

  learnToTag(response: string): void {
    this.toTag = ';tag=' + /^To:.*;tag=([^;\s]+)/m.exec(response)![1];
  }

  close(): void {
    this.sock.close();
  }
}

/** A self-signed certificate for `name` (and 127.0.0.1), made with openssl once per directory. */
export function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  if (fs.existsSync(cert)) return { cert, key };
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name},IP:127.0.0.1`,
  ], { stdio: 'ignore' });
  return { cert, key };
}
