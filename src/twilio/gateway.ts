// The Twilio voice gateway: the signed voice and status webhooks, the Media
// Streams socket, and the live calls it carries.
import twilio from 'twilio';
import type { Config } from '../config.js';
import { log } from '../log.js';
import { reportInternalError } from '../guard.js';
import { countBadInput } from '../metrics/index.js';
import { HttpError, type Request, type Reply } from '../server/http.js';
import type { Component, Server } from '../server/server.js';
import type { ControlPlane } from '../store/index.js';
import type { Providers } from '../providers/types.js';
import type { CallRecord, ResolvedAgent } from '../store/types.js';
import type { TwilioTransport } from './transport.js';
import { CallSession } from '../call/session.js';
import { CallTokens } from './call-token.js';
import { mountMediaStream } from './media-stream.js';
import { twilioAuthToken } from './secrets.js';

export interface GatewayOptions {
  config: Config;
  server: Server;
  store: ControlPlane;
  providers: Providers;
  /** Attaches the conversation to a new session (src/pipeline); start() runs once the streams are open. */
  onSession(session: CallSession): { start(): void };
  /** Calls this node carries on other transports (SIP): MAX_CONCURRENT_CALLS covers them all. */
  otherCalls?(): number;
  /** Media streams accepted whose call has not started yet (see MediaStreamHooks.connecting). */
  connecting?(delta: 1 | -1): void;
}

/** What outbound calling (src/outbound/twilio.ts) adds to the gateway: set as `gateway.outbound`. */
export interface TwilioCallHooks {
  /** A Media Stream whose token names an outbound call: its agent (as dialled) and row, or null. */
  outboundCall(callId: string, callSid: string): Promise<[ResolvedAgent | null, CallRecord | null]>;
  /** A session is set up, before its conversation starts (answering-machine screening, transfer over REST). */
  prepare(session: CallSession, transport: TwilioTransport, record: CallRecord, callSid: string): Promise<void> | void;
  /** A signed status callback for an outbound call. */
  outboundStatus(call: CallRecord, params: Record<string, string>): Promise<void>;
}

const E164 = /^\+[1-9]\d{6,14}$/;

export class TwilioGateway implements Component {
  readonly name = 'twilio';
  readonly authToken: string;
  readonly sessions = new Map<string, CallSession>();
  readonly tokens: CallTokens;
  outbound: TwilioCallHooks | null = null;
  private readonly publicUrl: string;
  private draining = false;
  private drained: (() => void) | null = null;

  constructor(private readonly o: GatewayOptions) {
    this.authToken = twilioAuthToken(o.config.twilioAuthToken, o.config.dataDir);
    this.tokens = new CallTokens(this.authToken, o.store.state);
    this.publicUrl = o.config.publicUrl;
    const wss = this.publicUrl.replace(/^http/, 'ws') + '/twilio/media';
    o.server.router.route('POST', '/twilio/voice', (req) => this.voice(req), { bodyLimit: 64 * 1024 });
    o.server.router.route('POST', '/twilio/status', (req) => this.status(req), { bodyLimit: 64 * 1024 });
    mountMediaStream(o.server.app, '/twilio/media', wss, () => this.authToken, {
      start: (callSid, streamSid, params, transport) => this.startCall(callSid, streamSid, params, transport),
      closed: (session, reason) => {
        if (session) session.end(reason).catch((err) => reportInternalError('twilio', err));
      },
      connecting: o.connecting,
    });
  }

