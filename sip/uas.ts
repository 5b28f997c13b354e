// The SIP user-agent server on sip.js's core (parser, transactions, dialogs),
// with the pieces sip.js leaves to a transport (reference §10.3):
// - responses go to the request's real source: the top Via gets `received`
//   and `rport` (RFC 3581) before sip.js sees it, and egress routes by them;
// - non-INVITE requests retransmitted over UDP get the cached final response
//   (sip.js sets Timer J to 0, so a resent BYE would otherwise meet 481);
// - our own requests (BYE, REFER) are retransmitted over UDP (Timer E) until
//   a response comes, and our non-2xx INVITE answers until the ACK (Timer G);
// - a request that Requires an extension other than `timer` (./session-timer.ts) gets 420 (sip.js leaves this TODO);
// - dialled numbers are arbitrary DIDs, so the Request-URI user is saved and
//   replaced by ours before the core's "does it point to us" check;
// - a response to a request that came over TCP or TLS goes back on that connection
//   (RFC 3261 §18.2.2), whatever its Via says (sent-by, rport or not).
// Timers run under the callback guard (src/guard.ts, where="timer").
// One core per transport protocol, so Via and Contact name the right one.
import {
  Dialog, Grammar, IncomingRequestMessage, IncomingResponseMessage, InfoUserAgentServer, LoggerFactory, Parser, URI, UserAgentCore,
  type IncomingInviteRequest, type IncomingRequest, type SessionDialog, type Transport,
} from 'sip.js/lib/core/index.js';
import type net from 'node:net';
import { guard, guarded, reportInternalError } from '../src/guard.js';
import { countBadInput, sipCodeLabel, sipMessages, sipMethodLabel } from '../src/metrics/index.js';
import type { Logger } from '../src/log.js';
import type { Proto, SipSockets, Source } from './transport.js';

export const LOCAL_USER = 'aybiza';
/** Option tags we support (`Supported:` on our requests and responses; `Require:` may name them). */
const SUPPORTED = new Set(['timer']);
const T1 = 500;
const T2 = 4000;
const TIMER_J_MS = 64 * T1;
const SWEEP_MS = 5000;
const MAX_ANSWERED = 50_000;
/** How long a TCP server transaction's connection is remembered (an INVITE may wait for admission, then its answer). */
const TCP_TRANSACTION_MS = 3 * 60_000;
const MAX_TCP_TRANSACTIONS = 50_000;

/** A dialog delegate that takes in-dialog UPDATE (RFC 3311), which sip.js 0.21 does not route. */
export interface UpdateDelegate {
  onUpdate?(request: IncomingRequest): void;
}

export interface InviteContext {
  source: Source;
  /** The Request-URI user as received (the dialled number), else the To user. */
  dialled: string;
  core: UserAgentCore;
}

export interface UasOptions {
  publicIp: string;
  port: number;
  /** The TLS listener's port (Via and Contact of the TLS core); 0 without one. */
  tlsPort?: number;
  log: Logger;
  onInvite(req: IncomingInviteRequest, ctx: InviteContext): void | Promise<void>;
}

interface Cached {
  response: string | null;
  source: Source;
  at: number;
}

const loggerFactory = new LoggerFactory();
loggerFactory.builtinEnabled = false;
const parseLogger = loggerFactory.getLogger('sip.parser');

export class SipUas {
  readonly cores: Record<Proto, UserAgentCore>;
  /** Non-INVITE server transactions by branch: the final response to resend. */
  private readonly answered = new Map<string, Cached>();
  /** Our non-2xx final INVITE answers over UDP awaiting their ACK (Timer G), by branch. */
  private readonly awaitingAck = new Map<string, NodeJS.Timeout>();
  /** Our UDP client requests awaiting a response, by branch. */
  private readonly retransmits = new Map<string, NodeJS.Timeout>();
  /** TCP connection per dialog (Call-ID + the caller's tag): in-dialog requests we send go back on it. */
  private readonly tcpDialogs = new Map<string, Source>();
  /** TCP server transactions by top-Via branch: the connection their responses go back on (§18.2.2). */
  private readonly tcpTransactions = new Map<string, { conn: net.Socket; at: number }>();
  private current: { source: Source; dialled: string } | null = null;
  /** Outbound calls (sip/uac.ts) by Call-ID: every request we send for one goes to its checked trunk address. */
  private readonly pinned = new Map<string, Source>();
  /** Set while the server drains: health checks get 503. */
  draining = false;
  private readonly sweeper: NodeJS.Timeout;
  private readonly loggedAt = new Map<string, number>();

