// One outbound INVITE as a user-agent client on the same sip.js core our UAS
// runs on (sip/uas.ts), so the dialog, its BYE either way and the 2xx/ACK
// retransmissions are the core's, and the sockets and the UDP retransmission
// of our requests (Timers A/E) are the UAS's. What the core leaves to us
// (reference outbound.md §4):
// - the ring timeout: CANCEL when it passes (the core has none); a trunk that
//   never answered at all is `failed`, one that rang is `no-answer`;
// - digest (MD5 or SHA-256, ./digest.ts): the credentials are set on the request itself (the core's
//   factory takes no arguments), so a 401/407 is answered once, and a second
//   challenge (not `stale`) reaches onReject as a failure;
// - a CANCEL whose 487 never comes, and a 2xx that races our CANCEL (ACK, then BYE);
// - every request of the call goes to the one checked address (uas.pin).
// Delegate callbacks from the core run under the callback guard.
import crypto from 'node:crypto';
import {
  ClientTransaction, LoggerFactory, URI, type IncomingResponseMessage, type OutgoingRequestMessage,
  type AckableIncomingResponseWithSession, type IncomingResponse, type OutgoingInviteRequest, type PrackableIncomingResponseWithSession, type Session, type UserAgentCore,
} from 'sip.js/lib/core/index.js';
import { guard, guarded } from '../src/guard.js';
import type { Source } from './transport.js';
import type { SipUas } from './uas.js';
import { ClientDigest } from './digest.js';

/** How an outbound INVITE ended before (or instead of) an answer. */
export type UacFailure = 'busy' | 'no-answer' | 'failed' | 'canceled';

export interface UacOptions {
  uas: SipUas;
  core: UserAgentCore;
  /** Where every request of the call goes (the checked trunk address). */
  target: Source;
  /** The callee, e.g. +15557654321; the trunk host is the Request-URI's host. */
  to: string;
  from: { user: string; host: string };
  trunk: { host: string; port: number };
  offer: string;
  credentials?: { username: string; password: string };
  /** Ring time before CANCEL (default 30 s). */
  timeoutMs?: number;
}

export interface UacEvents {
  /** 180/183 (not 100); `sdp` when it carries the answer (early media). */
  onProgress(statusCode: number, sdp: string | null): void;
  /** 2xx: already ACKed; the dialog is the call's from now on. */
  onAnswer(sdp: string, session: Session, response: IncomingResponseMessage): void;
  /** A final non-2xx, a timeout or our cancel; the call never started. */
  onFailed(outcome: UacFailure, statusCode: number, reason: string): void;
}

/** RFC 3261 §21: who answered what. 600 Busy Everywhere is busy too. */
export function failureOutcome(code: number): Exclude<UacFailure, 'canceled'> {
  if (code === 486 || code === 600 || code === 603) return 'busy';
  if (code === 408 || code === 480 || code === 487) return 'no-answer';
  return 'failed';
}

/**
 * sip.js names a client transaction's branch z9hG4bK + Math.random()·10⁷: at
 * campaign rates two live transactions (ours are keyed by branch) would share
 * one. 96 random bits instead; a CANCEL keeps its INVITE's branch (RFC 3261 §9.1).
 */
(ClientTransaction as unknown as { makeId(r: OutgoingRequestMessage): string }).makeId = (r) => {
  if (r.method !== 'CANCEL') return 'z9hG4bK' + crypto.randomBytes(12).toString('hex');
  if (!r.branch) throw new Error('Outgoing CANCEL request without a branch.');
  return r.branch;
};

/** A CANCEL's 487 (or a racing 2xx) gets this long before we give up on the INVITE. */
const CANCEL_GRACE_MS = 8_000;
/** 64·T1: the longest a request of the call is retransmitted. */
const PIN_AFTER_END_MS = 32_000;
const loggerFactory = new LoggerFactory();
loggerFactory.builtinEnabled = false;

export class OutgoingCall {
  readonly callId: string;
  private readonly request: OutgoingInviteRequest;
  private readonly timer: NodeJS.Timeout;
  private graceTimer: NodeJS.Timeout | null = null;
  private settled = false;
  /** Any response beyond 100 arrived (the far end rings). */
  private rang = false;
  private responded = false;
  /** Why we cancelled: decides the outcome when the 487 comes. */
  private cancelledAs: UacFailure | null = null;

