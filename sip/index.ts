// The SIP trunk component: sockets on SIP_PORT (UDP + TCP), the UAS, and the
// INVITE → admission → SDP answer → RTP → CallSession + Conversation path.
// Mirrors the Twilio gateway: same capacity rules, same call records, same
// session and pipeline; only the transport differs.
import os from 'node:os';
import type { IncomingInviteRequest, Session } from 'sip.js/lib/core/index.js';
import type { Config } from '../src/config.js';
import { guarded, reportInternalError } from '../src/guard.js';
import { log } from '../src/log.js';
import { callMos, countBadInput } from '../src/metrics/index.js';
import type { CallQuality } from '../src/media/quality.js';
import type { Component } from '../src/server/server.js';
import type { ControlPlane } from '../src/store/index.js';
import type { Providers } from '../src/providers/types.js';
import { CallSession } from '../src/call/session.js';
import { Admitter } from './admission.js';
import { SipCall } from './call.js';
import { allocateRtpPorts, releaseRtpPorts, RtpSession, type RtpPorts } from './rtp.js';
import { CallMedia } from './media.js';
import { negotiate, OUR_OFFER, parseSdp, type Negotiated, type SdpOffer } from './sdp.js';
import { SipSockets } from './transport.js';
import { LOCAL_USER, SipUas, type InviteContext } from './uas.js';
import { OutgoingCall, type UacEvents, type UacFailure } from './uac.js';
import type { Source } from './transport.js';
import type { ResolvedAgent } from '../src/store/types.js';
import type { SipHandoff } from '../src/worker/sip-handoff.js';
import { SourceLimiter } from './flood.js';
import { allowsUpdate, answerTimer, SessionTimer, termsFromAnswer, type TimerAnswer, type TimerTerms } from './session-timer.js';

export interface SipServerOptions {
  config: Config;
  store: ControlPlane;
  providers: Providers;
  onSession(session: CallSession): { start(): void };
  /** Calls on other transports, for the process-wide MAX_CONCURRENT_CALLS. */
  otherCalls?(): number;
  /** RTP silence that ends a call (not while the caller holds). Default 30 s. */
  mediaTimeoutMs?: number;
  /** WORKERS > 1: each admitted call's media goes to a media worker (src/worker/sip-handoff.ts); signalling stays here. */
  handoff?: SipHandoff;
}

/** One outbound call to place (src/outbound/sip.ts fills it from the trunk's checked outbound settings). */
export interface SipDial {
  recordId: string;
  /** The agent that speaks when the callee answers (variables already filled). */
  agent: ResolvedAgent;
  to: string;
  from: { user: string; host: string };
  trunk: { host: string; port: number };
  /** The checked address every request goes to (uas.pin). */
  target: Source;
  /** Further checked addresses (the trunk's next SRV targets): over TCP/TLS, tried in order when connecting to `target` fails. */
  alternatives?: Source[];
  credentials?: { username: string; password: string };
  allowRefer: boolean;
  timeoutMs?: number;
  /** Whether the answer's media address may receive our RTP (the network policy). */
  mediaAllowed(address: string): boolean;
  events: { status(status: 'ringing' | 'in-progress' | 'completed' | UacFailure, detail?: { endReason?: string }): void };
  /** The call is up: the hook for what runs on it (e.g. answering-machine detection on its session). */
  onAnswered?(call: SipCall): void;
}

const RETRY_AFTER_S = 5;

/** How long sockets stay open after the last calls were hung up at shutdown (RFC 3261 T1 plus margin). */
const BYE_GRACE_MS = 1_000;

export class SipServer implements Component {
  readonly name = 'sip';
  readonly calls = new Map<string, SipCall>();
  /** Outbound INVITEs not answered yet, by call record id. */
  private readonly outgoing = new Map<string, OutgoingCall>();
  private sockets: SipSockets | null = null;
  private uas: SipUas | null = null;
  private readonly admitter: Admitter;
  private draining = false;
  private drained: (() => void) | null = null;
  private pending = 0;
  /** RTP silence that ends a call (not while the caller holds). */
  mediaTimeoutMs: number;
  /** Milliseconds per second of a session timer's interval (RFC 4028): tests shorten it. */
  timerMsPerSecond = 1000;

