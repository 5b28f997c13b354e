// The outbound dialer: one place where every outbound call starts, whoever
// asks (POST /v1/calls, a campaign). It runs the guards, creates the call
// row (`queued`), hands the call to the carrier registered for its `via`
// (Twilio REST, SIP UAC), and turns the carrier's events into the row's
// status and answeredBy. A call's end is announced once, cluster-wide: the
// node that first records the final status publishes it through
// SharedState, and every node's onFinal listeners hear it (the row, on any
// node, holds the same outcome).
import type { ControlPlane } from '../store/index.js';
import type { CallRecord, Principal, ResolvedAgent } from '../store/types.js';
import { revealConfig } from '../store/agents.js';
import { audit } from '../store/audit.js';
import { ConflictError, InvalidError, NotFoundError } from '../store/errors.js';
import { amdTotal, callsTotal } from '../metrics/index.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import { E164, OUTBOUND_ACTOR, OutboundGuards } from './guards.js';
import { isFinal, OutboundRecords, type StoredDial } from './records.js';
import { applyVariables } from './variables.js';
import type { AnsweredBy, Carrier, CarrierEvents, DialRequest, OutboundStatus, OutboundVia } from './types.js';

export { DialRefused, type RefusalCode } from './guards.js';

/** SharedState message announcing a call's final status: `outbound:final:<call id>`. */
const FINAL = 'outbound:final:';

export type FinalListener = (call: CallRecord) => void;

/** One dialer per control plane: the API, campaigns and carriers find it with OutboundDialer.for(cp). */
const dialers = new WeakMap<ControlPlane, OutboundDialer>();

