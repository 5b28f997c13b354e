// A SIP call as a CallTransport: the agent's frames go out as RTP the moment
// playout hands them over on the shared 20 ms clock (lead 20: RTP is played
// as it arrives, so marks count as heard when sent); the caller's audio comes
// out of the jitter buffer on the same clock into the call session. It owns
// the dialog's events (BYE, ACK, re-INVITE). The call ends on BYE (ours or
// theirs), on media timeout, or when the agent hangs up.
// Every callback here (dialog events from sip.js, the clock tick) runs under
// the callback guard: a failure ends this call (or refuses that one request),
// is counted in aybiza_internal_errors_total, and never reaches the others.
import type { IncomingAckRequest, IncomingByeRequest, IncomingInfoRequest, IncomingInviteRequest, IncomingRequest, Session, SessionDelegate } from 'sip.js/lib/core/index.js';
import { clock, type Tickable } from '../src/call/clock.js';
import { guard, guarded, reportInternalError } from '../src/guard.js';
import type { CallSession } from '../src/call/session.js';
import type { CallTransport } from '../src/call/transport.js';
import { countBadInput, hotCounter, mediaFrames, rtpPackets } from '../src/metrics/index.js';
import type { CallMedia } from './media.js';
import type { RtpSession } from './rtp.js';
import type { UpdateDelegate } from './uas.js';
import { answerTimer, type SessionTimer } from './session-timer.js';

const framesOut = hotCounter(mediaFrames, 'sip', 'out');
const STATS_EVERY_TICKS = 50;

export interface SipCallOptions {
  rtp: RtpSession;
  media: CallMedia;
  dialog: Session;
  mediaTimeoutMs: number;
  allowRefer: boolean;
  /** The caller's host, for Refer-To when the target is a bare number. */
  remoteHost: string;
  /** Our URI, for Referred-By. */
  localUri: string;
  /** Who the far end is, for the end reason when it hangs up (default: the caller of an inbound call). */
  remoteParty?: 'caller' | 'callee';
  /**
   * The dialog's session timer (RFC 4028) where the dialog lives in this
   * thread; a media worker's calls have theirs on the main thread
   * (src/worker/sip-handoff.ts), which answers the timer part of a refresh.
   */
  timer?: SessionTimer;
  /** Called once when the call is over, whoever ended it. */
  onClosed(reason: string, stats: ReturnType<RtpSession['stats']>): void;
}

export class SipCall implements CallTransport, Tickable {
  readonly kind = 'sip' as const;
  readonly leadMs = 20;
  session: CallSession | null = null;
  private closed = false;
  private ticks = 0;
  private reported = { lost: 0, late: 0, concealed: 0 };
  /** Hung up before the caller's ACK: the BYE goes out when it arrives (RFC 3261 §15). */
  private byeAfterAck = false;

  constructor(readonly o: SipCallOptions) {
    const { dialog, media } = o;
    const fail = () => this.hangup('internal error');
    dialog.delegate = {
      onBye: guard('sip', (bye: IncomingByeRequest) => {
        safe(() => bye.accept());
        this.close(`${o.remoteParty ?? 'caller'} hung up`);
      }, () => this.close(`${o.remoteParty ?? 'caller'} hung up`)),
      // A delayed offer's answer comes in the ACK.
      onAck: guard('sip', (ack: IncomingAckRequest) => {
        if (this.byeAfterAck) return void this.sendBye();
        if (this.closed) return;
        if (!media.answerInAck(ack.message.body || undefined)) this.hangup('no usable SDP answer in the ACK');
      }, fail),
      onAckTimeout: guard('sip', () => (this.byeAfterAck ? this.sendBye() : this.hangup('no ACK for 200 OK')), fail),
      // SIP INFO DTMF (application/dtmf-relay "Signal=5", or application/dtmf "5"), which some PBXs send instead of RFC 4733.
      onInfo: guard('sip', (info: IncomingInfoRequest) => {
        const digit = infoDigit(info.message.getHeader('content-type'), info.message.body);
        if (digit === null) return void safe(() => info.reject({ statusCode: 415 }));
        safe(() => info.accept());
        this.session?.dtmf(digit);
      }, (_err, info) => safe(() => info.reject({ statusCode: 500 }))),
      // re-INVITE: hold/resume, media move, session refresh (RFC 3264 §8, RFC 4028).
      // A failure refuses this re-INVITE (500); the call keeps its current media.
      onInvite: guard('sip', (re: IncomingInviteRequest) => this.offerAnswer(re, () => media.reinvite(re.message.body || undefined)),
        (_err, re) => safe(() => re.reject({ statusCode: 500 }))),
      // UPDATE (RFC 3311, routed by uas.ts): the same offer/answer as a re-INVITE; without SDP a plain 200.
      onUpdate: guard('sip', (up: IncomingRequest) => this.offerAnswer(up, () => (up.message.body ? media.reinvite(up.message.body) : undefined)),
        (_err, up) => safe(() => up.reject({ statusCode: 500 }))),
      // Media worker only (src/worker/sip-handoff.ts): the main thread's session timer ran out, or its re-INVITE refresh was answered.
      onSessionExpired: guard('sip', (req: IncomingRequest) => this.hangup(req.message.body || 'session timer expired'), fail),
      onRefreshAnswer: guard('sip', (req: IncomingRequest) => void media.refreshAnswer(req.message.body), fail),
    } as SessionDelegate & UpdateDelegate;
    clock.add(this);
  }