  constructor(private readonly o: SipServerOptions) {
    this.admitter = new Admitter(o.store, o.config.sipRealm);
    this.mediaTimeoutMs = o.mediaTimeoutMs ?? 30_000;
  }

  get port(): number {
    return this.sockets?.localPort ?? 0;
  }

  /** The SIP over TLS listener's port (SIP_TLS_PORT); 0 without one. */
  get tlsPort(): number {
    return this.sockets?.tlsPort ?? 0;
  }

  async start(): Promise<void> {
    const c = this.o.config;
    // Budgets per source and for all strangers together, before any parsing; a configured trunk's addresses are not limited (./flood.ts).
    const limiter = c.sipSourceLimitKbps > 0 || c.sipUntrustedLimitKbps > 0
      ? new SourceLimiter({
        bytesPerSecond: c.sipSourceLimitKbps * 1024,
        totalBytesPerSecond: c.sipUntrustedLimitKbps * 1024,
        trusted: async (address) => (await this.o.store.trunks.trunksForAddress(address)).length > 0,
      })
      : null;
    // The sockets run this under the callback guard (where="sip_udp"/"sip_tcp"): a failure drops that one message.
    this.sockets = new SipSockets(c.sipHost, c.sipPort, (text, src) => {
      const refused = limiter?.admit(src.address, text.length);
      if (refused) return countBadInput('sip', refused);
      this.uas?.receive(text, src);
    }, c.sipTls);
    const port = await this.sockets.listen().catch((err: NodeJS.ErrnoException) => {
      const where = `${c.sipHost}:${c.sipPort}${c.sipTls?.port ? ` and TLS :${c.sipTls.port}` : ''}`;
      throw new Error(`cannot listen for SIP on ${where} (SIP_HOST/SIP_PORT/SIP_TLS_*; SIP_PORT=0 disables SIP): ${err.code ?? err.message}`);
    });
    const tlsPort = this.sockets.tlsPort;
    this.uas = new SipUas(this.sockets, { publicIp: c.sipPublicIp, port, tlsPort, log, onInvite: (req, ctx) => this.invite(req, ctx) });
    log.info('sip listening', { host: c.sipHost, port, tlsPort: tlsPort || undefined, publicIp: c.sipPublicIp, rtp: `${c.rtpPortMin}-${c.rtpPortMax}` });
  }

