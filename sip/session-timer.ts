// Session timers (RFC 4028): a dialog that neither side refreshes within its
// interval is over. Carriers ask for them with `Session-Expires` (and often
// `Supported: timer`); some `Require: timer`, which used to get 420.
//
// Roles in `refresher=uac|uas` are those of the request that carries it (the
// initial INVITE or a refresh), so a term is kept here as "who refreshes:
// us or them". As the answering side of a request (`answerTimer`): we take
// the interval asked for (never below our 90 s minimum or the request's
// Min-SE; too small → 422 when the asker supports timers, else raised
// quietly, erratum 1687), the refresher the asker chose, else the asker when it
// supports timers (the carrier refreshes, we watch) and us when it does not;
// `Require: timer` goes with a 2xx that makes the asker refresh. Over
// `MAX_SE_S` we shorten it (allowed: never below its Min-SE).
// As the refresher we send a refresh at half the interval: UPDATE without a
// body when the peer allows UPDATE, else a re-INVITE repeating our last
// description (§7.4, the o= version unchanged). Either side ends the call
// (BYE) when no refresh succeeded by the interval minus min(32 s, a third).
// A refresh answered 491 is retried after 2.1–4 s (RFC 3261 §14.1), 405/501
// to an UPDATE is retried as a re-INVITE, 408/481 ends the call, any other
// failure is retried every 10 s until the deadline.
import { C, NonInviteClientTransaction, UserAgentClient, type IncomingResponse, type Session, type SessionDialog } from 'sip.js/lib/core/index.js';
import { guard } from '../src/guard.js';

/** The smallest interval we accept (RFC 4028 §4: at least 90 s). */
export const MIN_SE_S = 90;
/** The longest interval we keep: longer ones are shortened (a day keeps timers well inside setTimeout's range). */
export const MAX_SE_S = 86_400;
const RETRY_MS = 10_000;

export interface TimerTerms {
  intervalS: number;
  /** We send the refreshes; otherwise the peer does and we watch. */
  weRefresh: boolean;
}

interface Headers {
  getHeader(name: string): string | undefined;
}

type Refresher = 'uac' | 'uas';

/** `Session-Expires` (or its compact form `x`): null when absent, 'bad' when malformed. */
export function parseSessionExpires(m: Headers): { intervalS: number; refresher: Refresher | null } | null | 'bad' {
  const raw = m.getHeader('session-expires') ?? m.getHeader('x');
  if (raw === undefined) return null;
  const match = /^\s*(\d{1,10})\s*((?:;[^;]*)*)$/.exec(raw);
  if (!match) return 'bad';
  const intervalS = Number(match[1]);
  if (intervalS < 1) return 'bad';
  let refresher: Refresher | null = null;
  for (const p of match[2]!.split(';').slice(1)) {
    const [k, v] = p.split('=').map((s) => s.trim().toLowerCase());
    if (k !== 'refresher') continue;
    if (v !== 'uac' && v !== 'uas') return 'bad';
    refresher = v;
  }
  return { intervalS, refresher };
}

/** `Min-SE`: null when absent, 'bad' when malformed. */
export function parseMinSe(m: Headers): number | null | 'bad' {
  const raw = m.getHeader('min-se');
  if (raw === undefined) return null;
  const match = /^\s*(\d{1,10})\s*(?:;.*)?$/.exec(raw);
  return match ? Number(match[1]) : 'bad';
}

/** Whether an option tag is in a comma list header (`Supported` also as `k`). */
export function hasOptionTag(m: Headers, tag: string): boolean {
  const lists = [m.getHeader('supported'), m.getHeader('k'), m.getHeader('require')];
  return lists.some((l) => l !== undefined && l.split(',').some((t) => t.trim().toLowerCase() === tag));
}

export type TimerAnswer =
  | { status: 400; reason: 'bad_session_expires' | 'bad_min_se'; headers: string[] }
  | { status: 422; reason: 'session_interval_too_small'; headers: string[] }
  | { status: 200; terms: TimerTerms | null; headers: string[] };

/**
 * The session timer part of our 2xx to an INVITE or UPDATE (the first one or
 * a refresh). `current`: the dialog's terms so far, kept by a refresh that
 * names none.
 */
export function answerTimer(req: Headers, current: TimerTerms | null): TimerAnswer {
  const se = parseSessionExpires(req);
  if (se === 'bad') return { status: 400, reason: 'bad_session_expires', headers: [] };
  const minSe = parseMinSe(req);
  if (minSe === 'bad') return { status: 400, reason: 'bad_min_se', headers: [] };
  const supports = hasOptionTag(req, 'timer');
  const asked = se ?? (current ? { intervalS: current.intervalS, refresher: null } : null);
  if (!asked) return { status: 200, terms: null, headers: [] };
  const floor = Math.max(MIN_SE_S, minSe ?? 0);
  let intervalS = asked.intervalS;
  if (intervalS < floor) {
    if (supports) return { status: 422, reason: 'session_interval_too_small', headers: [`Min-SE: ${floor}`] };
    intervalS = floor;
  }
  intervalS = Math.min(intervalS, Math.max(MAX_SE_S, floor));
  // uac = the asker refreshes, uas = we do.
  const refresher: Refresher = !supports ? 'uas' : asked.refresher ?? (current?.weRefresh ? 'uas' : 'uac');
  const headers = [`Session-Expires: ${intervalS};refresher=${refresher}`];
  if (refresher === 'uac') headers.push('Require: timer');
  return { status: 200, terms: { intervalS, weRefresh: refresher === 'uas' }, headers };
}