  constructor(private readonly sockets: SipSockets, private readonly o: UasOptions) {
    this.cores = { udp: this.makeCore('udp'), tcp: this.makeCore('tcp'), tls: this.makeCore('tls') };
    this.sweeper = setInterval(guard('timer', () => this.sweep()), SWEEP_MS);
    this.sweeper.unref();
  }

  private makeCore(proto: Proto): UserAgentCore {
    const port = proto === 'tls' ? this.o.tlsPort ?? 0 : this.o.port;
    const host = `${this.o.publicIp}:${port}`;
    const contactUri = new URI('sip', LOCAL_USER, this.o.publicIp, port, { transport: proto });
    const transport: Transport = { protocol: proto.toUpperCase(), send: (m: string) => this.sendFromCore(proto, m) };
    const core: UserAgentCore = new UserAgentCore(
      {
        aor: new URI('sip', LOCAL_USER, this.o.publicIp, port),
        contact: { pubGruu: undefined, tempGruu: undefined, uri: contactUri, toString: () => `<${contactUri.toString()}>` },
        displayName: '', loggerFactory, hackViaTcp: false, routeSet: [], sipjsId: 'aybiza',
        supportedOptionTags: [...SUPPORTED], supportedOptionTagsResponse: [...SUPPORTED], userAgentHeaderFieldValue: 'aybiza',
        viaForceRport: true, viaHost: host,
        authenticationFactory: () => undefined,
        transportAccessor: () => transport,
      },
      {
        onInvite: guard(
          'sip',
          (req: IncomingInviteRequest) => {
            const ctx = this.current;
            if (!ctx) return void req.reject({ statusCode: 500 });
            return this.o.onInvite(req, { ...ctx, core });
          },
          // Only this INVITE fails (500 if it is still unanswered); every other call goes on.
          (_err, req) => void guarded('sip', () => req.reject({ statusCode: 500 })),
        ),
        onRefer: (req) => req.reject({ statusCode: 405 }),
        onMessage: (req) => req.reject({ statusCode: 405 }),
        onRegister: (req) => req.reject({ statusCode: 405 }),
        onSubscribe: (req) => req.reject({ statusCode: 405 }),
        onNotify: (req) => req.accept(),
      },
    );
    return core;
  }

  /** One message from the network. Nothing thrown here reaches the socket layer. */
  receive(text: string, source: Source): void {
    const costly = tooCostly(text);
    if (costly) return this.bad(costly, source);
    let msg: IncomingRequestMessage | IncomingResponseMessage | undefined;
    try {
      msg = Parser.parseMessage(unfold(text), parseLogger);
    } catch {
      msg = undefined;
    }
    if (!msg) return this.bad('unparseable', source);
    if (!msg.callId || !msg.from || !msg.to || !msg.cseq || !msg.via || !msg.viaBranch) return this.bad('missing_headers', source);
    const core = this.cores[source.proto];
    if (msg instanceof IncomingResponseMessage) {
      sipMessages.inc({ method: sipMethodLabel(msg.method), direction: 'in', code: sipCodeLabel(msg.statusCode) });
      // By branch and method: a CANCEL reuses its INVITE's branch.
      this.stopTimer(this.retransmits, `${msg.viaBranch}|${msg.method}`);
      return this.guard(() => core.receiveIncomingResponseFromTransport(msg as IncomingResponseMessage));
    }
    const req = msg as IncomingRequestMessage;
    sipMessages.inc({ method: sipMethodLabel(req.method), direction: 'in', code: '' });
    if (!fixTopVia(req, source)) return this.bad('bad_via', source);
    if (source.conn) this.rememberTcpTransaction(req.viaBranch, source.conn);
    if (this.refused(req, text, core, source)) return;
    if (req.method === 'ACK') this.stopTimer(this.awaitingAck, req.viaBranch);
    if (req.method !== 'INVITE' && req.method !== 'ACK' && req.method !== 'CANCEL') {
      const key = `${req.viaBranch}|${req.method}`;
      const seen = this.answered.get(key);
      if (seen) {
        // A retransmission: resend the final answer (Timer J), or stay quiet while it is pending.
        if (seen.response) this.send(seen.source.proto, seen.response, seen.source);
        return;
      }
      // Bounded: a flood of distinct requests must not grow this without limit (the oldest go first).
      if (this.answered.size >= MAX_ANSWERED) this.answered.delete(this.answered.keys().next().value!);
      this.answered.set(key, { response: null, source, at: Date.now() });
    }
    const ruri = req.ruri!; // refused() answered 416 without one
    const dialled = ruri.user ?? req.to.uri.user ?? '';
    // sip.js 404s any R-URI user but its own; carriers dial DIDs (pitfall 4).
    ruri.user = LOCAL_USER;
    this.current = { source, dialled };
    try {
      if (req.method === 'UPDATE' && req.toTag) this.guard(() => this.update(core, req));
      else this.guard(() => core.receiveIncomingRequestFromTransport(req));
    } finally {
      this.current = null;
    }
  }