  private async invite(req: IncomingInviteRequest, ctx: InviteContext): Promise<void> {
    const msg = req.message;
    try {
      req.trying();
    } catch {
      // already sent by the transaction
    }
    let cancelled = false;
    req.delegate = {
      // sip.js answers the CANCEL with 200; the 487 to the INVITE is ours (reference §10.3.6).
      onCancel: () => {
        cancelled = true;
        safe(() => req.reject({ statusCode: 487 }));
      },
    };
    const reject = (statusCode: number, reason: string, extraHeaders?: string[]) => {
      if (!cancelled) safe(() => req.reject({ statusCode, extraHeaders }));
      log.info('sip call refused', { callId: msg.callId, status: statusCode, reason, from: ctx.source.address });
    };
    const type = (msg.getHeader('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (msg.body && type !== 'application/sdp') return reject(415, 'unsupported_body', ['Accept: application/sdp']);
    // No body: a delayed offer; we offer in the 200 and the answer comes in the ACK.
    const offer = msg.body ? parseSdp(msg.body) : null;
    if (msg.body && !offer) {
      countBadInput('sip', 'bad_sdp');
      return reject(400, 'bad_sdp');
    }
    this.pending++;
    try {
      // The Request-URI as received (sip.js's ruri had its user replaced): the digest uri must equal it.
      const requestUri = /^\S+\s+(\S+)/.exec(msg.data)?.[1] ?? '';
      const a = await this.admitter.admit({ sourceIp: ctx.source.address, method: 'INVITE', requestUri, dialled: ctx.dialled, authorization: msg.getHeader('authorization') ?? msg.getHeader('proxy-authorization') });
      if (cancelled) return;
      if (!a.ok) return reject(a.status, a.reason, a.headers);
      const n = offer ? negotiate(offer) : null;
      if (offer && !n) return reject(488, 'no_common_codec', ['Warning: 304 aybiza "Media type not available"']);
      // Session timers (RFC 4028): a malformed header is bad input; an interval under our minimum gets 422.
      const timer = answerTimer(msg, null);
      if (timer.status === 400) countBadInput('sip', timer.reason);
      if (timer.status !== 200) return reject(timer.status, timer.reason, timer.headers);
      const limit = a.agent.maxConcurrentCalls;
      const busy = this.draining || this.calls.size + (this.o.otherCalls?.() ?? 0) >= this.o.config.maxConcurrentCalls
        || (limit !== null && (await this.o.store.state.activeCalls(a.agent.tenantId)) >= limit);
      if (busy) return reject(503, 'busy', [`Retry-After: ${RETRY_AFTER_S}`]);
      if (this.o.handoff) {
        await this.o.handoff.answer({
          req, ctx, n, offer, timer, agent: a.agent, number: a.number, trunk: a.trunk, uas: this.uas, mediaTimeoutMs: this.mediaTimeoutMs, timerMsPerSecond: this.timerMsPerSecond,
          localUri: `sip:${LOCAL_USER}@${this.o.config.sipPublicIp}:${this.port}`,
          onEnded: () => this.draining && this.calls.size === 0 && this.pending === 0 && this.drained?.(),
        });
        return;
      }
      const ports = await allocateRtpPorts(this.o.config.sipHost, this.o.config.rtpPortMin, this.o.config.rtpPortMax);
      if (!ports) return reject(503, 'no_rtp_port', [`Retry-After: ${RETRY_AFTER_S}`]);
      // From here every way out that does not hand the ports to a live call releases them.
      let handed = false;
      try {
        if (cancelled) return;
        handed = await this.answer(req, ctx, n, offer, ports, a, timer);
      } finally {
        if (!handed) releaseRtpPorts(ports);
      }
    } catch (err) {
      // A failure here (e.g. the database) ends only this INVITE, with 500.
      reportInternalError('sip', err, { sipCallId: msg.callId });
      reject(500, 'setup_failed');
    } finally {
      this.pending--;
      if (this.draining && this.calls.size === 0 && this.pending === 0) this.drained?.();
    }
  }

  /**
   * Creates the call record, answers 200 and starts the call. True when a
   * live call took over the RTP ports (it releases them when it ends); false
   * when the caller must release them (refused, cancelled, failed).
   */
  private async answer(
    req: IncomingInviteRequest, ctx: InviteContext, n: Negotiated | null, offer: SdpOffer | null,
    ports: RtpPorts, a: Extract<Awaited<ReturnType<Admitter['admit']>>, { ok: true }>, timer: Extract<TimerAnswer, { status: 200 }>,
  ): Promise<boolean> {
    const msg = req.message;
    const c = this.o.config;
    // Every INVITE that starts a dialog is a call of its own: a reused Call-ID never joins an existing call.
    const record = await this.o.store.calls.createCall({
      tenantId: a.agent.tenantId, agentId: a.agent.agentId, agentVersion: a.agent.agentVersion, transport: 'sip',
      externalId: msg.callId, from: msg.from.uri.user ?? null, to: a.number, status: 'ringing',
    });
    const slotted = a.agent.maxConcurrentCalls !== null;
    if (slotted && !(await this.o.store.state.acquireCallSlot(a.agent.tenantId, record.id, a.agent.maxConcurrentCalls!))) {
      background(this.o.store.calls.updateCallStatus(record.id, 'busy', 'tenant at its call limit'));
      safe(() => req.reject({ statusCode: 503, extraHeaders: [`Retry-After: ${RETRY_AFTER_S}`] }));
      return false;
    }
    const remoteTag = msg.fromTag ?? '';
    let rtp: RtpSession | null = null;
    let dialog: Session | null = null;
    let call: SipCall | null = null;
    try {
      const f = n ?? OUR_OFFER;
      const session0 = rtp = new RtpSession({
        rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: f.codec, pt: f.pt, dtmfPt: f.dtmfPt,
        remote: null, latchFrom: [ctx.source.address], onDigit: (d) => call?.session?.dtmf(d),
      });
      const media = new CallMedia(session0, c.sipPublicIp, offer, n);
      try {
        dialog = req.accept({
          statusCode: 200, extraHeaders: timer.headers, body: { contentDisposition: 'session', contentType: 'application/sdp', content: media.last },
        }).session;
      } catch (err) {
        // CANCEL won the race: the INVITE is already answered with 487.
        session0.close();
        background(this.o.store.state.releaseCallSlot(a.agent.tenantId, record.id));
        background(this.o.store.calls.updateCallStatus(record.id, 'canceled', 'caller cancelled'));
        log.info('sip call cancelled before answer', { callId: msg.callId, err: (err as Error).message });
        return false;
      }
      this.uas?.rememberDialog(msg.callId, remoteTag, ctx.source);
      const live = call = this.startCall({
        recordId: record.id, agent: a.agent, rtp: session0, media, dialog, allowRefer: a.trunk.allowRefer, remoteHost: msg.from.uri.host,
        timer: { terms: timer.terms, update: allowsUpdate(msg) },
        onClosed: () => {
          this.uas?.forgetDialog(msg.callId, remoteTag);
          background(this.o.store.state.releaseCallSlot(a.agent.tenantId, record.id));
        },
      });
      log.info('sip call answered', { callId: record.id, sipCallId: msg.callId, codec: n?.codec ?? 'offered', rtpPort: ports.port, trunk: a.trunk.id });
      await this.converse(live, record.id, true);
      return true;
    } catch (err) {
      // Only this call fails. Once it exists, hanging it up (BYE) releases its ports, slot and records.
      reportInternalError('sip', err, { callId: record.id });
      if (call) {
        call.hangup('call setup failed');
        return true;
      }
      rtp?.close();
      if (dialog) safe(() => dialog!.bye());
      else safe(() => req.reject({ statusCode: 500 }));
      background(this.o.store.state.releaseCallSlot(a.agent.tenantId, record.id));
      background(this.o.store.calls.updateCallStatus(record.id, 'failed', 'call setup failed'));
      return false;
    }
  }

  private get localUri(): string {
    return `sip:${LOCAL_USER}@${this.o.config.sipPublicIp}:${this.port}`;
  }

  /**
   * A call on an established dialog, inbound or outbound: the SipCall on the
   * shared clock and its CallSession. `onClosed` releases what only the
   * caller of this holds (a tenant slot, a TCP route, a pinned address).
   */
  private startCall(c: {
    recordId: string; agent: ResolvedAgent; rtp: RtpSession; media: CallMedia; dialog: Session; allowRefer: boolean; remoteHost: string;
    /** The session timer's first terms (RFC 4028) and whether the peer takes UPDATE for refreshes. */
    timer: { terms: TimerTerms | null; update: boolean };
    remoteParty?: 'caller' | 'callee'; onClosed(reason: string): void;
  }): SipCall {
    const timer = new SessionTimer({
      dialog: c.dialog, update: c.timer.update, sdp: () => c.media.last, onAnswer: (sdp) => c.media.refreshAnswer(sdp),
      expired: (reason) => live.hangup(reason), msPerSecond: this.timerMsPerSecond,
    });
    const live: SipCall = new SipCall({
      rtp: c.rtp, media: c.media, dialog: c.dialog, allowRefer: c.allowRefer, mediaTimeoutMs: this.mediaTimeoutMs,
      localUri: this.localUri, remoteHost: c.remoteHost, remoteParty: c.remoteParty, timer,
      onClosed: (reason, stats) => {
        timer.stop();
        this.calls.delete(c.recordId);
        background(this.o.store.calls.setMediaStats(c.recordId, { ...stats, codec: c.media.codec }));
        if (live.session) background(live.session.end(reason));
        else background(this.o.store.calls.updateCallStatus(c.recordId, 'failed', reason));
        background(this.o.store.state.unregisterCall(c.recordId));
        guarded('sip', () => c.onClosed(reason));
        if (this.draining && this.calls.size === 0 && this.pending === 0) this.drained?.();
        guarded('sip', () => recordQuality(this.o.store.calls, c.recordId, c.rtp.quality()));
      },
    });
    this.calls.set(c.recordId, live);
    timer.set(c.timer.terms);
    // A call we placed (the far end is the callee) is counted as outbound by the dialer, not as inbound here.
    const direction = c.remoteParty === 'callee' ? 'outbound' : 'inbound';
    const session = new CallSession({ callId: c.recordId, transport: live, agent: c.agent, providers: this.o.providers, calls: this.o.store.calls, direction });
    live.session = session;
    session.whenEnded((reason) => live.hangup(reason));
    return live;
  }

  /** The call is up: registered for the lost-node sweep, (inbound) marked in progress, and the agent greets. */
  private async converse(live: SipCall, recordId: string, markInProgress: boolean): Promise<void> {
    await this.o.store.state.registerCall(recordId, this.o.store.state.nodeId, 4 * 3600_000);
    if (markInProgress) await this.o.store.calls.updateCallStatus(recordId, 'in-progress');
    const session = live.session!;
    const conversation = this.o.onSession(session);
    await session.start();
    if (!session.isEnded) conversation.start();
  }

  /**
   * Places an outbound call through a trunk (sip/uac.ts): RTP ports and our
   * offer first, then the INVITE. Resolves with its SIP Call-ID once it is
   * sent; the call's progress comes through `d.events`. Throws when it cannot
   * be placed at all (SIP off, draining, full, no RTP port, TCP connect failed).
   */
  async dial(d: SipDial): Promise<string> {
    const uas = this.uas;
    if (!uas || !this.sockets) throw new Error('SIP is disabled (SIP_PORT=0)');
    if (this.draining) throw new Error('draining');
    if (this.calls.size + this.outgoing.size + (this.o.otherCalls?.() ?? 0) >= this.o.config.maxConcurrentCalls) throw new Error('at MAX_CONCURRENT_CALLS');
    const c = this.o.config;
    if (d.target.proto !== 'udp') {
      // RFC 3263 §4.3: a connection that fails moves on to the next target; the last failure is the dial's.
      for (const [i, target] of [d.target, ...(d.alternatives ?? [])].entries()) {
        try {
          d.target.conn = await this.sockets.connect(target.proto as 'tcp' | 'tls', target.address, target.port, d.trunk.host);
          d.target.address = target.address;
          d.target.port = target.port;
          break;
        } catch (err) {
          if (i === (d.alternatives?.length ?? 0)) throw err;
          log.info('sip trunk target unreachable, trying the next', { callId: d.recordId, target: `${target.address}:${target.port}`, err: (err as Error).message });
        }
      }
    }
    const ports = await allocateRtpPorts(c.sipHost, c.rtpPortMin, c.rtpPortMax);
    if (!ports) throw new Error('no free RTP port');
    let live: SipCall | null = null;
    const rtp = new RtpSession({
      rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, ...OUR_OFFER, remote: null, latchFrom: [d.target.address],
      onDigit: (digit) => live?.session?.dtmf(digit),
    });
    rtp.early = true;
    const media = new CallMedia(rtp, c.sipPublicIp, null, null);
    let rang = false;
    /** The first SDP answer (183 or 200) sets the media; false when it is unusable or points where we may not send. */
    const answer = (sdp: string): boolean => {
      if (!media.awaitingAnswer) return true;
      const n = negotiate(parseSdp(sdp) ?? { connection: null, direction: null, media: [] });
      if (n?.remoteAddress && !d.mediaAllowed(n.remoteAddress)) return false;
      return media.answerInAck(sdp);
    };
    // Declared first: its callbacks (below) run only after it exists, from the network.
    let uac: OutgoingCall;
    const events: UacEvents = {
      onProgress: (code, sdp) => {
        if (!rang) d.events.status('ringing');
        rang = true;
        if (sdp && !answer(sdp)) uac.cancel('failed', 'SIP;cause=488;text="Not Acceptable Here"');
      },
      onAnswer: (sdp, dialog, response) => {
        this.outgoing.delete(d.recordId);
        if (!answer(sdp)) {
          safe(() => dialog.bye());
          rtp.close();
          uac.released();
          return d.events.status('failed', { endReason: 'no usable SDP answer' });
        }
        rtp.early = false;
        log.info('sip outbound call answered', { callId: d.recordId, sipCallId: uac.callId, codec: media.codec, earlyMediaPackets: rtp.earlyPackets });
        try {
          live = this.startCall({
            recordId: d.recordId, agent: d.agent, rtp, media, dialog, allowRefer: d.allowRefer, remoteHost: d.trunk.host, remoteParty: 'callee',
            timer: { terms: termsFromAnswer(response), update: allowsUpdate(response) },
            onClosed: (reason) => {
              uac.released();
              d.events.status('completed', { endReason: reason });
            },
          });
        } catch (err) {
          // Nothing runs the call: take it down (BYE) and release its media here.
          reportInternalError('sip', err, { callId: d.recordId });
          safe(() => dialog.bye());
          rtp.close();
          uac.released();
          return d.events.status('failed', { endReason: 'call setup failed' });
        }
        d.events.status('in-progress');
        const call = live;
        // A failing hook must not keep the agent from the call.
        guarded('sip', () => d.onAnswered?.(call));
        this.converse(call, d.recordId, false).catch((err) => {
          reportInternalError('sip', err, { callId: d.recordId });
          call.hangup('call setup failed');
        });
      },
      onFailed: (outcome, code, reason) => {
        this.outgoing.delete(d.recordId);
        rtp.close();
        log.info('sip outbound call not answered', { callId: d.recordId, sipCallId: uac.callId, outcome, status: code, earlyMediaPackets: rtp.earlyPackets });
        d.events.status(outcome, { endReason: `${code} ${reason}`.trim() });
      },
    };
    try {
      uac = new OutgoingCall({ uas, core: uas.cores[d.target.proto], target: d.target, to: d.to, from: d.from, trunk: d.trunk, offer: media.last, credentials: d.credentials, timeoutMs: d.timeoutMs }, events);
    } catch (err) {
      rtp.close();
      throw err;
    }
    this.outgoing.set(d.recordId, uac);
    return uac.callId;
  }

  /** Ends an outbound call we placed, whatever its state: CANCEL while it rings, BYE once answered. */
  hangupOutbound(recordId: string, reason = 'hung up'): void {
    this.outgoing.get(recordId)?.cancel('canceled');
    this.calls.get(recordId)?.hangup(reason);
  }

  async drain(): Promise<void> {
    this.draining = true;
    if (this.uas) this.uas.draining = true;
    if (this.calls.size === 0 && this.pending === 0) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
  }

  async close(): Promise<void> {
    const ending = this.outgoing.size + this.calls.size;
    for (const uac of [...this.outgoing.values()]) uac.cancel('canceled');
    for (const call of [...this.calls.values()]) call.hangup('server shutting down');
    // The BYEs and CANCELs just asked for leave through the transport a tick
    // later, and their first retransmission is at T1 (500 ms): keep the
    // sockets open that long, or the far end is never told the call ended.
    if (ending > 0) await new Promise((r) => setTimeout(r, BYE_GRACE_MS));
    this.uas?.close();
    await this.sockets?.close();
  }
}

/** The call's E-model estimate: stored with the call and observed in aybiza_call_mos when measured. */
export function recordQuality(calls: ControlPlane['calls'], callId: string, quality: CallQuality): void {
  if (quality.mos !== null) callMos.observe(quality.mos);
  background(calls.setQuality(callId, quality));
}

/** A promise nobody waits for: its failure is counted and logged, never an unhandled rejection. */
export function background(p: Promise<unknown>): void {
  p.catch((err) => reportInternalError('sip', err));
}

/** Runs a sip.js call whose transaction may already have ended. */
export function safe(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // A transaction that already ended (e.g. CANCEL raced the answer).
  }
}
