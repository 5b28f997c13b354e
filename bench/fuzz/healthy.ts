// The two healthy calls that run beside the fuzzer, in a worker thread of
// their own so the fuzzer's busy event loop does not distort what they
// measure: a Twilio caller (src/twilio/caller.ts) and a small SIP caller of
// our own over dgram (INVITE → 200 → ACK, μ-law RTP both ways, BYE). Both
// speak every ~8 s so the agent keeps answering, and both time the agent's
// audio as it arrives: the inter-frame gap inside the agent's speech (gaps
// over 500 ms are pauses between replies) is the pacing figure.
import dgram from 'node:dgram';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';

export interface HealthyConfig {
  baseUrl: string;
  publicUrl: string;
  twilioToken: string;
  number: string;
  sipHost: string;
  sipPort: number;
}

export interface Pacing {
  frames: number;
  gaps: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export interface HealthyCallResult {
  up: boolean;
  /** Why it ended before the fuzzer was done (null: it lasted). */
  endedEarly: string | null;
  pacing: Pacing;
}

export interface HealthyResult {
  twilio: HealthyCallResult;
  sip: HealthyCallResult;
  workerLoopDelayMs: { p50: number; p99: number; max: number };
}

const PAUSE_MS = 500;
const SPEAK_EVERY_MS = 8000;

export function pacing(gaps: number[], frames: number): Pacing {
  const g = gaps.filter((x) => x < PAUSE_MS).sort((a, b) => a - b);
  const q = (p: number) => (g.length ? +g[Math.min(g.length - 1, Math.floor(p * g.length))]!.toFixed(2) : null);
  return { frames, gaps: g.length, p50: q(0.5), p99: q(0.99), max: g.length ? +g[g.length - 1]!.toFixed(2) : null };
}

/** A SIP caller over UDP: one call, RTP every 20 ms, the server's RTP timed. */
export class SipCaller {
  private sip = dgram.createSocket('udp4');
  private rtp = dgram.createSocket('udp4');
  private rtcp = dgram.createSocket('udp4');
  private localSip = 0;
  localRtp = 0;
  readonly callId = `healthy-${Date.now()}@127.0.0.1`;
  private toTag = '';
  private contact = '';
  /** Where the server sends and receives this call's RTP. */
  server: { address: string; port: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private seq = 1;
  private ts = 1000;
  private queue: Uint8Array[] = [];
  private lastAt = 0;
  readonly gaps: number[] = [];
  frames = 0;
  endedBy: string | null = null;
  private readonly answers: string[] = [];
  private branchN = 0;

  constructor(private readonly c: HealthyConfig) {}

  private async bind(): Promise<void> {
    await new Promise<void>((r) => this.sip.bind(0, '127.0.0.1', () => r()));
    this.localSip = this.sip.address().port;
    // An even RTP port with RTCP on the next one (RFC 3550 §11).
    for (;;) {
      const p = 2 * (20000 + Math.floor(Math.random() * 12000));
      const ok = await new Promise<boolean>((r) => {
        this.rtp.once('error', () => r(false));
        this.rtp.bind(p, '127.0.0.1', () => r(true));
      });
      if (!ok) {
        this.rtp = dgram.createSocket('udp4');
        continue;
      }
      const ok2 = await new Promise<boolean>((r) => {
        this.rtcp.once('error', () => r(false));
        this.rtcp.bind(p + 1, '127.0.0.1', () => r(true));
      });
      if (ok2) {
        this.localRtp = p;
        break;
      }
      this.rtp.close();
      this.rtp = dgram.createSocket('udp4');
      this.rtcp = dgram.createSocket('udp4');
    }
    this.sip.on('message', (m) => this.onSip(m.toString('latin1')));
    this.rtp.on('message', (m, from) => this.onRtp(m, from));
    this.rtcp.on('message', () => {});
    for (const s of [this.sip, this.rtp, this.rtcp]) s.on('error', () => {});
  }

  private msg(method: string, uri: string, cseq: number, body = ''): string {
    return [
      `${method} ${uri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${this.localSip};branch=z9hG4bK-h${++this.branchN}-${Date.now()};rport`,
      `From: "Healthy" <sip:+15550002222@127.0.0.1:${this.localSip}>;tag=healthy1`,
      `To: <sip:${this.c.number}@${this.c.sipHost}>${this.toTag ? `;tag=${this.toTag}` : ''}`, `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`, `Contact: <sip:+15550002222@127.0.0.1:${this.localSip}>`, 'Max-Forwards: 70',
      ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body,
    ].join('\r\n');
  }

  private send(text: string): void {
    this.sip.send(text, this.c.sipPort, this.c.sipHost);
  }

  private onSip(text: string): void {
    if (text.startsWith('SIP/2.0 ')) {
      this.answers.push(text);
      // A resent 200 to the INVITE means our ACK was lost: ACK again.
      if (this.toTag && /^CSeq:\s*1 INVITE/im.test(text) && text.startsWith('SIP/2.0 200')) this.ack();
      return;
    }
    const method = text.slice(0, text.indexOf(' '));
    const keep = text.split('\r\n').filter((l) => /^(Via|v|From|f|To|t|Call-ID|i|CSeq):/i.test(l));
    this.send(['SIP/2.0 200 OK', ...keep, 'Content-Length: 0', '', ''].join('\r\n'));
    if (method === 'BYE' && text.includes(this.callId)) {
      this.endedBy = 'the server sent BYE';
      this.stopRtp();
    }
  }

  private onRtp(m: Buffer, from: dgram.RemoteInfo): void {
    if (m.length < 12 || m[0]! >> 6 !== 2) return;
    if (this.server && (from.port !== this.server.port || from.address !== this.server.address)) return;
    const now = performance.now();
    if (this.frames > 0) this.gaps.push(now - this.lastAt);
    this.lastAt = now;
    this.frames++;
  }

  private ack(): void {
    this.send(this.msg('ACK', this.contact, 1));
  }

  async dial(): Promise<void> {
    await this.bind();
    const sdp = `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${this.localRtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n`;
    const invite = this.msg('INVITE', `sip:${this.c.number}@${this.c.sipHost}:${this.c.sipPort}`, 1, sdp);
    const t0 = Date.now();
    let final: string | undefined;
    let lastSend = 0;
    while (!final && Date.now() - t0 < 30_000) {
      if (Date.now() - lastSend > 1000 && !this.answers.length) {
        this.send(invite);
        lastSend = Date.now();
      }
      final = this.answers.find((a) => /^SIP\/2\.0 [2-6]\d\d/.test(a));
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!final?.startsWith('SIP/2.0 200')) throw new Error(`healthy SIP call not answered: ${final?.split('\r\n')[0] ?? 'timeout'}`);
    this.toTag = /^(?:To|t)\s*:.*;tag=([^;\s]+)/im.exec(final)?.[1] ?? '';
    this.contact = /^(?:Contact|m)\s*:\s*<([^>]+)>/im.exec(final)?.[1] ?? `sip:${this.c.sipHost}:${this.c.sipPort}`;
    const body = final.slice(final.indexOf('\r\n\r\n') + 4);
    const ip = /^c=IN IP4 (\S+)/m.exec(body)?.[1] ?? this.c.sipHost;
    const port = Number(/^m=audio (\d+)/m.exec(body)?.[1] ?? 0);
    this.server = { address: ip, port };
    this.ack();
    this.startRtp();
  }

  speak(ulaw: Uint8Array): void {
    for (let i = 0; i + 160 <= ulaw.length; i += 160) this.queue.push(ulaw.subarray(i, i + 160));
  }

  /** Sends a packet from this call's RTP socket (the fuzzer's "from the latched source" case). */
  sendRaw(pkt: Uint8Array): void {
    if (this.server) this.rtp.send(pkt, this.server.port, this.server.address);
  }

  private startRtp(): void {
    const t0 = performance.now();
    let n = 0;
    const silence = new Uint8Array(160).fill(0xff);
    const step = () => {
      if (this.endedBy || !this.server) return;
      // An absolute schedule: a late timer sends the frames it owes, so the server's jitter buffer sees a steady stream.
      while (performance.now() - t0 >= n * 20) {
        const pkt = Buffer.alloc(172);
        pkt[0] = 0x80;
        pkt[1] = n === 0 ? 0x80 : 0;
        pkt.writeUInt16BE(this.seq++ & 0xffff, 2);
        pkt.writeUInt32BE(this.ts >>> 0, 4);
        this.ts += 160;
        pkt.writeUInt32BE(0x4ea17e11, 8);
        pkt.set(this.queue.shift() ?? silence, 12);
        this.rtp.send(pkt, this.server.port, this.server.address);
        n++;
      }
      this.timer = setTimeout(step, Math.max(0, t0 + n * 20 - performance.now()));
    };
    step();
  }

  private stopRtp(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  async hangup(): Promise<void> {
    this.stopRtp();
    if (!this.endedBy) {
      const from = this.answers.length;
      const bye = this.msg('BYE', this.contact, 2);
      for (let i = 0; i < 4 && !this.answers.slice(from).some((a) => /CSeq:\s*2 BYE/i.test(a)); i++) {
        this.send(bye);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    for (const s of [this.sip, this.rtp, this.rtcp]) s.close();
  }
}

/** Worker body: dials both calls, reports when up, hangs up and reports on 'stop'. */
async function worker(c: HealthyConfig): Promise<void> {
  const port = parentPort!;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const speech = synthesize('I would like to know your opening hours tomorrow please.');
  const twilio = new TwilioCaller({ baseUrl: c.baseUrl, publicUrl: c.publicUrl, authToken: c.twilioToken, to: c.number, skipAnalysis: true });
  const sip = new SipCaller(c);
  let twilioEnded: string | null = null;
  try {
    const d = await twilio.dial();
    if (d.outcome !== 'connected') throw new Error(`healthy Twilio call ${d.outcome}: ${d.twiml}`);
    void twilio.waitClosed().then((code) => (twilioEnded ??= `the media stream closed (${code})`));
    await sip.dial();
  } catch (err) {
    port.postMessage({ type: 'failed', error: (err as Error).message });
    return;
  }
  port.postMessage({ type: 'up', sipServerRtp: sip.server, callerRtpPort: sip.localRtp });
  // Both speak now and then, so the agent keeps replying (and never hears silence long enough to hang up).
  let k = 0;
  const talk = setInterval(() => {
    if (k++ % 2 === 0) twilio.speak(speech);
    else sip.speak(speech);
  }, SPEAK_EVERY_MS / 2);
  twilio.speak(speech);
  sip.speak(speech);
  port.on('message', (m: { type: string; pkt?: Uint8Array }) => {
    if (m.type === 'rtp' && m.pkt) sip.sendRaw(m.pkt);
    if (m.type !== 'stop') return;
    clearInterval(talk);
    const result: HealthyResult = {
      twilio: { up: !twilio.isClosed, endedEarly: twilioEnded, pacing: pacing(twilio.gaps, twilio.stats.frames) },
      sip: { up: !sip.endedBy, endedEarly: sip.endedBy, pacing: pacing(sip.gaps, sip.frames) },
      workerLoopDelayMs: { p50: +(loop.percentile(50) / 1e6).toFixed(1), p99: +(loop.percentile(99) / 1e6).toFixed(1), max: +(loop.max / 1e6).toFixed(1) },
    };
    void Promise.allSettled([twilio.isClosed ? undefined : twilio.hangup(200), sip.hangup()]).then(() => {
      port.postMessage({ type: 'result', result });
      port.close();
    });
  });
}

if (parentPort && (workerData as { healthy?: HealthyConfig } | undefined)?.healthy) void worker((workerData as { healthy: HealthyConfig }).healthy);
