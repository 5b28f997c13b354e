// WORKERS > 1, main thread: SIP signalling stays here (one UAS on SIP_PORT,
// dialogs, digest nonces), and each admitted call's media goes to the least
// loaded media worker (src/worker/sip-media.ts). The SDP answer needs the
// RTP port, so the chosen worker binds it first and sends back its SDP; the
// 200 goes out from here, then the worker starts the call. In-dialog requests
// (BYE, ACK, INFO, re-INVITE, UPDATE) are forwarded to the worker and its
// answers sent back; its BYE and REFER are sent from here.
import type { IncomingInviteRequest, IncomingRequest, Session, SessionDelegate } from 'sip.js/lib/core/index.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import type { ControlPlane, ResolvedAgent } from '../store/index.js';
import { background, safe } from '../../sip/index.js';
import type { Negotiated, SdpOffer } from '../../sip/sdp.js';
import type { InviteContext, SipUas, UpdateDelegate } from '../../sip/uas.js';
import { allowsUpdate, answerTimer, SessionTimer, type TimerAnswer } from '../../sip/session-timer.js';
import { countBadInput } from '../metrics/index.js';
import type { Rpc } from './rpc.js';
import type { ForwardedReply, ForwardedRequest, SipMediaPrepare, SipMediaStart } from './sip-media.js';

const RETRY_AFTER_S = 5;
const REPLY_TIMEOUT_MS = 10_000;

export interface HandoffWorker {
  index: number;
  rpc: Rpc;
}

/** What SipServer hands over for one admitted INVITE (sip/index.ts). */
export interface HandoffCall {
  req: IncomingInviteRequest;
  ctx: InviteContext;
  n: Negotiated | null;
  offer: SdpOffer | null;
  /** The session timer part of our 200 (RFC 4028, sip/session-timer.ts). */
  timer: Extract<TimerAnswer, { status: 200 }>;
  agent: ResolvedAgent;
  number: string;
  trunk: { id: string; allowRefer: boolean };
  uas: SipUas | null;
  localUri: string;
  mediaTimeoutMs: number;
  /** Milliseconds per second of a session timer's interval (SipServer.timerMsPerSecond). */
  timerMsPerSecond: number;
  /** Called when a handed call is over (SipServer's drain). */
  onEnded(): void;
}

interface RemoteCall {
  id: string;
  worker: HandoffWorker;
  dialog: Session;
  sipCallId: string;
  remoteTag: string;
  tenantId: string;
  uas: SipUas | null;
  onEnded(): void;
  /** Hung up before the caller's ACK: BYE when it comes (RFC 3261 §15). */
  byeAfterAck: boolean;
  /** The dialog's session timer: kept here with the dialog; its expiry hangs the worker's call up. */
  timer: SessionTimer;
  /** Our current description (the last 2xx's SDP), repeated by a re-INVITE refresh. */
  sdp: string;
}

export class SipHandoff {
  private readonly calls = new Map<string, RemoteCall>();
  private readonly replies = new Map<number, (rep: ForwardedReply) => void>();
  private nextReq = 1;

  /** `pick` chooses the least-loaded worker for a call (and counts it there until the worker reports it). */
  constructor(private readonly store: ControlPlane, private readonly pick: (callId: string) => HandoffWorker | null, private readonly unpick: (w: HandoffWorker, callId: string) => void) {}

  /** SIP calls whose media a worker carries. */
  get size(): number {
    return this.calls.size;
  }

  /** Serves one worker's side of the channel. */
  attach(w: HandoffWorker): void {
    w.rpc.handle('sip-bye', (callId: string) => {
      const rc = this.calls.get(callId);
      if (rc) this.bye(rc);
    });
    w.rpc.handle('sip-reply', (rep: ForwardedReply) => {
      const fn = this.replies.get(rep.reqId);
      this.replies.delete(rep.reqId);
      fn?.(rep);
    });
    w.rpc.handle('sip-refer', (callId: string, extraHeaders: string[]) => {
      const rc = this.calls.get(callId);
      if (!rc) return false;
      return new Promise<boolean>((resolve) => {
        try {
          rc.dialog.refer({ onAccept: () => resolve(true), onReject: () => resolve(false) }, { extraHeaders });
        } catch {
          resolve(false);
        }
      });
    });
    w.rpc.handle('sip-closed', (callId: string) => {
      const rc = this.calls.get(callId);
      if (rc) this.forget(rc);
    });
  }