  /**
   * UPDATE inside a dialog (RFC 3311: a carrier moves media or refreshes the
   * session without a re-INVITE). sip.js 0.21's core answers it 405, so it is
   * handed here to the dialog's `onUpdate` (SipCall), after the dialog's CSeq
   * check; no such dialog: 481.
   */
  private update(core: UserAgentCore, req: IncomingRequestMessage): void {
    const dialog = core.dialogs.get(req.callId + req.toTag + req.fromTag) as (SessionDialog & { delegate?: UpdateDelegate }) | undefined;
    const onUpdate = dialog?.delegate?.onUpdate;
    if (!dialog || !onUpdate) return void core.replyStateless(req, { statusCode: 481 });
    // Out of order: the guard answers 500 itself (RFC 3261 §12.2.2).
    if (!(dialog as unknown as { sequenceGuard(m: IncomingRequestMessage): boolean }).sequenceGuard(req)) return;
    Dialog.prototype.receiveRequest.call(dialog, req); // records the remote CSeq
    onUpdate(new InfoUserAgentServer(dialog, req));
  }

  /** Answers what we will not process (RFC 3261 §8.2, §16.3); true when it did. */
  private refused(req: IncomingRequestMessage, text: string, core: UserAgentCore, source: Source): boolean {
    const reply = (statusCode: number, reason: string | null, opts: { reasonPhrase?: string; extraHeaders?: string[] } = {}) => {
      if (reason) this.bad(reason, source);
      if (req.method !== 'ACK') this.guard(() => core.replyStateless(req, { statusCode, ...opts }));
      return true;
    };
    // The parser leaves ruri unset for schemes it cannot read (e.g. soap.beep:).
    if (!req.ruri) return reply(416, 'unsupported_uri_scheme');
    if (!/ SIP\/2\.0$/.test(text.slice(0, text.indexOf('\r\n')))) return reply(505, 'bad_sip_version');
    if (!Number.isSafeInteger(req.cseq) || req.cseq > 0x7fffffff) return reply(400, 'bad_cseq', { reasonPhrase: 'Bad CSeq' });
    const cseqMethod = /^\s*\d+\s+(\S+)/.exec(req.getHeader('cseq') ?? '')?.[1];
    if (cseqMethod !== req.method) return reply(400, 'cseq_method_mismatch', { reasonPhrase: 'CSeq Method Mismatch' });
    const require = req.method === 'ACK' || req.method === 'CANCEL' ? '' : (req.getHeader('require') ?? '');
    // The one extension a request may require of us is session timers (RFC 4028, ./session-timer.ts) (§8.2.2.3).
    const unsupported = require.split(',').map((t) => t.trim()).filter((t) => t && !SUPPORTED.has(t.toLowerCase()));
    if (unsupported.length) return reply(420, null, { extraHeaders: [`Unsupported: ${unsupported.join(', ')}`] });
    // Carriers probe with OPTIONS: 503 while draining makes them fail over (reference §2).
    if (this.draining && req.method === 'OPTIONS' && !req.toTag) return reply(503, null, { extraHeaders: ['Retry-After: 30'] });
    const maxForwards = req.getHeader('max-forwards');
    if (maxForwards !== undefined && Number(maxForwards.trim()) === 0 && req.method !== 'ACK') return reply(483, null);
    return false;
  }