  constructor(private readonly o: UacOptions, private readonly events: UacEvents) {
    const { core } = o;
    // Over TLS the Request-URI says so (RFC 3263 §4.1), with its port unless it is 5061.
    const ruri = o.target.proto === 'tls'
      ? new URI('sip', o.to, o.trunk.host, o.trunk.port === 5061 ? undefined : o.trunk.port, { transport: 'tls' })
      : new URI('sip', o.to, o.trunk.host, o.trunk.port === 5060 ? undefined : o.trunk.port);
    const toUri = new URI('sip', o.to, o.trunk.host);
    const fromUri = new URI('sip', o.from.user, o.from.host);
    const contact = core.configuration.contact.uri.toString();
    const msg = core.makeOutgoingRequestMessage(
      'INVITE', ruri, fromUri, toUri, {},
      [`Contact: <${contact}>`, 'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE'],
      { contentDisposition: 'session', contentType: 'application/sdp', content: o.offer },
    );
    this.callId = msg.callId;
    o.uas.pin(msg.callId, o.target);
    const fail = () => this.finish('failed', 500, 'internal error');
    this.request = core.invite(msg, {
      onTrying: guard('sip', () => {
        this.responded = true;
      }, fail),
      onProgress: guard('sip', ({ message }: PrackableIncomingResponseWithSession) => {
        this.responded = this.rang = true;
        if (this.settled) return;
        const sdp = (message.getHeader('content-type') ?? '').toLowerCase().startsWith('application/sdp') && message.body ? message.body : null;
        events.onProgress(message.statusCode ?? 180, sdp);
      }, fail),
      onAccept: guard('sip', ({ message, session, ack }: AckableIncomingResponseWithSession) => {
        this.responded = true;
        ack();
        // A 2xx after we gave up (cancel raced it, or a second fork): take the call down.
        if (this.settled) return void safe(() => session.bye());
        this.settle();
        events.onAnswer(message.body ?? '', session, message);
      }, fail),
      onReject: guard('sip', ({ message }: IncomingResponse) => {
        const code = message.statusCode ?? 500;
        this.responded = true;
        this.finish(this.cancelledAs && code === 487 ? this.cancelledAs : failureOutcome(code), code, message.reasonPhrase ?? '', false);
      }, fail),
      onRedirect: guard('sip', ({ message }: IncomingResponse) => this.finish('failed', message.statusCode ?? 300, 'redirect not followed'), fail),
    });
    if (o.credentials) {
      // The core's authenticationFactory() has no argument to tell calls apart: the credentials go on the request.
      // Ours, not sip.js's DigestAuthentication: that one answers MD5 only (./digest.ts ClientDigest adds SHA-256, RFC 8760).
      (this.request as unknown as { credentials: ClientDigest }).credentials = new ClientDigest(o.credentials.username, o.credentials.password);
    }
    this.timer = setTimeout(guard('timer', () => this.cancel(this.rang ? 'no-answer' : 'failed', 'SIP;cause=480;text="No Answer"')), o.timeoutMs ?? 30_000);
  }

  /**
   * Gives up on the INVITE: CANCEL once a provisional response came (RFC 3261
   * §9.1), and the outcome when its 487 arrives (or after a grace period).
   * Idempotent; a no-op once answered or failed.
   */
  cancel(as: UacFailure = 'canceled', reason = 'SIP;cause=487;text="Request Terminated"'): void {
    if (this.settled || this.cancelledAs) return;
    this.cancelledAs = as;
    clearTimeout(this.timer);
    if (!this.responded) {
      // Nothing ever answered: a CANCEL would wait for a 1xx that is not coming.
      return this.finish(as, 408, 'no response');
    }
    guarded('sip', () => this.request.cancel(reason));
    this.graceTimer = setTimeout(guard('timer', () => this.finish(as, 487, 'no answer to CANCEL')), CANCEL_GRACE_MS);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
  }

  /** `abandon`: we stop waiting (timeout), so the core's transaction goes too; after a final response it ends itself. */
  private finish(outcome: UacFailure, code: number, reason: string, abandon = true): void {
    if (this.settled) return;
    this.settle();
    if (abandon) {
      const branch = this.request.message.branch;
      if (branch) this.o.uas.stopResending(branch, 'INVITE');
      guarded('sip', () => this.request.dispose());
    }
    this.released();
    this.events.onFailed(outcome, code, reason);
  }

  /**
   * The call is over. Its last requests (an ACK, a BYE and their
   * retransmissions, or the BYE to a 2xx that raced our CANCEL) still go to
   * the pinned address, never to a Contact the far end chose.
   */
  released(): void {
    setTimeout(() => this.o.uas.unpin(this.callId), PIN_AFTER_END_MS).unref();
  }
}

function safe(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // The dialog already ended.
  }
}
