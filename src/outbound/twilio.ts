// Outbound calls over Twilio: `client.calls.create` through the official
// `twilio` library with inline TwiML <Connect><Stream> carrying a
// single-use call token bound to our call row, signed status callbacks to
// /twilio/status, and Twilio's asynchronous AMD (results to /twilio/amd).
// The Media Stream of an answered call may reach any node: its agent and
// variables come from the token's call row, not from the To number. Also
// transfer_call on any Twilio call: the call is redirected to <Dial> over
// the REST API, after the outbound guards have passed the target.
import crypto from 'node:crypto';
import twilio from 'twilio';
import RequestClient from 'twilio/lib/base/RequestClient.js';
import type { Config } from '../config.js';
import type { ControlPlane } from '../store/index.js';
import { startTwilioRestEmulator } from '../providers/emulators/index.js';
import type { TwilioRestEmulator } from '../providers/emulators/twilio-rest.js';
import type { CallRecord, ResolvedAgent } from '../store/types.js';
import type { Router } from '../server/http.js';
import type { TwilioCallHooks, TwilioGateway } from '../twilio/gateway.js';
import type { TwilioTransport } from '../twilio/transport.js';
import type { CallSession } from '../call/session.js';
import { AnswerScreen, voicemailMessage } from '../pipeline/voicemail.js';
import { countBadInput } from '../metrics/index.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import { DialRefused, OutboundDialer } from './dialer.js';
import { isFinal, PENDING_PREFIX } from './records.js';
import type { AnsweredBy, Carrier, OutboundStatus, PlaceRequest } from './types.js';

export const TWILIO_API_URL = 'https://api.twilio.com';
/** Ring time before Twilio gives up (`Timeout`, s); the call token outlives it. */
export const DIAL_TIMEOUT_S = 30;
/** Twilio's MachineDetectionTimeout (s): Enable reports fast; DetectMessageEnd waits for the greeting's end. */
const AMD_TIMEOUT_S = { detect: 8, detect_message_end: 30 } as const;

/** How `twilio` reaches the REST API. */
export interface TwilioRestOptions {
  accountSid: string;
  /** The account's auth token, or an API key's secret with `apiKeySid`. */
  secret: string;
  apiKeySid?: string;
  /** TWILIO_API_URL: the REST base (https://api.twilio.com, or an emulator). */
  baseUrl: string;
}

/**
 * The library builds https://api.twilio.com/… itself (edge and region only
 * change the host name); this client keeps everything it sends (auth,
 * encoding, error parsing) and replaces only scheme, host and port.
 */
class BaseUrlClient extends RequestClient {
  constructor(private readonly base: string) {
    super();
  }

  override request<T>(o: RequestClient.RequestOptions<T>) {
    const u = new URL(o.uri);
    return super.request<T>({ ...o, uri: this.base + u.pathname + u.search });
  }
}

export function twilioRestClient(o: TwilioRestOptions): twilio.Twilio {
  const base = o.baseUrl.replace(/\/+$/, '');
  const httpClient = base === TWILIO_API_URL ? undefined : new BaseUrlClient(base);
  return o.apiKeySid
    ? twilio(o.apiKeySid, o.secret, { accountSid: o.accountSid, httpClient })
    : twilio(o.accountSid, o.secret, { httpClient });
}

/** Twilio's CallStatus → ours (Twilio's `queued` is already with the carrier: our `dialing`). */
const STATUS: Record<string, OutboundStatus> = {
  queued: 'dialing', initiated: 'dialing', ringing: 'ringing', 'in-progress': 'in-progress', answered: 'in-progress',
  completed: 'completed', busy: 'busy', 'no-answer': 'no-answer', failed: 'failed', canceled: 'canceled',
};

/** Twilio's AnsweredBy values (a closed set: anything else is refused) → ours. */
const ANSWERED_BY: Record<string, AnsweredBy> = {
  human: 'human', machine_start: 'machine', machine_end_beep: 'machine', machine_end_silence: 'machine', machine_end_other: 'machine',
  fax: 'machine', unknown: 'unknown',
};

/** SharedState message carrying Twilio's AMD verdict to the node holding the call's media: `outbound:amd:<call id> <raw> <ms>`. */
const AMD = 'outbound:amd:';
/** A verdict that arrives before the Media Stream starts is kept this long for it. */
const EARLY_VERDICT_MS = 60_000;