  /** Counts bad input; logs each reason at most once a minute (a flood must not flood the logs). */
  private bad(reason: string, source?: Source): void {
    countBadInput('sip', reason);
    const now = Date.now();
    if ((this.loggedAt.get(reason) ?? -Infinity) > now - 60_000) return;
    this.loggedAt.set(reason, now);
    this.o.log.warn('bad SIP input', { reason, from: source ? `${source.proto}:${source.address}:${source.port}` : undefined });
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.bad('core_error');
      this.o.log.debug('sip core rejected a message', { err });
    }
  }

  /**
   * sip.js sends from its own timers too (2xx retransmission, transaction
   * timers), outside any guard of ours: nothing thrown here may reach them.
   */
  private sendFromCore(proto: Proto, text: string): Promise<void> {
    try {
      return this.egress(proto, text);
    } catch (err) {
      reportInternalError('sip', err);
      return Promise.resolve();
    }
  }

  /** What sip.js sends: route it by its own headers (sip.js gives no destination). */
  private egress(proto: Proto, text: string): Promise<void> {
    const firstLine = text.slice(0, text.indexOf('\r\n'));
    const via = /^Via:\s*([^\r\n]+)/im.exec(text)?.[1] ?? '';
    const cseq = /^CSeq:\s*\d+\s+(\S+)/im.exec(text)?.[1] ?? '';
    const callId = /^Call-ID:\s*([^\r\n]+)/im.exec(text)?.[1]?.trim() ?? '';
    const status = /^SIP\/2\.0 (\d{3})/.exec(firstLine);
    if (status) {
      const branch = /;branch=([^;,\s]+)/i.exec(via)?.[1];
      // Over TCP the response goes back on the request's connection (RFC 3261 §18.2.2), whatever the Via names.
      const conn = proto !== 'udp' && branch ? this.tcpTransactions.get(branch)?.conn : undefined;
      const dest = conn && !conn.destroyed ? { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0, conn } : responseTarget(via);
      if (!dest) {
        this.bad('unroutable_response');
        return Promise.resolve();
      }
      sipMessages.inc({ method: sipMethodLabel(cseq), direction: 'out', code: sipCodeLabel(status[1]) });
      const cached = branch ? this.answered.get(`${branch}|${cseq}`) : undefined;
      if (cached && Number(status[1]) >= 200) cached.response = text;
      this.send(proto, text, { proto, ...dest });
      // Timer G (RFC 3261 §17.2.1): sip.js leaves non-2xx INVITE answers to the caller's retransmissions.
      if (proto === 'udp' && cseq === 'INVITE' && Number(status[1]) >= 300 && branch && !this.awaitingAck.has(branch)) {
        this.retransmit(this.awaitingAck, branch, text, { proto, ...dest });
      }
      return Promise.resolve();
    }
    const method = firstLine.split(' ')[0] ?? '';
    sipMessages.inc({ method: sipMethodLabel(method), direction: 'out', code: '' });
    const pinned = this.pinned.get(callId);
    const dest = pinned ?? requestTarget(text);
    if (!dest) return Promise.resolve();
    const toTag = /^To:[^\r\n]*;\s*tag=([^;,\s]+)/im.exec(text)?.[1] ?? '';
    const src: Source = pinned ?? (proto !== 'udp' ? (this.tcpDialogs.get(`${callId}\0${toTag}`) ?? { proto, ...dest }) : { proto, ...dest });
    this.send(proto, text, src);
    const branch = /;branch=([^;,\s]+)/i.exec(via)?.[1];
    if (proto === 'udp' && method !== 'ACK' && branch) this.retransmit(this.retransmits, `${branch}|${method}`, text, src);
    return Promise.resolve();
  }

  private send(proto: Proto, text: string, to: Source): void {
    if (proto === 'udp') this.sockets.sendUdp(text, to.address, to.port);
    else if (!this.sockets.sendStream(proto, text, to.address, to.port, to.conn)) this.bad('tcp_no_connection', to);
  }

  /** Resends over UDP at T1 doubling to T2 for 64·T1 (Timers E/F for our requests, G/H for our non-2xx answers). */
  private retransmit(timers: Map<string, NodeJS.Timeout>, branch: string, text: string, to: Source): void {
    let interval = T1;
    let elapsed = 0;
    const again = guard(
      'timer',
      () => {
        elapsed += interval;
        if (elapsed >= 64 * T1) return void timers.delete(branch);
        this.send('udp', text, to);
        interval = Math.min(interval * 2, T2);
        timers.set(branch, setTimeout(again, interval));
      },
      // A failed retransmission ends only this retransmission.
      () => void timers.delete(branch),
    );
    timers.set(branch, setTimeout(again, interval));
  }

  private stopTimer(timers: Map<string, NodeJS.Timeout>, branch: string): void {
    const t = timers.get(branch);
    if (t) {
      clearTimeout(t);
      timers.delete(branch);
    }
  }

  /**
   * Every request of an outbound call (INVITE, CANCEL, ACK, BYE) goes to
   * `to`, the trunk address checked when the call was placed, whatever its
   * Request-URI, Route or the far end's Contact names (no second DNS answer,
   * no redirection of our requests by the callee).
   */
  pin(callId: string, to: Source): void {
    this.pinned.set(callId, to);
  }

  unpin(callId: string): void {
    this.pinned.delete(callId);
  }

  /** Stops resending one of our requests over UDP (an INVITE we gave up on gets no more retransmissions). */
  stopResending(branch: string, method: string): void {
    this.stopTimer(this.retransmits, `${branch}|${method}`);
  }

  /** In-dialog requests we send for this call (Call-ID + the caller's From-tag) go back on the caller's TCP connection. */
  rememberDialog(callId: string, remoteTag: string, source: Source): void {
    if (source.proto !== 'udp') this.tcpDialogs.set(`${callId}\0${remoteTag}`, source);
  }

  /** Forgets the TCP dialog route of a call that ended. */
  forgetDialog(callId: string, remoteTag: string): void {
    this.tcpDialogs.delete(`${callId}\0${remoteTag}`);
  }

  /**
   * The connection a TCP request arrived on, for its responses. First come
   * keeps it while that connection lives: another connection reusing the
   * branch cannot redirect the responses to itself.
   */
  private rememberTcpTransaction(branch: string, conn: net.Socket): void {
    const seen = this.tcpTransactions.get(branch);
    if (seen && seen.conn !== conn && !seen.conn.destroyed) return;
    if (!seen && this.tcpTransactions.size >= MAX_TCP_TRANSACTIONS) this.tcpTransactions.delete(this.tcpTransactions.keys().next().value!);
    this.tcpTransactions.set(branch, { conn, at: Date.now() });
  }

  private sweep(): void {
    const cutoff = Date.now() - TIMER_J_MS;
    for (const [k, v] of this.answered) if (v.at < cutoff) this.answered.delete(k);
    const tcpCutoff = Date.now() - TCP_TRANSACTION_MS;
    for (const [k, v] of this.tcpTransactions) if (v.at < tcpCutoff || v.conn.destroyed) this.tcpTransactions.delete(k);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const t of [...this.retransmits.values(), ...this.awaitingAck.values()]) clearTimeout(t);
    this.retransmits.clear();
    this.awaitingAck.clear();
    this.answered.clear();
    this.tcpTransactions.clear();
    this.tcpDialogs.clear();
    this.pinned.clear();
  }
}

