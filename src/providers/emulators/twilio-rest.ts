// A Twilio REST API emulator for outbound calls, wire-faithful for what the
// official `twilio` library sends (see shared reference outbound.md §1-2):
// form-encoded bodies with repeated keys, Basic auth (account SID + auth
// token, or an API key SID + secret), snake_case JSON, 201 on create and
// 200 on update/fetch, errors as {code, message, more_info, status} (never
// `type`/`title`, which the SDK would read as an RFC 9457 problem). A call
// it places rings, then is answered by an emulated callee (a person, an
// answering machine) that runs the TwiML: <Connect><Stream> opens a signed
// Media Stream to the server like Twilio; <Dial> is recorded and bridged.
// Status callbacks and async AMD results are POSTed, signed with the
// account's auth token. How the far end behaves follows the To number's
// last four digits (see DEFAULT_BEHAVIOURS), so tests choose it by number.
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import twilio from 'twilio';
import { guard, reportInternalError } from '../../guard.js';
import { countBadInput } from '../../metrics/index.js';
import { log } from '../../log.js';
import { EmulatedCallee, type CalleeKind } from './twilio-callee.js';
import { parseTwiml, type TwimlVerb } from './twiml.js';
import { all, one, parseForm, RestError, safeEqual } from './twilio-rest-wire.js';

export type CalleeBehaviour = CalleeKind | 'busy' | 'no-answer' | 'failed';

/** To numbers ending in these digits get this far end; any other number: a person. */
export const DEFAULT_BEHAVIOURS: Record<string, CalleeBehaviour> = {
  '0486': 'busy', '0408': 'no-answer', '0500': 'failed', '0666': 'machine', '0667': 'machine_no_beep',
};

export interface TwilioRestEmulatorOptions {
  ringMs: number;
  behaviours: Record<string, CalleeBehaviour>;
  /** What a person says after "Hello?", one line per agent turn; then they hang up. */
  script: string[];
  /** A person speaks once the agent has been quiet this long. */
  quietMs: number;
  /** A <Dial>ed party stays on the line this long, then the call completes. */
  dialHoldMs: number;
}

export const DEFAULT_TWILIO_REST_EMULATOR: TwilioRestEmulatorOptions = {
  ringMs: 300, behaviours: DEFAULT_BEHAVIOURS, script: ['Yes, this is Sam speaking.', 'That works for me. Thank you, goodbye.'], quietMs: 700, dialHoldMs: 1000,
};

const API = '/2010-04-01/Accounts/';
const MAX_BODY = 64 * 1024;
const MAX_TWIML = 4000;
const MAX_CALLS = 10_000;
const E164 = /^\+[1-9]\d{6,14}$/;
const ENDED = new Set(['completed', 'busy', 'failed', 'no-answer', 'canceled']);

export interface EmulatedCall {
  sid: string;
  accountSid: string;
  to: string;
  from: string;
  status: string;
  answeredBy: string | null;
  behaviour: CalleeBehaviour;
  params: Record<string, string | string[]>;
  created: Date;
  started: Date | null;
  ended: Date | null;
  /** Every TwiML document the call ran (create, then each update). */
  twiml: string[];
  /** <Dial> verbs run: target, callerId, timeout. */
  dials: { target: string; callerId?: string; timeout?: string }[];
  callee: EmulatedCallee | null;
  /** The last callee that talked on the call (what a machine recorded stays readable after the call). */
  lastCallee: EmulatedCallee | null;
  callbacks: { url: string; params: Record<string, string>; status: number | null }[];
  seq: number;
  /** Bumped by each redirect: the TwiML run it ends stops at its next step. */
  run: number;
  timers: Set<NodeJS.Timeout>;
}

export class TwilioRestEmulator {
  /** Tests: the asynchronous AMD result never reaches the server (lost on the way), as a network fault would. */
  loseAmdCallbacks = false;
  readonly calls = new Map<string, EmulatedCall>();
  private readonly accounts = new Map<string, string>();
  private readonly apiKeys = new Map<string, { secret: string; accountSid: string }>();
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  readonly stats = { requests: 0, created: 0, authFailures: 0 };