export interface TwilioCarrierOptions {
  store: ControlPlane;
  gateway: TwilioGateway;
  router: Router;
  publicUrl: string;
  rest: TwilioRestOptions;
  /** Calls go to the built-in REST emulator (logged as such). */
  emulated: boolean;
}

export class TwilioCarrier implements Carrier, TwilioCallHooks {
  readonly via = 'twilio' as const;
  readonly client: twilio.Twilio;
  private readonly dialer: OutboundDialer;
  readonly store: ControlPlane;
  /** Screens of outbound calls whose media this node carries, by call id. */
  private readonly screens = new Map<string, AnswerScreen>();
  /** Verdicts heard before their call's media started here. */
  private readonly early = new Map<string, { result: AnsweredBy; raw: string; at: number }>();
  /** Calls this node redirected to <Dial>: their stream's end is not the call's. */
  private readonly transferred = new Set<string>();

  constructor(private readonly o: TwilioCarrierOptions) {
    this.client = twilioRestClient(o.rest);
    this.store = o.store;
    this.dialer = OutboundDialer.for(o.store);
    o.gateway.outbound = this;
    o.router.route('POST', '/twilio/amd', (req) => this.amdCallback(o.gateway.signedForm(req)), { bodyLimit: 64 * 1024 });
    o.store.state.subscribe((m) => {
      if (m.startsWith(AMD)) this.onVerdict(m.slice(AMD.length));
    });
  }

  private url(path: string): string {
    return this.o.publicUrl + path;
  }

  async place({ call, request, events }: PlaceRequest): Promise<void> {
    const vr = new twilio.twiml.VoiceResponse();
    const stream = vr.connect().stream({ url: this.o.publicUrl.replace(/^http/, 'ws') + '/twilio/media' });
    const token = this.o.gateway.tokens.issue('', request.to, request.from, { callId: call.id, ttlMs: (DIAL_TIMEOUT_S + 120) * 1000 });
    stream.parameter({ name: 'token', value: token });
    const amd = request.amd ?? 'off';
    const created = await this.client.calls.create({
      to: request.to, from: request.from, twiml: vr.toString(), timeout: DIAL_TIMEOUT_S,
      statusCallback: this.url('/twilio/status'), statusCallbackMethod: 'POST',
      statusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
      ...(amd === 'off' ? {} : {
        machineDetection: amd === 'detect' ? 'Enable' : 'DetectMessageEnd', machineDetectionTimeout: AMD_TIMEOUT_S[amd],
        asyncAmd: 'true', asyncAmdStatusCallback: this.url('/twilio/amd'), asyncAmdStatusCallbackMethod: 'POST',
      }),
    });
    await this.dialer.records.setExternalId(call.id, created.sid);
    // Hung up (POST /v1/calls/{id}/hangup) while the create was on its way: stop it ringing.
    if ((await this.dialer.records.get(call.id))?.endedAt) {
      await this.client.calls(created.sid).update({ status: 'canceled' }).catch(() => {});
      return;
    }
    log.info(this.o.emulated ? 'outbound call placed with the Twilio REST emulator (EMULATED)' : 'outbound call placed with Twilio', { callId: call.id, callSid: created.sid });
    events.status(STATUS[created.status] ?? 'dialing');
  }

  async hangup(callId: string): Promise<void> {
    const call = await this.dialer.records.get(callId);
    if (!call || call.endedAt || call.externalId.startsWith(PENDING_PREFIX)) return;
    // `canceled` stops a queued or ringing call, `completed` an answered one.
    const status = call.answeredAt ? 'completed' : 'canceled';
    try {
      await this.client.calls(call.externalId).update({ status });
    } catch (err) {
      // Answered meanwhile (cancel does nothing then), or already over.
      log.info('Twilio hangup', { callId, status, err: (err as Error).message });
      if (status === 'canceled') await this.client.calls(call.externalId).update({ status: 'completed' }).catch(() => {});
    }
  }

  async outboundStatus(call: CallRecord, p: Record<string, string>): Promise<void> {
    const status = STATUS[p.CallStatus ?? ''];
    if (!status) {
      countBadInput('twilio_http', 'unknown_call_status');
      return;
    }
    this.dialer.events(call.id).status(status, isFinal(status) ? { endReason: status === 'completed' ? 'completed' : `twilio: ${status}` } : undefined);
    await this.dialer.settled(call.id);
  }