/**
 * RFC 3261 §18.2.1 + RFC 3581: records the packet's real source in the top
 * Via (received, rport) so every response sip.js builds goes back there.
 * Also splits a comma-joined Via line, which sip.js's parser mis-reads.
 */
function fixTopVia(req: IncomingRequestMessage, src: Source): boolean {
  const headers = (req as unknown as { headers: Record<string, { raw: string; parsed?: unknown }[]> }).headers;
  const list = headers.Via;
  if (!list?.length) return false;
  const parts = splitTopLevel(list[0]!.raw);
  let top = parts[0]!.replace(/;\s*received=[^;,\s]*/i, '');
  if (/;\s*rport(?=[;\s]|$)/i.test(top)) top = top.replace(/;\s*rport(?=[;\s]|$)/i, `;rport=${src.port}`);
  top += `;received=${src.address}`;
  const parsed = Grammar.parse(top, 'Via') as unknown;
  if (parsed === -1 || typeof parsed !== 'object' || parsed === null) return false;
  headers.Via = [{ raw: top, parsed }, ...parts.slice(1).map((raw) => ({ raw })), ...list.slice(1)];
  const p = parsed as { branch?: string };
  if (!p.branch) return false;
  (req as unknown as { via: unknown }).via = parsed;
  req.viaBranch = p.branch;
  return true;
}

