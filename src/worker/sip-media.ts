// A SIP call's media in a media worker (WORKERS > 1). SIP signalling stays
// in the main thread (src/worker/sip-handoff.ts); the call's RTP ports,
// jitter buffer, SipCall, CallSession and conversation live here. The SipCall
// is the same class as on one thread: it talks to a DialogProxy, which sends
// BYE and REFER to the main thread and receives the dialog's requests from it.
import type { Config } from '../config.js';
import { log } from '../log.js';
import { CallSession } from '../call/session.js';
import type { Component } from '../server/server.js';
import type { ControlPlane, ResolvedAgent } from '../store/index.js';
import type { Providers } from '../providers/types.js';
import { SipCall } from '../../sip/call.js';
import { background, recordQuality } from '../../sip/index.js';
import { CallMedia } from '../../sip/media.js';
import { allocateRtpPorts, RtpSession } from '../../sip/rtp.js';
import { OUR_OFFER, type Negotiated, type SdpOffer } from '../../sip/sdp.js';
import type { Rpc } from './rpc.js';

export interface SipMediaPrepare {
  callId: string;
  offer: SdpOffer | null;
  n: Negotiated | null;
  /** Addresses the first RTP may come from (the signalling source). */
  latchFrom: string[];
}

export interface SipMediaStart {
  callId: string;
  agent: ResolvedAgent;
  allowRefer: boolean;
  mediaTimeoutMs: number;
  localUri: string;
  remoteHost: string;
}

/** An in-dialog request as the main thread forwards it: what SipCall reads of it. */
export interface ForwardedRequest {
  /** `expired`: the main thread's session timer ran out (body: the reason); `refresh_answer`: the answer to its re-INVITE refresh. */
  kind: 'bye' | 'ack' | 'ack_timeout' | 'info' | 'invite' | 'update' | 'expired' | 'refresh_answer';
  /** Set when the main thread waits for our answer (info, invite, update). */
  reqId?: number;
  body?: string;
  contentType?: string;
}

export interface ForwardedReply {
  reqId: number;
  ok: boolean;
  statusCode: number;
  sdp?: string;
}

type Delegate = Record<string, ((req: unknown) => void) | undefined>;

/** What SipCall uses of a sip.js dialog, over the channel. */
class DialogProxy {
  delegate: Delegate | undefined;
  constructor(private readonly rpc: Rpc, private readonly callId: string) {}

  bye(): void {
    // The main thread sends it, or holds it until the caller's ACK (RFC 3261 §15).
    this.rpc.notify('sip-bye', this.callId);
  }

  refer(d: { onAccept(): void; onReject(): void }, opts: { extraHeaders: string[] }): void {
    this.rpc.call<boolean>('sip-refer', this.callId, opts.extraHeaders).then(
      (ok) => (ok ? d.onAccept() : d.onReject()),
      () => d.onReject(),
    );
  }

  /** Hands a forwarded request to SipCall's delegate as sip.js would. */
  deliver(r: ForwardedRequest): void {
    const reply = (ok: boolean, o?: { statusCode?: number; body?: { content: string } }) => {
      if (r.reqId === undefined) return;
      const rep: ForwardedReply = { reqId: r.reqId, ok, statusCode: o?.statusCode ?? (ok ? 200 : 500), sdp: o?.body?.content };
      this.rpc.notify('sip-reply', rep);
    };
    const req = {
      message: { body: r.body ?? '', getHeader: (name: string) => (name.toLowerCase() === 'content-type' ? r.contentType : undefined) },
      accept: (o?: { statusCode?: number; body?: { content: string } }) => reply(true, o),
      reject: (o?: { statusCode?: number }) => reply(false, o),
    };
    const handler = { bye: 'onBye', ack: 'onAck', ack_timeout: 'onAckTimeout', info: 'onInfo', invite: 'onInvite', update: 'onUpdate',
      expired: 'onSessionExpired', refresh_answer: 'onRefreshAnswer' }[r.kind];
    const fn = this.delegate?.[handler];
    if (fn) fn(req);
    else if (r.reqId !== undefined) reply(false, { statusCode: 501 });
  }
}

export interface SipMediaOptions {
  rpc: Rpc;
  config: Config;
  store: ControlPlane;
  providers: Providers;
  onSession(session: CallSession): { start(): void };
}

/** In-dialog requests kept for a call not yet started (an ACK, perhaps a re-INVITE or BYE): more is not a real dialog. */
const EARLY_REQUESTS_MAX = 8;