export class OutboundDialer {
  readonly guards: OutboundGuards;
  readonly records: OutboundRecords;
  private readonly carriers = new Map<OutboundVia, Carrier>();
  private readonly listeners = new Set<FinalListener>();
  /** Each call's carrier events are applied in the order they came (one chain per live call). */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly cp: ControlPlane) {
    this.guards = new OutboundGuards(cp);
    this.records = new OutboundRecords(cp.db, cp.calls);
    cp.state.subscribe((m) => {
      if (!m.startsWith(FINAL) || this.listeners.size === 0) return;
      const callId = m.slice(FINAL.length);
      this.records.get(callId).then(
        (call) => call && this.emit(call),
        (err) => reportInternalError('store', err),
      );
    });
  }

  static for(cp: ControlPlane): OutboundDialer {
    let d = dialers.get(cp);
    if (!d) dialers.set(cp, (d = new OutboundDialer(cp)));
    return d;
  }

  register(carrier: Carrier): void {
    this.carriers.set(carrier.via, carrier);
  }

  carrier(via: OutboundVia): Carrier | undefined {
    return this.carriers.get(via);
  }

  /** Listens for calls reaching a final status (on every node); returns the unsubscribe function. */
  onFinal(fn: FinalListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The call once it has a final status (now, if it already has one). */
  async whenFinal(callId: string, timeoutMs = 120_000): Promise<CallRecord> {
    let off = () => {};
    const heard = new Promise<CallRecord>((resolve) => {
      off = this.onFinal((c) => c.id === callId && resolve(c));
    });
    try {
      const now = await this.records.get(callId);
      if (now && isFinal(now.status) && now.endedAt) return now;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`call ${callId} not ended after ${timeoutMs} ms`)), timeoutMs)));
      try {
        return await Promise.race([heard, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      off();
    }
  }

  /**
   * Places one call. Refused by the guards: throws DialRefused (nothing is
   * dialled, no row is made). A carrier that fails to take the call leaves
   * the row `failed` with the reason, and that row is returned.
   */
  async dial(tenantId: string, req: DialRequest, who: Principal = OUTBOUND_ACTOR): Promise<CallRecord> {
    if (!E164.test(req.to)) throw new InvalidError('to', 'must be an E.164 number');
    const carrier = this.carriers.get(req.via);
    if (!carrier) throw new InvalidError('via', `outbound calls over ${req.via} are not available on this server`);
    const agent = await this.resolveAgent(tenantId, req.agentId);
    await this.guards.checkDial(tenantId, req.to, who);
    const call = await this.records.create(tenantId, agent.agentId, agent.agentVersion, req);
    await this.cp.db.tx((c) =>
      audit(c, who, tenantId, 'call.dial', 'call', call.id, undefined, { id: call.id, agentId: agent.agentId, to: req.to, from: req.from, via: req.via, amd: req.amd ?? 'off' }),
    );
    const events = this.events(call.id);
    events.status('dialing');
    try {
      await carrier.place({ call, request: req, agent: { ...agent, config: applyVariables(agent.config, req.variables) }, events });
    } catch (err) {
      log.warn('outbound call not placed', { callId: call.id, via: req.via, err: (err as Error).message });
      events.status('failed', { endReason: `not placed: ${(err as Error).message}`.slice(0, 300) });
    }
    await this.settled(call.id);
    return (await this.records.get(call.id))!;
  }

  /** Ends an outbound call whatever its state (idempotent); answers the row. */
  async hangup(tenantId: string | null, callId: string, who: Principal = OUTBOUND_ACTOR): Promise<CallRecord> {
    const call = await this.records.get(callId);
    if (!call || (tenantId !== null && call.tenantId !== tenantId)) throw new NotFoundError('call');
    if (call.direction !== 'outbound') throw new ConflictError('only outbound calls are hung up through the API');
    if (call.endedAt) return call;
    await this.cp.db.tx((c) => audit(c, who, call.tenantId, 'call.hangup', 'call', callId, { status: call.status }, undefined));
    const carrier = this.carriers.get(call.transport);
    if (carrier) await carrier.hangup(callId);
    // The carrier's own report (a status callback, a BYE's answer) may come
    // later or never; the row ends now, with the first reason.
    this.events(callId).status(call.answeredAt ? 'completed' : 'canceled', { endReason: 'hung up through the API' });
    await this.settled(callId);
    return (await this.records.get(callId))!;
  }

  /** Carrier events for a call (a carrier that hears about a call on another node builds them from the id). */
  events(callId: string): CarrierEvents {
    return {
      status: (status, detail) => this.enqueue(callId, () => this.applyStatus(callId, status, detail?.endReason)),
      answeredBy: (result, detail) =>
        this.enqueue(callId, async () => {
          // Our own detector's verdicts are counted where they are made (src/pipeline/voicemail.ts).
          if (detail?.source !== 'aybiza') amdTotal.inc({ result });
          await this.records.setAnsweredBy(callId, result);
          log.info('answered by', { callId, result, source: detail?.source, raw: detail?.raw, decisionMs: detail?.decisionMs });
        }),
    };
  }

  /** Waits until the call's queued events are applied. */
  async settled(callId: string): Promise<void> {
    await this.chains.get(callId);
  }

  private enqueue(callId: string, op: () => Promise<void>): void {
    const prev = this.chains.get(callId) ?? Promise.resolve();
    const next = prev.then(op).catch((err) => reportInternalError('store', err, { callId }));
    this.chains.set(callId, next);
    void next.then(guard('store', () => {
      if (this.chains.get(callId) === next) this.chains.delete(callId);
    }));
  }

  private async applyStatus(callId: string, status: OutboundStatus, endReason?: string): Promise<void> {
    const { ended } = await this.records.advance(callId, status, endReason);
    if (!ended) return;
    callsTotal.inc({ transport: ended.transport, outcome: ended.status, direction: 'outbound' });
    log.info('outbound call ended', { callId, status: ended.status, answeredBy: ended.answeredBy, reason: ended.endReason });
    await this.cp.state.publish(FINAL + callId);
  }

  private emit(call: CallRecord): void {
    for (const fn of this.listeners) {
      try {
        fn(call);
      } catch (err) {
        reportInternalError('call', err, { callId: call.id });
      }
    }
  }

  /**
   * The agent a dial uses: its live version (or the canary, in its share of
   * dials), with tool secrets opened for the call path. Another tenant's
   * agent reads as not found.
   */
  async resolveAgent(tenantId: string, agentId: string, version?: number): Promise<ResolvedAgent> {
    const r = (
      await this.cp.db.pool.query(
        `select a.tenant_id, t.max_concurrent_calls, d.live_version, d.canary_version, d.canary_percent
           from agents a join tenants t on t.id = a.tenant_id join deployments d on d.agent_id = a.id
          where a.id = $1 and a.tenant_id = $2`,
        [agentId, tenantId],
      )
    ).rows[0];
    if (!r) throw new NotFoundError('agent');
    const pick = version ?? (r.canary_version && Math.random() * 100 < r.canary_percent ? r.canary_version : r.live_version);
    const v = (await this.cp.db.pool.query('select config from agent_versions where agent_id = $1 and version = $2', [agentId, pick])).rows[0];
    if (!v) throw new NotFoundError('agent version');
    return {
      tenantId, agentId, agentVersion: pick as number, maxConcurrentCalls: r.max_concurrent_calls,
      config: revealConfig(this.cp.keys, tenantId, agentId, v.config),
    };
  }

  /** An outbound call's agent as dialled (its version, variables filled), for whichever node carries the media. */
  async agentForCall(call: CallRecord): Promise<{ agent: ResolvedAgent; dial: StoredDial } | null> {
    if (call.direction !== 'outbound' || !call.agentId || call.agentVersion === null) return null;
    const dial = await this.records.dial(call.id);
    if (!dial) return null;
    const agent = await this.resolveAgent(call.tenantId, call.agentId, call.agentVersion);
    return { agent: { ...agent, config: applyVariables(agent.config, dial.variables) }, dial };
  }
}

export type { AnsweredBy };