/** The terms a 2xx to our own INVITE or refresh sets: none without `Session-Expires` (RFC 4028 §7.2). */
export function termsFromAnswer(res: Headers): TimerTerms | null {
  const se = parseSessionExpires(res);
  if (se === null || se === 'bad') return null;
  // refresher=uac names us (we sent the request); a 2xx must name one, and refreshing is the safe side when it does not.
  return { intervalS: Math.min(Math.max(se.intervalS, MIN_SE_S), MAX_SE_S), weRefresh: se.refresher !== 'uas' };
}

/** Whether the peer lists UPDATE in an `Allow` header (RFC 3311); refreshes then need no re-INVITE. */
export function allowsUpdate(m: Headers): boolean {
  return (m.getHeader('allow') ?? '').split(',').some((t) => t.trim().toUpperCase() === 'UPDATE');
}

export interface SessionTimerOptions {
  dialog: Session;
  /** The peer takes UPDATE (else refreshes are re-INVITEs). */
  update: boolean;
  /** Our current description, offered again by a re-INVITE refresh. */
  sdp(): string;
  /** The answer to a re-INVITE refresh (a far end may move its media in it). */
  onAnswer?(sdp: string): void;
  /** The session is over: hang the call up (BYE) with this reason. */
  expired(reason: string): void;
  /** Test hook: the time scale (ms per second of interval). */
  msPerSecond?: number;
}

/** One dialog's session timer: refreshes when we are the refresher, and the deadline either way. */
export class SessionTimer {
  terms: TimerTerms | null = null;
  /** Refreshes we sent that the peer accepted (for tests and logs). */
  refreshes = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private useUpdate: boolean;
  private stopped = false;
  private readonly scale: number;

  constructor(private readonly o: SessionTimerOptions) {
    this.useUpdate = o.update;
    this.scale = o.msPerSecond ?? 1000;
  }

  /** New terms (a 2xx to the INVITE or to a refresh, either way): the clock starts again. */
  set(terms: TimerTerms | null): void {
    if (this.stopped) return;
    this.clear();
    this.terms = terms;
    if (!terms) return;
    const ms = terms.intervalS * this.scale;
    // §10: the side that does not refresh ends the session min(32 s, a third of the interval) before it expires.
    this.deadline = setTimeout(guard('timer', () => this.o.expired('session timer expired')), ms - Math.min(32 * this.scale, ms / 3));
    this.deadline.unref();
    if (terms.weRefresh) this.scheduleRefresh(ms / 2);
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private clear(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.deadline) clearTimeout(this.deadline);
    this.refreshTimer = this.deadline = null;
  }

  private scheduleRefresh(ms: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(guard('timer', () => this.refresh()), ms);
    this.refreshTimer.unref();
  }

  private refresh(): void {
    this.refreshTimer = null;
    const terms = this.terms;
    if (this.stopped || !terms) return;
    // The refresher keeps refreshing: refresher=uac names us, the sender of this request.
    const extraHeaders = [`Session-Expires: ${terms.intervalS};refresher=uac`, `Min-SE: ${MIN_SE_S}`];
    const done = (res: IncomingResponse, ok: boolean) => {
      if (this.stopped || this.terms !== terms) return;
      const code = res.message.statusCode ?? 500;
      if (ok) {
        this.refreshes++;
        return this.set(termsFromAnswer(res.message));
      }
      if (code === 408 || code === 481) return this.o.expired('session refresh failed');
      if (code === 422) {
        const min = parseMinSe(res.message);
        if (typeof min === 'number' && min > terms.intervalS && min <= MAX_SE_S) this.terms = { ...terms, intervalS: min };
        return this.scheduleRefresh(0);
      }
      if (this.useUpdate && (code === 405 || code === 501)) {
        this.useUpdate = false;
        return this.scheduleRefresh(0);
      }
      // 491: the peer's own re-INVITE crossed ours (RFC 3261 §14.1); anything else: try again until the deadline.
      this.scheduleRefresh(code === 491 ? 2100 + Math.random() * 1900 : RETRY_MS);
    };
    const failed = (res: IncomingResponse) => done(res, false);
    try {
      if (this.useUpdate) {
        const d = this.o.dialog as unknown as SessionDialog;
        const message = d.createOutgoingRequestMessage(C.UPDATE, { extraHeaders });
        new UserAgentClient(NonInviteClientTransaction, d.userAgentCore, message, {
          onAccept: guard('sip', (res: IncomingResponse) => done(res, true)),
          onReject: guard('sip', failed),
          onRedirect: guard('sip', failed),
        });
      } else {
        this.o.dialog.invite(
          {
            onAccept: guard('sip', (res: IncomingResponse & { ack(): unknown }) => {
              res.ack();
              const body = res.message.body;
              if (body && this.o.onAnswer) this.o.onAnswer(body);
              done(res, true);
            }),
            onReject: guard('sip', failed),
            onRedirect: guard('sip', failed),
          },
          { extraHeaders, body: { contentDisposition: 'session', contentType: 'application/sdp', content: this.o.sdp() } },
        );
      }
    } catch {
      // An INVITE transaction of either side is still open (sip.js refuses a second): try again shortly.
      this.scheduleRefresh(2100 + Math.random() * 1900);
    }
  }
}