/** The worker's SIP calls: their RTP, SipCall and session; drained and closed with the worker. */
export class SipMediaWorker implements Component {
  readonly name = 'sip-media';
  private readonly prepared = new Map<string, { rtp: RtpSession; media: CallMedia }>();
  private readonly calls = new Map<string, { call: SipCall; dialog: DialogProxy }>();
  /**
   * In-dialog requests that came before the call started here: the main
   * thread sends the 200 before 'sip-start', so the caller's ACK (which
   * carries the SDP answer of a delayed offer), or an early BYE, can arrive
   * first. Bounded per call; delivered in order once the call starts.
   */
  private readonly early = new Map<string, ForwardedRequest[]>();
  private drained: (() => void) | null = null;

  constructor(private readonly o: SipMediaOptions) {
    const { rpc } = o;
    rpc.handle('sip-prepare', (p: SipMediaPrepare) => this.prepare(p));
    rpc.handle('sip-abort', (callId: string) => {
      this.prepared.get(callId)?.rtp.close();
      this.prepared.delete(callId);
      this.early.delete(callId);
    });
    rpc.handle('sip-start', (s: SipMediaStart) => this.startCall(s));
    rpc.handle('sip-event', (callId: string, r: ForwardedRequest) => {
      const live = this.calls.get(callId);
      if (live) return live.dialog.deliver(r);
      if (!this.prepared.has(callId)) return;
      const queued = this.early.get(callId) ?? [];
      if (queued.length < EARLY_REQUESTS_MAX) this.early.set(callId, [...queued, r]);
    });
  }

  /** Calls started here (not those still waiting for the 200). */
  get liveCalls(): number {
    return this.calls.size;
  }

  get size(): number {
    return this.calls.size + this.prepared.size;
  }

  /** Binds the call's RTP ports here; our SDP (answer, or offer without one) for the main thread's 200. */
  private async prepare(p: SipMediaPrepare): Promise<{ sdp: string; port: number } | null> {
    const c = this.o.config;
    const ports = await allocateRtpPorts(c.sipHost, c.rtpPortMin, c.rtpPortMax);
    if (!ports) return null;
    const f = p.n ?? OUR_OFFER;
    const callId = p.callId;
    const rtp = new RtpSession({
      rtp: ports.rtp, rtcp: ports.rtcp, localPort: ports.port, codec: f.codec, pt: f.pt, dtmfPt: f.dtmfPt,
      remote: null, latchFrom: p.latchFrom, onDigit: (d) => this.calls.get(callId)?.call.session?.dtmf(d),
    });
    const media = new CallMedia(rtp, c.sipPublicIp, p.offer, p.n);
    this.prepared.set(callId, { rtp, media });
    return { sdp: media.last, port: ports.port };
  }

  /** The 200 went out: the call and its conversation start here. */
  private async startCall(s: SipMediaStart): Promise<void> {
    const prep = this.prepared.get(s.callId);
    if (!prep) {
      this.early.delete(s.callId);
      throw new Error('no prepared media for this call');
    }
    this.prepared.delete(s.callId);
    const { store, rpc } = this.o;
    const dialog = new DialogProxy(rpc, s.callId);
    const { rtp, media } = prep;
    const call: SipCall = new SipCall({
      rtp, media, dialog: dialog as never, allowRefer: s.allowRefer, mediaTimeoutMs: s.mediaTimeoutMs,
      localUri: s.localUri, remoteHost: s.remoteHost,
      onClosed: (reason, stats) => {
        this.calls.delete(s.callId);
        background(store.calls.setMediaStats(s.callId, { ...stats, codec: media.codec }));
        if (call.session) background(call.session.end(reason));
        else background(store.calls.updateCallStatus(s.callId, 'failed', reason));
        recordQuality(store.calls, s.callId, rtp.quality());
        rpc.notify('sip-closed', s.callId);
        if (this.drained && this.size === 0) this.drained();
      },
    });
    this.calls.set(s.callId, { call, dialog });
    const session = new CallSession({ callId: s.callId, transport: call, agent: s.agent, providers: this.o.providers, calls: store.calls });
    call.session = session;
    session.whenEnded((reason) => call.hangup(reason));
    const early = this.early.get(s.callId);
    this.early.delete(s.callId);
    for (const r of early ?? []) dialog.deliver(r);
    const conversation = this.o.onSession(session);
    try {
      await session.start();
      if (!session.isEnded) conversation.start();
    } catch (err) {
      log.warn('sip call setup failed in the worker', { callId: s.callId, err: (err as Error).message });
      call.hangup('call setup failed');
    }
  }

  async drain(): Promise<void> {
    if (this.size === 0) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
  }

  async close(): Promise<void> {
    for (const { rtp } of this.prepared.values()) rtp.close();
    this.prepared.clear();
    this.early.clear();
    for (const { call } of [...this.calls.values()]) call.hangup('server shutting down');
  }
}