  /** Parses a signed form POST; 403 when the signature does not match PUBLIC_URL + path. */
  signedForm(req: Request): Record<string, string> {
    const params: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(req.body.toString('utf8'))) params[k] = v;
    const sig = req.headers['x-twilio-signature'] ?? '';
    const url = this.publicUrl + req.path;
    if (!sig || !twilio.validateRequest(this.authToken, sig, url, params)) {
      countBadInput('twilio_http', sig ? 'bad_signature' : 'missing_signature');
      throw new HttpError(403, 'forbidden', 'invalid X-Twilio-Signature');
    }
    // A NUL cannot be stored in PostgreSQL text (it answered 500; found by `aybiza fuzz`).
    if (Object.entries(params).some(([k, v]) => k.includes('\0') || v.includes('\0'))) {
      countBadInput('twilio_http', 'nul_in_param');
      throw new HttpError(400, 'invalid_field', 'a parameter contains a NUL character');
    }
    return params;
  }

  private twiml(vr: InstanceType<typeof twilio.twiml.VoiceResponse>): Reply {
    return { status: 200, headers: { 'content-type': 'text/xml' }, body: vr.toString() };
  }

  private async voice(req: Request): Promise<Reply> {
    const p = this.signedForm(req);
    const vr = new twilio.twiml.VoiceResponse();
    const callSid = p.CallSid ?? '';
    const to = p.To ?? '';
    if (!/^CA[0-9a-fA-F]{32}$/.test(callSid)) {
      countBadInput('twilio_http', 'bad_call_sid');
      throw new HttpError(400, 'invalid_field', 'CallSid: missing or malformed');
    }
    const agent = E164.test(to) ? await this.o.store.resolver.resolveNumber(to) : null;
    if (!agent) {
      vr.say('Sorry, this number is not in service.');
      vr.hangup();
      log.info('call to an unknown number', { callSid, to });
      return this.twiml(vr);
    }
    const limit = agent.maxConcurrentCalls;
    const tenantFull = limit !== null && (await this.o.store.state.activeCalls(agent.tenantId)) >= limit;
    if (this.draining || this.sessions.size + (this.o.otherCalls?.() ?? 0) >= this.o.config.maxConcurrentCalls || tenantFull) {
      vr.reject({ reason: 'busy' });
      log.info('call rejected: busy', { callSid, draining: this.draining, tenantFull });
      return this.twiml(vr);
    }
    await this.o.store.calls.createCall({
      tenantId: agent.tenantId, agentId: agent.agentId, agentVersion: agent.agentVersion, transport: 'twilio',
      externalId: callSid, from: p.From ?? null, to, status: p.CallStatus ?? 'ringing',
    });
    const stream = vr.connect().stream({ url: this.publicUrl.replace(/^http/, 'ws') + '/twilio/media' });
    stream.parameter({ name: 'token', value: this.tokens.issue(callSid, to, p.From ?? '') });
    return this.twiml(vr);
  }

  private async status(req: Request): Promise<Reply> {
    const p = this.signedForm(req);
    const call = p.CallSid ? await this.o.store.calls.findCall('twilio', p.CallSid) : null;
    if (call?.direction === 'outbound' && this.outbound) await this.outbound.outboundStatus(call, p);
    else if (call && p.CallStatus) await this.o.store.calls.updateCallStatus(call.id, p.CallStatus, p.CallStatus);
    return { status: 204 };
  }

  private async startCall(callSid: string, _streamSid: string, params: Record<string, string>, transport: import('./transport.js').TwilioTransport): Promise<CallSession | string> {
    const check = await this.tokens.redeem(params.token, callSid);
    if (!check.ok) return check.reason;
    const [agent, record] = check.claims.callId !== undefined
      ? ((await this.outbound?.outboundCall(check.claims.callId, callSid)) ?? [null, null])
      : await Promise.all([this.o.store.resolver.resolveNumber(check.claims.to), this.o.store.calls.findCall('twilio', callSid)]);
    if (!agent || !record) return 'unknown_call';
    if (agent.maxConcurrentCalls !== null && !(await this.o.store.state.acquireCallSlot(agent.tenantId, record.id, agent.maxConcurrentCalls))) {
      return 'tenant_busy';
    }
    // From here the call holds a slot: every way out releases it (the
    // session's end does once it exists; before that, the catch below).
    const state = this.o.store.state;
    const release = () => {
      state.releaseCallSlot(agent.tenantId, record.id).catch((err) => log.warn('call slot release failed', { callId: record.id, err: (err as Error).message }));
      state.unregisterCall(record.id).catch(() => {});
    };
    let session: CallSession | null = null;
    try {
      await state.registerCall(record.id, state.nodeId, 4 * 3600_000);
      await this.o.store.calls.updateCallStatus(record.id, 'in-progress');
      const s = (session = new CallSession({ callId: record.id, transport, agent, providers: this.o.providers, calls: this.o.store.calls, direction: record.direction }));
      this.sessions.set(record.id, s);
      s.whenEnded((reason) => {
        this.sessions.delete(record.id);
        release();
        transport.hangup(reason);
        if (this.draining && this.sessions.size === 0) this.drained?.();
      });
      const conversation = this.o.onSession(s);
      const screened = this.outbound?.prepare(s, transport, record, callSid);
      await s.start();
      // An outbound call with AMD has its answering-machine screen in place before the agent may speak.
      await screened;
      if (!s.isEnded) conversation.start();
      return s;
    } catch (err) {
      if (session) await session.end('call setup failed', 'failed').catch(() => {});
      else release();
      throw err;
    }
  }

  async drain(): Promise<void> {
    this.draining = true;
    if (this.sessions.size === 0) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.sessions.values()].map((s) => s.end('server shutting down', 'shutdown')));
  }
}