  /**
   * Answers a re-INVITE or UPDATE: the session timer's part first when this
   * thread keeps the timer (a malformed header 400, an interval under our
   * minimum 422: the media stays as it was), then `answer()` applies the
   * offer and gives our answer (undefined: the request had no offer, a plain
   * 200; null: 488).
   */
  private offerAnswer(req: IncomingRequest, answer: () => string | null | undefined): void {
    const t = this.o.timer ? answerTimer(req.message, this.o.timer.terms) : null;
    if (t && t.status !== 200) {
      if (t.status === 400) countBadInput('sip', t.reason);
      return void safe(() => req.reject({ statusCode: t.status, extraHeaders: t.headers }));
    }
    const sdp = answer();
    if (sdp === null) return void safe(() => req.reject({ statusCode: 488 }));
    const body = sdp === undefined ? undefined : { contentDisposition: 'session', contentType: 'application/sdp', content: sdp };
    safe(() => req.accept({ statusCode: 200, body, extraHeaders: t?.headers }));
    if (t) this.o.timer!.set(t.terms);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  sendFrame(audio: Uint8Array, offset = 0, length = audio.length - offset): boolean {
    // Not now while keypad events go out: playout keeps the frame for later (not dropped).
    if (this.closed || this.o.rtp.sendingDigits) return false;
    this.o.rtp.send(offset === 0 && length === audio.length ? audio : audio.subarray(offset, offset + length));
    framesOut.inc();
    return true;
  }

  sendMark(name: string): void {
    // RTP has no far-end buffer to wait for: sent is heard. Reported after the
    // current playout tick returns, not from inside it.
    queueMicrotask(() => guarded('sip', () => this.session?.onMarkPlayed(name)));
  }

  clearPlayout(): void {
    // Nothing is buffered on the far side of RTP.
  }

  /**
   * One 20 ms step on the shared clock. A failure ends this call only (with
   * BYE), counted as where="timer"; the other calls' ticks go on.
   */
  tick(): void {
    if (this.closed) return;
    try {
      this.step();
    } catch (err) {
      reportInternalError('timer', err);
      guarded('timer', () => this.hangup('internal error'));
    }
  }

  /** The clock's own guard took us off it (a throw that escaped tick): end the call. */
  tickFailed(): void {
    this.hangup('internal error');
  }

  private step(): void {
    const now = performance.now();
    for (const f of this.o.rtp.takeUnbuffered()) this.session?.inbound(f);
    const frame = this.o.rtp.pop(now);
    if (frame && this.session) this.session.inbound(frame.payload);
    this.o.rtp.tickDigits();
    this.o.rtp.maybeSendRtcp(now);
    if (++this.ticks % STATS_EVERY_TICKS === 0) this.reportStats();
    // On hold (sendonly/inactive) the caller's silence is expected, not a timeout.
    if (!this.o.media.held && now - this.o.rtp.lastPacketAt > this.o.mediaTimeoutMs) this.hangup('media timeout');
  }

  /** Adds the jitter buffer's loss/late/concealment since the last report to the counters. */
  private reportStats(): void {
    const s = this.o.rtp.jitter.stats();
    for (const k of ['lost', 'late', 'concealed'] as const) {
      const d = s[k] - this.reported[k];
      if (d > 0) rtpPackets.inc({ direction: 'in', event: k }, d);
      this.reported[k] = s[k];
    }
  }

  hangup(reason: string): void {
    if (this.closed) return;
    try {
      this.o.dialog.bye();
    } catch {
      // Either the ACK for our 200 has not come yet (a UAS must not send BYE
      // before it: we send it when the ACK or its timeout comes), or the
      // dialog is gone already (a BYE crossed ours; then nothing comes).
      this.byeAfterAck = true;
    }
    this.close(reason);
  }

  private sendBye(): void {
    this.byeAfterAck = false;
    safe(() => this.o.dialog.bye());
  }

  /** Sends DTMF to the caller as RFC 4733 events (e.g. to drive an IVR); false without telephone-event. */
  sendDigits(digits: string): boolean {
    return !this.closed && this.o.rtp.sendDigits(digits);
  }

  /** Blind transfer (RFC 3515) where the trunk allows it; the carrier ends our leg. */
  async transfer(target: string): Promise<boolean> {
    if (this.closed || !this.o.allowRefer) return false;
    // A bare number becomes a SIP URI the carrier routes (Twilio: sip:+1555…@<trunk domain> also works).
    if (/[<>\s"]/.test(target)) return false;
    const uri = /^sips?:/i.test(target) ? target : `sip:${target}@${this.o.remoteHost}`;
    return new Promise<boolean>((resolve) => {
      try {
        this.o.dialog.refer(
          {
            onAccept: () => resolve(true),
            onReject: () => resolve(false),
          },
          { extraHeaders: [`Refer-To: <${uri}>`, `Referred-By: <${this.o.localUri}>`] },
        );
      } catch {
        resolve(false);
      }
    });
  }

  /** Releases media and the clock slot; the session is ended by its owner. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clock.delete(this);
    this.reportStats();
    const stats = this.o.rtp.stats();
    this.o.rtp.close();
    this.o.onClosed(reason, stats);
  }
}

function safe(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // The transaction already ended (e.g. a BYE crossed ours).
  }
}

/** The digit of a SIP INFO DTMF body, or null when it is not one. */
export function infoDigit(contentType: string | undefined, body: string): string | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const raw = type === 'application/dtmf-relay' ? /^\s*Signal\s*=\s*(\S+)/im.exec(body)?.[1] : type === 'application/dtmf' ? body.trim() : undefined;
  if (raw === undefined) return null;
  const d = raw.toUpperCase();
  if (/^[0-9*#A-D]$/.test(d)) return d;
  // Some send the RFC 4733 event code (10 = *, 11 = #).
  return d === '10' ? '*' : d === '11' ? '#' : null;
}