  /** The worker died: its callers get our BYE, and their dialogs and slots go. */
  workerExited(index: number): void {
    for (const rc of [...this.calls.values()]) {
      if (rc.worker.index !== index) continue;
      this.bye(rc);
      this.forget(rc);
    }
  }

  /** Every handed call gets our BYE (shutdown after the workers have gone). */
  hangupAll(): void {
    for (const rc of [...this.calls.values()]) {
      this.bye(rc);
      this.forget(rc);
    }
  }

  /**
   * The call record, the tenant slot, the worker's RTP and SDP, our 200, then
   * the call starts in the worker. True once the call is live (its end
   * releases everything); false when refused or cancelled (answered here).
   */
  async answer(h: HandoffCall): Promise<boolean> {
    const { req, ctx, agent } = h;
    const msg = req.message;
    const state = this.store.state;
    const record = await this.store.calls.createCall({
      tenantId: agent.tenantId, agentId: agent.agentId, agentVersion: agent.agentVersion, transport: 'sip',
      externalId: msg.callId, from: msg.from.uri.user ?? null, to: h.number, status: 'ringing',
    });
    const refuse = (statusCode: number, status: string, reason: string) => {
      background(state.releaseCallSlot(agent.tenantId, record.id));
      background(this.store.calls.updateCallStatus(record.id, status, reason));
      safe(() => req.reject({ statusCode, extraHeaders: statusCode === 503 ? [`Retry-After: ${RETRY_AFTER_S}`] : undefined }));
      return false;
    };
    if (agent.maxConcurrentCalls !== null && !(await state.acquireCallSlot(agent.tenantId, record.id, agent.maxConcurrentCalls))) {
      return refuse(503, 'busy', 'tenant at its call limit');
    }
    const w = this.pick(record.id);
    if (!w) return refuse(503, 'failed', 'no media worker');
    const prepare: SipMediaPrepare = { callId: record.id, offer: h.offer, n: h.n, latchFrom: [ctx.source.address] };
    const prep = await w.rpc.call<{ sdp: string; port: number } | null>('sip-prepare', prepare).catch((err) => {
      reportInternalError('worker', err, { callId: record.id });
      return null;
    });
    if (!prep) {
      this.unpick(w, record.id);
      return refuse(503, 'failed', 'no RTP port');
    }
    let dialog: Session;
    try {
      dialog = req.accept({
        statusCode: 200, extraHeaders: h.timer.headers, body: { contentDisposition: 'session', contentType: 'application/sdp', content: prep.sdp },
      }).session;
    } catch (err) {
      // CANCEL won the race: the INVITE is already answered with 487.
      w.rpc.notify('sip-abort', record.id);
      this.unpick(w, record.id);
      background(state.releaseCallSlot(agent.tenantId, record.id));
      background(this.store.calls.updateCallStatus(record.id, 'canceled', 'caller cancelled'));
      log.info('sip call cancelled before answer', { callId: msg.callId, err: (err as Error).message });
      return false;
    }
    const remoteTag = msg.fromTag ?? '';
    h.uas?.rememberDialog(msg.callId, remoteTag, ctx.source);
    const forward = (r: ForwardedRequest) => this.calls.get(record.id) === rc && w.rpc.notify('sip-event', record.id, r);
    const timer = new SessionTimer({
      dialog, update: allowsUpdate(msg), sdp: () => rc.sdp,
      onAnswer: (sdp) => forward({ kind: 'refresh_answer', body: sdp }),
      expired: (reason) => forward({ kind: 'expired', body: reason }), msPerSecond: h.timerMsPerSecond,
    });
    const rc: RemoteCall = {
      id: record.id, worker: w, dialog, sipCallId: msg.callId, remoteTag, tenantId: agent.tenantId, uas: h.uas, onEnded: h.onEnded, byeAfterAck: false,
      timer, sdp: prep.sdp,
    };
    this.calls.set(record.id, rc);
    dialog.delegate = this.forwarders(rc);
    timer.set(h.timer.terms);
    try {
      await state.registerCall(record.id, state.nodeId, 4 * 3600_000);
      await this.store.calls.updateCallStatus(record.id, 'in-progress');
      log.info('sip call answered', { callId: record.id, sipCallId: msg.callId, codec: h.n?.codec ?? 'offered', rtpPort: prep.port, trunk: h.trunk.id, worker: w.index });
      const start: SipMediaStart = {
        callId: record.id, agent, allowRefer: h.trunk.allowRefer, mediaTimeoutMs: h.mediaTimeoutMs, localUri: h.localUri, remoteHost: msg.from.uri.host,
      };
      await w.rpc.call('sip-start', start);
    } catch (err) {
      // Only this call fails: our BYE, and the worker's side closes with it.
      reportInternalError('sip', err, { callId: record.id });
      w.rpc.notify('sip-abort', record.id);
      background(this.store.calls.updateCallStatus(record.id, 'failed', 'call setup failed'));
      this.bye(rc);
      this.forget(rc);
    }
    return true;
  }