  /** POST /twilio/amd: Twilio's asynchronous AMD result (signed like every webhook). */
  private async amdCallback(p: Record<string, string>): Promise<{ status: number }> {
    const raw = p.AnsweredBy ?? '';
    const result = ANSWERED_BY[raw];
    const call = p.CallSid ? await this.o.store.calls.findCall('twilio', p.CallSid) : null;
    if (!result || !call || call.direction !== 'outbound') {
      countBadInput('twilio_http', result ? 'amd_unknown_call' : 'amd_unknown_result');
      return { status: 204 };
    }
    const ms = Number(p.MachineDetectionDuration);
    const decisionMs = Number.isFinite(ms) && ms >= 0 && ms < 600_000 ? Math.round(ms) : undefined;
    this.dialer.events(call.id).answeredBy(result, { source: 'twilio', raw, decisionMs });
    await this.dialer.settled(call.id);
    await this.o.store.state.publish(`${AMD}${call.id} ${raw} ${decisionMs ?? ''}`);
    return { status: 204 };
  }

  /** Every node hears every verdict; the one carrying the call's media acts on it. */
  private onVerdict(m: string): void {
    const [callId, raw] = m.split(' ');
    const result = ANSWERED_BY[raw ?? ''];
    if (!callId || !result) return;
    const screen = this.screens.get(callId);
    if (screen) return screen.answered(result, { source: 'twilio', raw, messageEnded: raw.startsWith('machine_end') });
    const now = Date.now();
    for (const [id, v] of this.early) if (now - v.at > EARLY_VERDICT_MS) this.early.delete(id);
    if (this.early.size < 10_000) this.early.set(callId, { result, raw: raw!, at: now });
  }

  async outboundCall(callId: string, callSid: string): Promise<[ResolvedAgent | null, CallRecord | null]> {
    const call = await this.dialer.records.get(callId);
    if (!call || call.transport !== 'twilio' || call.endedAt) return [null, null];
    // The stream that holds the (signed, single-use) token names the call if the create answer has not yet.
    if (call.externalId !== callSid && !(await this.dialer.records.setExternalId(callId, callSid))) return [null, null];
    const found = await this.dialer.agentForCall(call);
    return found ? [found.agent, { ...call, externalId: callSid }] : [null, null];
  }

  prepare(session: CallSession, transport: TwilioTransport, record: CallRecord, callSid: string): Promise<void> | void {
    const callId = record.id;
    transport.transfer = (target) => this.transfer(session, transport, record, callSid, target);
    session.whenEnded(guard('call', (reason: string) => {
      const transferred = this.transferred.delete(callId);
      if (record.direction !== 'outbound') return;
      this.screens.delete(callId);
      // After a transfer Twilio still carries the call: its status callback reports the end.
      if (!transferred) this.dialer.events(callId).status('completed', { endReason: reason });
    }));
    if (record.direction !== 'outbound') return;
    this.dialer.events(callId).status('in-progress');
    // Awaited by the gateway before the conversation starts, so the greeting waits for the verdict.
    return this.screen(session, callId).catch((err) => reportInternalError('call', err, { callId }));
  }

  /** With AMD on, the greeting waits for Twilio's verdict (src/pipeline/voicemail.ts). */
  private async screen(session: CallSession, callId: string): Promise<void> {
    const dial = await this.dialer.records.dial(callId);
    if (!dial || dial.amd === 'off' || session.isEnded) return;
    const screen = new AnswerScreen(session, {
      message: voicemailMessage(dial), mode: dial.amd, calls: this.o.store.calls,
      verdictTimeoutMs: (AMD_TIMEOUT_S[dial.amd] + 2) * 1000,
      // Twilio's verdicts reach the call's row from their callback (amdCallback);
      // when none came in time the screen's own `unknown` is stored (a verdict
      // arriving later still replaces it: Twilio's is the one on record).
      events: { answeredBy: (result, detail) => void (detail?.raw === 'timeout' && this.dialer.events(callId).answeredBy(result, detail)) },
    });
    this.screens.set(callId, screen);
    const early = this.early.get(callId);
    if (early) {
      this.early.delete(callId);
      screen.answered(early.result, { source: 'twilio', raw: early.raw, messageEnded: early.raw.startsWith('machine_end') });
    }
  }