  constructor(readonly opts: TwilioRestEmulatorOptions = DEFAULT_TWILIO_REST_EMULATOR) {
    this.server = http.createServer(guard('http', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res), (_e, _req, res) => {
      if (!res.headersSent) res.writeHead(500).end();
    }));
    // A request Node's parser refuses (a bad path, a bad header) still gets Twilio's error shape.
    this.server.on('clientError', (_err, socket: net.Socket) => {
      const body = JSON.stringify({ code: 20001, message: 'Bad request', more_info: 'https://www.twilio.com/docs/errors/20001', status: 400 });
      if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      else socket.destroy();
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Accounts (SID → auth token) and API keys the emulator accepts. */
  addAccount(accountSid: string, authToken: string): void {
    this.accounts.set(accountSid, authToken);
  }

  addApiKey(keySid: string, secret: string, accountSid: string): void {
    this.apiKeys.set(keySid, { secret, accountSid });
  }

  async listenOn(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
    return `http://${host}:${(this.server.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const c of this.calls.values()) this.finish(c, c.status === 'in-progress' ? 'completed' : 'canceled', false);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.stats.requests++;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', guard('http', async () => {
      try {
        if (size > MAX_BODY) throw new RestError(413, 20001, 'Request entity too large');
        const body = await this.route(req, Buffer.concat(chunks).toString('utf8'));
        res.writeHead(body.status, { 'content-type': 'application/json' }).end(JSON.stringify(body.json));
      } catch (err) {
        if (!(err instanceof RestError)) throw err;
        if (err.status === 401) this.stats.authFailures++;
        countBadInput('twilio_rest_emulator', `error_${err.code}`);
        res.writeHead(err.status, { 'content-type': 'application/json', ...(err.status === 401 ? { 'www-authenticate': 'Basic realm="Twilio API"' } : {}) })
          .end(JSON.stringify({ code: err.code, message: err.message, more_info: `https://www.twilio.com/docs/errors/${err.code}`, status: err.status }));
      }
    }, (_e) => {
      if (!res.headersSent) res.writeHead(500).end();
    }));
  }

  private async route(req: http.IncomingMessage, raw: string): Promise<{ status: number; json: unknown }> {
    const path = (req.url ?? '').split('?')[0]!;
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Calls(?:\/([^/]+))?\.json$/.exec(path);
    if (!m) throw new RestError(404, 20404, `The requested resource ${path.slice(0, 200)} was not found`);
    const account = this.authenticate(req.headers.authorization, m[1]!);
    const params = parseForm(raw);
    if (!m[2]) {
      if (req.method !== 'POST') throw new RestError(405, 20004, 'Method not allowed');
      return { status: 201, json: this.present(this.create(account, params)) };
    }
    const call = this.calls.get(m[2]);
    if (!call || call.accountSid !== account) throw new RestError(404, 20404, `The requested resource ${path.slice(0, 200)} was not found`);
    if (req.method === 'GET') return { status: 200, json: this.present(call) };
    if (req.method === 'POST') return { status: 200, json: this.present(await this.update(call, params)) };
    throw new RestError(405, 20004, 'Method not allowed');
  }

  /** Basic auth: an account SID with its auth token, or an API key with its secret; the path's account must be the key's. */
  private authenticate(header: string | undefined, pathAccount: string): string {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(header ?? '');
    const [user, pass] = m ? Buffer.from(m[1]!, 'base64').toString('utf8').split(/:(.*)/s) : [];
    const account = user?.startsWith('SK') ? this.apiKeys.get(user) : undefined;
    const ok = user && pass !== undefined && (account ? safeEqual(account.secret, pass) && account.accountSid === pathAccount : user === pathAccount && safeEqual(this.accounts.get(user) ?? '', pass));
    if (!ok) throw new RestError(401, 20003, 'Authenticate');
    return pathAccount;
  }

  private create(accountSid: string, p: Record<string, string | string[]>): EmulatedCall {
    const to = one(p, 'To');
    const from = one(p, 'From');
    if (!to) throw new RestError(400, 21201, "No 'To' number is specified");
    if (!from) throw new RestError(400, 21213, "No 'From' number is specified");
    if (!E164.test(to)) throw new RestError(400, 21211, `Invalid 'To' Phone Number: ${to.slice(0, 40)}`);
    if (!E164.test(from)) throw new RestError(400, 21212, `Invalid 'From' Phone Number: ${from.slice(0, 40)}`);
    const twiml = one(p, 'Twiml');
    if (!twiml && !one(p, 'Url')) throw new RestError(400, 21205, 'Url or Twiml is required');
    if (twiml && twiml.length > MAX_TWIML) throw new RestError(400, 21205, `Twiml must be at most ${MAX_TWIML} characters`);
    if (this.calls.size >= MAX_CALLS) this.forgetEnded();
    const behaviour = Object.entries(this.opts.behaviours).find(([suffix]) => to.endsWith(suffix))?.[1] ?? 'human';
    const call: EmulatedCall = {
      sid: 'CA' + crypto.randomBytes(16).toString('hex'), accountSid, to, from, status: 'queued', answeredBy: null, behaviour, params: p,
      created: new Date(), started: null, ended: null, twiml: [], dials: [], callee: null, lastCallee: null, callbacks: [], seq: 0, run: 0, timers: new Set(),
    };
    this.calls.set(call.sid, call);
    this.stats.created++;
    this.after(call, 0, () => this.progress(call, 'initiated'));
    this.after(call, 50, () => {
      call.status = 'ringing';
      this.progress(call, 'ringing');
    });
    this.after(call, 50 + this.opts.ringMs, () => this.answer(call));
    return call;
  }

  private async update(call: EmulatedCall, p: Record<string, string | string[]>): Promise<EmulatedCall> {
    const status = one(p, 'Status');
    const twiml = one(p, 'Twiml');
    const url = one(p, 'Url');
    if (status !== undefined) {
      if (status !== 'completed' && status !== 'canceled') throw new RestError(400, 21218, `Invalid Status: ${status.slice(0, 20)}`);
      if (ENDED.has(call.status)) return call;
      // `canceled` stops only a queued or ringing call; `completed` also hangs up an answered one.
      if (call.status !== 'in-progress') this.finish(call, 'canceled');
      else if (status === 'completed') this.finish(call, 'completed');
      return call;
    }
    if (!twiml && !url) throw new RestError(400, 21205, 'Url, Twiml or Status is required');
    if (twiml && twiml.length > MAX_TWIML) throw new RestError(400, 21205, `Twiml must be at most ${MAX_TWIML} characters`);
    if (call.status !== 'in-progress') throw new RestError(400, 21220, 'Call is not in-progress. Cannot redirect.');
    // Twilio redirects at once: the stream gets `stop` and closes, then the new document runs.
    call.run++;
    const callee = call.callee;
    call.callee = null;
    this.after(call, 0, async () => {
      await callee?.stop();
      await this.runTwiml(call, twiml ?? (await this.fetchTwiml(call, url!)), call.run);
    });
    return call;
  }

  private answer(call: EmulatedCall): void {
    if (ENDED.has(call.status)) return;
    const b = call.behaviour;
    if (b === 'busy' || b === 'failed') return this.finish(call, b);
    if (b === 'no-answer') {
      const timeoutS = Number(one(call.params, 'Timeout') ?? 60);
      return void this.after(call, Math.min(Number.isFinite(timeoutS) ? timeoutS * 1000 : 60_000, 2000), () => this.finish(call, 'no-answer'));
    }
    call.status = 'in-progress';
    call.started = new Date();
    this.progress(call, 'answered');
    const run = call.run;
    this.after(call, 0, async () => {
      const doc = one(call.params, 'Twiml') ?? (await this.fetchTwiml(call, one(call.params, 'Url')!));
      await this.runTwiml(call, doc, run);
    });
  }

  /** Runs a TwiML document's verbs in order; with no verb left, the call completes. */
  private async runTwiml(call: EmulatedCall, doc: string, run: number): Promise<void> {
    call.twiml.push(doc);
    let verbs: TwimlVerb[];
    try {
      verbs = parseTwiml(doc);
    } catch (err) {
      log.warn('Twilio REST emulator: TwiML not understood; the call fails', { callSid: call.sid, err: (err as Error).message });
      return this.finish(call, 'failed');
    }
    for (const v of verbs) {
      if (run !== call.run || ENDED.has(call.status)) return;
      if (v.verb === 'Hangup' || v.verb === 'Reject') break;
      if (v.verb === 'Pause' || v.verb === 'Say' || v.verb === 'Play') await this.sleep(call, v.verb === 'Pause' ? Number(v.attrs.length ?? 1) * 1000 : 500);
      if (v.verb === 'Connect' && v.stream) await this.stream(call, v.stream.url, v.stream.parameters, run);
      if (v.verb === 'Dial') {
        call.dials.push({ target: v.target ?? '', callerId: v.attrs.callerId, timeout: v.attrs.timeout });
        await this.sleep(call, this.opts.dialHoldMs);
      }
    }
    if (run === call.run) this.finish(call, 'completed');
  }

  /** <Connect><Stream>: the callee opens the Media Stream and talks until either side ends it. */
  private async stream(call: EmulatedCall, url: string, parameters: Record<string, string>, run: number): Promise<void> {
    const token = this.accounts.get(call.accountSid) ?? '';
    const kind = call.behaviour === 'machine' || call.behaviour === 'machine_no_beep' ? call.behaviour : 'human';
    const callee = new EmulatedCallee({ kind, script: this.opts.script, quietMs: this.opts.quietMs, callSid: call.sid, accountSid: call.accountSid, authToken: token, to: call.to, from: call.from });
    call.callee = callee;
    call.lastCallee = callee;
    try {
      await callee.connect(url, parameters);
    } catch (err) {
      log.warn('Twilio REST emulator: media stream refused', { callSid: call.sid, err: (err as Error).message });
      callee.close();
      return;
    }
    this.amd(call, callee);
    await callee.waitClosed();
    callee.close();
    if (run === call.run) call.callee = null;
  }

  /** Twilio's AMD as the callee's audio would make it decide: async to AsyncAmdStatusCallback, else only stored. */
  private amd(call: EmulatedCall, callee: EmulatedCallee): void {
    const mode = one(call.params, 'MachineDetection');
    if (mode !== 'Enable' && mode !== 'DetectMessageEnd') return;
    const t = mode === 'Enable' ? callee.amdTimes().detect : callee.amdTimes().messageEnd;
    this.after(call, t.atMs, () => {
      if (call.status !== 'in-progress') return;
      call.answeredBy = t.raw;
      const cb = one(call.params, 'AsyncAmdStatusCallback');
      if (one(call.params, 'AsyncAmd') === 'true' && cb && !this.loseAmdCallbacks) {
        void this.callback(call, cb, { CallSid: call.sid, AccountSid: call.accountSid, AnsweredBy: t.raw, MachineDetectionDuration: String(Math.round(t.atMs)) }, one(call.params, 'AsyncAmdStatusCallbackMethod'));
      }
    });
  }

  private finish(call: EmulatedCall, status: string, notify = true): void {
    if (ENDED.has(call.status)) return;
    call.status = status;
    call.ended = new Date();
    call.run++;
    for (const t of call.timers) clearTimeout(t);
    call.timers.clear();
    const callee = call.callee;
    call.callee = null;
    void callee?.stop().catch(() => {});
    if (notify) this.progress(call, 'completed');
  }

  /** A status callback for an event the call subscribed to (StatusCallbackEvent; `completed` by default). */
  private progress(call: EmulatedCall, event: 'initiated' | 'ringing' | 'answered' | 'completed'): void {
    const url = one(call.params, 'StatusCallback');
    const events = all(call.params, 'StatusCallbackEvent');
    if (!url || !(events.length ? events : ['completed']).includes(event)) return;
    const duration = call.started && call.ended ? Math.round((call.ended.getTime() - call.started.getTime()) / 1000) : 0;
    void this.callback(call, url, {
      ...this.common(call), CallStatus: event === 'initiated' ? 'queued' : call.status, CallbackSource: 'call-progress-events',
      SequenceNumber: String(call.seq++), Timestamp: new Date().toUTCString(),
      ...(event === 'completed' ? { CallDuration: String(duration), Duration: String(Math.ceil(duration / 60)) } : {}),
      ...(call.answeredBy ? { AnsweredBy: call.answeredBy } : {}),
    }, one(call.params, 'StatusCallbackMethod'));
  }

  private common(call: EmulatedCall): Record<string, string> {
    return { CallSid: call.sid, AccountSid: call.accountSid, From: call.from, To: call.to, Direction: 'outbound-api', ApiVersion: '2010-04-01', Called: call.to, Caller: call.from };
  }

  /** POSTs (or GETs) a webhook signed with the account's auth token; answers the response body. */
  private async callback(call: EmulatedCall, url: string, params: Record<string, string>, method = 'POST'): Promise<string> {
    const token = this.accounts.get(call.accountSid) ?? '';
    const entry = { url, params, status: null as number | null };
    call.callbacks.push(entry);
    try {
      const get = method.toUpperCase() === 'GET';
      const target = get ? `${url}${url.includes('?') ? '&' : '?'}${new URLSearchParams(params)}` : url;
      const sig = twilio.getExpectedTwilioSignature(token, target, get ? {} : params);
      const res = await fetch(target, {
        method: get ? 'GET' : 'POST', signal: AbortSignal.timeout(15_000),
        headers: { 'x-twilio-signature': sig, ...(get ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
        ...(get ? {} : { body: new URLSearchParams(params).toString() }),
      });
      entry.status = res.status;
      return await res.text();
    } catch (err) {
      log.warn('Twilio REST emulator: webhook failed', { url, err: (err as Error).message });
      return '';
    }
  }

  private async fetchTwiml(call: EmulatedCall, url: string): Promise<string> {
    return this.callback(call, url, { ...this.common(call), CallStatus: call.status, ...(call.answeredBy ? { AnsweredBy: call.answeredBy } : {}) }, one(call.params, 'Method'));
  }

  private present(c: EmulatedCall): Record<string, unknown> {
    const duration = c.started && c.ended ? String(Math.round((c.ended.getTime() - c.started.getTime()) / 1000)) : null;
    return {
      sid: c.sid, account_sid: c.accountSid, to: c.to, to_formatted: c.to, from: c.from, from_formatted: c.from, status: c.status,
      direction: 'outbound-api', answered_by: c.answeredBy, api_version: '2010-04-01', caller_name: null, forwarded_from: null, group_sid: null,
      parent_call_sid: null, phone_number_sid: null, price: null, price_unit: 'USD', queue_time: '0', trunk_sid: null, annotation: null,
      date_created: c.created.toUTCString(), date_updated: new Date().toUTCString(), start_time: c.started?.toUTCString() ?? null,
      end_time: c.ended?.toUTCString() ?? null, duration,
      uri: `${API}${c.accountSid}/Calls/${c.sid}.json`,
      subresource_uris: { notifications: `${API}${c.accountSid}/Calls/${c.sid}/Notifications.json`, recordings: `${API}${c.accountSid}/Calls/${c.sid}/Recordings.json` },
    };
  }

  private after(call: EmulatedCall, ms: number, fn: () => unknown): void {
    const t = setTimeout(guard('timer', async () => {
      call.timers.delete(t);
      try {
        await fn();
      } catch (err) {
        reportInternalError('timer', err, { callSid: call.sid });
      }
    }), ms);
    call.timers.add(t);
  }

  private sleep(call: EmulatedCall, ms: number): Promise<void> {
    return new Promise((resolve) => this.after(call, Math.max(0, Math.min(ms, 60_000)), resolve));
  }

  /** Bounded memory: ended calls are forgotten first. */
  private forgetEnded(): void {
    for (const [sid, c] of this.calls) if (ENDED.has(c.status)) this.calls.delete(sid);
    if (this.calls.size >= MAX_CALLS) throw new RestError(429, 20429, 'Too many calls in the emulator');
  }
}