  private bye(rc: RemoteCall): void {
    try {
      rc.dialog.bye();
    } catch {
      // Before the caller's ACK (sent when it or its timeout comes), or the dialog is gone already.
      rc.byeAfterAck = true;
    }
  }

  private forget(rc: RemoteCall): void {
    if (this.calls.get(rc.id) !== rc) return;
    rc.timer.stop();
    this.calls.delete(rc.id);
    this.unpick(rc.worker, rc.id);
    rc.uas?.forgetDialog(rc.sipCallId, rc.remoteTag);
    background(this.store.state.releaseCallSlot(rc.tenantId, rc.id));
    background(this.store.state.unregisterCall(rc.id));
    rc.onEnded();
  }

  /** The dialog's requests go to the worker; those that need an answer wait for it (500 if none comes). */
  private forwarders(rc: RemoteCall): SessionDelegate & UpdateDelegate {
    const forward = (r: ForwardedRequest) => rc.worker.rpc.notify('sip-event', rc.id, r);
    const ask = (kind: ForwardedRequest['kind'], req: IncomingRequest, terms?: Extract<TimerAnswer, { status: 200 }>) => {
      const reqId = this.nextReq++;
      const timer = setTimeout(guard('sip', () => {
        if (this.replies.delete(reqId)) safe(() => req.reject({ statusCode: 500 }));
      }), REPLY_TIMEOUT_MS);
      timer.unref();
      this.replies.set(reqId, (rep) => {
        clearTimeout(timer);
        if (!rep.ok) return void safe(() => req.reject({ statusCode: rep.statusCode }));
        const body = rep.sdp ? { contentDisposition: 'session', contentType: 'application/sdp', content: rep.sdp } : undefined;
        safe(() => req.accept({ statusCode: rep.statusCode, body, extraHeaders: terms?.headers }));
        if (rep.sdp) rc.sdp = rep.sdp;
        if (terms) rc.timer.set(terms.terms);
      });
      forward({ kind, reqId, body: req.message.body || undefined, contentType: req.message.getHeader('content-type') });
    };
    const live = () => this.calls.get(rc.id) === rc;
    /** A re-INVITE or UPDATE: the session timer's part is answered here (400/422 without asking the worker), the media's there. */
    const refresh = (kind: 'invite' | 'update', req: IncomingRequest) => {
      const t = answerTimer(req.message, rc.timer.terms);
      if (t.status === 200) return ask(kind, req, t);
      if (t.status === 400) countBadInput('sip', t.reason);
      safe(() => req.reject({ statusCode: t.status, extraHeaders: t.headers }));
    };
    return {
      onBye: guard('sip', (bye: IncomingRequest) => {
        safe(() => bye.accept());
        if (live()) forward({ kind: 'bye' });
      }),
      onAck: guard('sip', (ack: IncomingRequest) => {
        if (rc.byeAfterAck) return void this.sendBye(rc);
        if (live()) forward({ kind: 'ack', body: ack.message.body || undefined });
      }),
      onAckTimeout: guard('sip', () => {
        if (rc.byeAfterAck) return void this.sendBye(rc);
        if (live()) forward({ kind: 'ack_timeout' });
      }),
      onInfo: guard('sip', (info: IncomingRequest) => (live() ? ask('info', info) : safe(() => info.reject({ statusCode: 481 })))),
      onInvite: guard('sip', (re: IncomingRequest) => (live() ? refresh('invite', re) : safe(() => re.reject({ statusCode: 481 })))),
      onUpdate: guard('sip', (up: IncomingRequest) => (live() ? refresh('update', up) : safe(() => up.reject({ statusCode: 481 })))),
    } as unknown as SessionDelegate & UpdateDelegate;
  }

  private sendBye(rc: RemoteCall): void {
    rc.byeAfterAck = false;
    safe(() => rc.dialog.bye());
  }
}