  /** transfer_call: the guards pass the target, then the call is redirected to <Dial> (the stream ends). */
  private async transfer(session: CallSession, transport: TwilioTransport, record: CallRecord, callSid: string, target: string): Promise<boolean> {
    try {
      await this.dialer.guards.checkTransfer(record.tenantId, target);
    } catch (err) {
      if (err instanceof DialRefused) {
        session.log.warn('transfer refused by the outbound guards', { reason: err.code });
        return false;
      }
      throw err;
    }
    const vr = new twilio.twiml.VoiceResponse();
    const dial = vr.dial({ ...(record.from ? { callerId: record.from } : {}), timeout: DIAL_TIMEOUT_S });
    if (/^sips?:/i.test(target)) dial.sip(target);
    else dial.number(target);
    this.transferred.add(record.id);
    try {
      await this.client.calls(callSid).update({ twiml: vr.toString() });
    } catch (err) {
      this.transferred.delete(record.id);
      session.log.warn('transfer over the Twilio REST API failed', { err: (err as Error).message });
      return false;
    }
    // Twilio now runs the <Dial> and stops the stream: end the session
    // without closing the socket ourselves (a close would end <Connect> and the call).
    transport.closed = true;
    void session.end('transferred', 'transferred');
    return true;
  }
}

/**
 * The Twilio carrier for this config: the real REST API with
 * TWILIO_ACCOUNT_SID and a secret (TWILIO_API_KEY + TWILIO_API_SECRET, else
 * TWILIO_AUTH_TOKEN); the built-in REST emulator when EMULATORS=on, or
 * with EMULATORS=auto and no account (its account signs with the gateway's
 * auth token, as Twilio signs with the account's); none with EMULATORS=off
 * and no account (outbound over Twilio then answers 422). The carrier is
 * registered with the control plane's dialer.
 */
export async function startTwilioCarrier(o: {
  config: Config; store: ControlPlane; gateway: TwilioGateway; router: Router; emulator?: { url: string; emulator: TwilioRestEmulator };
}): Promise<{ carrier: TwilioCarrier | null; close(): Promise<void> }> {
  const c = o.config;
  const secret = c.twilioApiKey?.secret ?? c.twilioAuthToken;
  const configured = !!(c.twilioAccountSid && secret);
  // In production EMULATORS=auto never emulates silently (src/production.ts refuses that for the providers); an
  // inbound-only deployment has no Twilio account, so outbound over Twilio is just off there (422 at the API).
  const emulate = c.emulators === 'on' || (c.emulators === 'auto' && !configured && c.nodeEnv !== 'production');
  const base = { store: o.store, gateway: o.gateway, router: o.router, publicUrl: c.publicUrl };
  if (!emulate) {
    if (!configured) {
      log.info('outbound calls over Twilio: off (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN or TWILIO_API_KEY/TWILIO_API_SECRET)');
      return { carrier: null, close: async () => {} };
    }
    const rest = { accountSid: c.twilioAccountSid!, secret: secret!, apiKeySid: c.twilioApiKey?.sid, baseUrl: c.twilioApiUrl };
    log.info('outbound calls: Twilio REST API', { url: c.twilioApiUrl, auth: rest.apiKeySid ? 'api key' : 'auth token' });
    return { carrier: registered(new TwilioCarrier({ ...base, rest, emulated: false })), close: async () => {} };
  }
  const own = o.emulator ? null : await startTwilioRestEmulator();
  const emu = o.emulator ?? own!;
  const accountSid = 'AC' + crypto.createHash('sha256').update(o.gateway.authToken).digest('hex').slice(0, 32);
  emu.emulator.addAccount(accountSid, o.gateway.authToken);
  log.warn('outbound calls (Twilio REST): EMULATED — built-in emulator, the callee is simulated', { url: emu.url });
  return {
    carrier: registered(new TwilioCarrier({ ...base, rest: { accountSid, secret: o.gateway.authToken, baseUrl: emu.url }, emulated: true })),
    close: async () => {
      await own?.emulator.close();
    },
  };
}

function registered(carrier: TwilioCarrier): TwilioCarrier {
  OutboundDialer.for(carrier.store).register(carrier);
  return carrier;
}