/**
 * sip.js's grammar costs ~2-2.5 µs per byte of the headers it parses (name-
 * addrs, quoted strings, parameters): one 12 KB datagram of `;p=x`
 * parameters held the event loop ~25 ms, a 64 KB one ~150 ms, and 30 such
 * datagrams a second stalled every call on the node for over a second (found
 * by `aybiza fuzz`). So, before any parsing: at most 8 KiB of headers (RFC
 * 4475's long-but-valid request is ~4 KiB; UDP requests over 1300 bytes are
 * unusual, RFC 3261 §18.1.1) and at most 256 parameters (70 Via hops with
 * three each stay below). This bounds one message's cost (~20 ms), not a
 * flood's: that needs a per-source limit.
 */
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_HEADER_PARAMS = 256;

/** The bad-input reason when the header section is too costly to parse, else null. */
function tooCostly(text: string): string | null {
  const end = text.indexOf('\r\n\r\n');
  const stop = end < 0 ? text.length : end;
  if (stop > MAX_HEADER_BYTES) return 'headers_too_large';
  let n = 0;
  for (let i = text.indexOf(';'); i >= 0 && i < stop; i = text.indexOf(';', i + 1)) if (++n > MAX_HEADER_PARAMS) return 'too_many_params';
  return null;
}

/** Joins folded header lines (RFC 3261 §7.3.1: CRLF + whitespace is one SP); the body is left alone. */
function unfold(text: string): string {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  if (!/\r?\n[ \t]/.test(head)) return text;
  return head.replace(/[ \t]*\r?\n[ \t]+/g, ' ') + (end < 0 ? '' : text.slice(end));
}

function splitTopLevel(v: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '"' && v[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && c === '<') depth++;
    else if (!quoted && c === '>') depth--;
    else if (!quoted && depth === 0 && c === ',') {
      out.push(v.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(v.slice(start).trim());
  return out.filter(Boolean);
}

/** received/rport from our rewritten Via, else the sent-by (RFC 3261 §18.2.2). */
function responseTarget(via: string): { address: string; port: number } | null {
  const m = /^SIP\s*\/\s*\d+\.\d+\s*\/\s*\w+\s+(\[[^\]]+\]|[^;:\s]+)(?::(\d+))?/i.exec(via);
  if (!m) return null;
  const received = /;\s*received=([^;,\s]+)/i.exec(via)?.[1];
  const rport = /;\s*rport=(\d+)/i.exec(via)?.[1];
  const port = Number(rport ?? m[2] ?? 5060);
  return { address: received ?? m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** First Route if loose-routing, else the Request-URI (RFC 3261 §12.2.1.1). */
function requestTarget(text: string): { address: string; port: number } | null {
  const route = /^Route:\s*<([^>]+)>/im.exec(text)?.[1];
  const ruri = /^\S+\s+(\S+)\s+SIP\/2\.0/.exec(text)?.[1];
  const target = route && /;lr\b/i.test(route) ? route : ruri;
  if (!target) return null;
  const u = Grammar.URIParse(target);
  if (!u) return null;
  return { address: u.host, port: u.port ?? 5060 };
}
