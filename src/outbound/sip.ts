// The SIP trunk carrier: places a dial through a tenant's trunk with outbound
// settings (src/store/trunk-outbound.ts) as a UAC (sip/uac.ts, driven by
// SipServer.dial), and reports its progress to the dialer as CarrierEvents.
//
// Where we connect is the tenant's choice, so it is checked like a webhook
// tool's URL (src/pipeline/address-policy.ts): the trunk host is resolved
// once per dial, every address it resolves to must be allowed (loopback and
// private only with TOOLS_ALLOW_PRIVATE_NETWORKS; link-local, metadata,
// multicast and reserved never), and every request of the call goes to that
// one address. The callee's SDP media address is held to the same policy.
import { SIP_USER, parseSipTarget } from '../store/trunk-outbound.js';
import {
  AddressRefusedError, classifyAddress, refusal, resolveChecked, systemLookup, type HostLookup, type NetworkPolicy,
} from '../pipeline/address-policy.js';
import type { CallSession } from '../call/session.js';
import type { ControlPlane } from '../store/index.js';
import type { SipServer } from '../../sip/index.js';
import { OutboundDialer } from './dialer.js';
import { sipHops, systemSrv, type SrvResolver } from './srv.js';
import type { Carrier, PlaceRequest } from './types.js';

export interface SipCarrierOptions {
  sip: SipServer;
  store: ControlPlane;
  /** TOOLS_ALLOW_PRIVATE_NETWORKS: whether trunks and media may be on loopback/private addresses. */
  network: NetworkPolicy;
  lookup?: HostLookup;
  /** SRV lookups for trunk hosts (tests point it at their own DNS server); default the system resolver. */
  resolveSrv?: SrvResolver;
  /** Ring time before CANCEL (default 30 s). */
  dialTimeoutMs?: number;
  /**
   * The callee answered: the call's session exists, and neither it nor the
   * agent's conversation has started yet. What must run on an answered call
   * before the agent speaks (answering-machine detection) hooks in here.
   */
  onAnswered?(session: CallSession, place: PlaceRequest): void;
}

export class SipCarrier implements Carrier {
  readonly via = 'sip' as const;

  constructor(private readonly o: SipCarrierOptions) {}

  async place(p: PlaceRequest): Promise<void> {
    const { call, request, events } = p;
    if (!request.trunkId) throw new Error('a SIP call needs trunkId');
    const out = await this.o.store.trunks.outboundFor(call.tenantId, request.trunkId);
    if (!out) throw new Error('the trunk has no outbound settings');
    const trunk = parseSipTarget(out.uri, out.transport);
    if (!trunk) throw new Error('the trunk outbound uri is not usable');
    const fromUser = out.fromUser ?? request.from;
    if (!SIP_USER.test(fromUser)) throw new Error('from is not usable as a SIP user');
    // RFC 3263: the trunk's SRV records when its URI names no port; the first server whose addresses the policy allows.
    const hops = await sipHops(trunk.host, trunk.port, /:\d+$/.test(out.uri), out.transport, this.o.resolveSrv ?? systemSrv);
    // Over UDP the first allowed target; over TCP/TLS the others follow it when a connection fails (sip/index.ts).
    const allowed: { address: string; port: number }[] = [];
    let refused: Error | null = null;
    for (const hop of hops) {
      if (allowed.length && out.transport === 'udp') break;
      try {
        // resolveChecked reads only the host of the URL it is given.
        allowed.push({ address: (await resolveChecked(new URL(`http://${hop.host}/`), this.o.network, this.o.lookup ?? systemLookup)).address, port: hop.port });
      } catch (err) {
        if (!(err instanceof AddressRefusedError)) throw err;
        refused ??= new Error(`trunk host ${hop.host === trunk.host ? trunk.host : `${trunk.host} (SRV target ${hop.host})`} ${err.message}`);
      }
    }
    if (!allowed.length) throw refused ?? new Error(`trunk host ${trunk.host}: no server to try`);
    const [{ address, port }, ...rest] = allowed as [{ address: string; port: number }, ...{ address: string; port: number }[]];
    const sipCallId = await this.o.sip.dial({
      recordId: call.id,
      agent: p.agent,
      to: request.to,
      from: { user: fromUser, host: out.fromDomain ?? trunk.host },
      trunk,
      target: { proto: out.transport, address, port },
      alternatives: rest.map((a) => ({ proto: out.transport, ...a })),
      credentials: out.username !== undefined && out.password !== undefined ? { username: out.username, password: out.password } : undefined,
      allowRefer: out.allowRefer,
      timeoutMs: this.o.dialTimeoutMs,
      mediaAllowed: (a) => {
        const cls = classifyAddress(a);
        return cls !== null && refusal(cls, this.o.network) === null;
      },
      events,
      onAnswered: (live) => live.session && this.o.onAnswered?.(live.session, p),
    });
    await OutboundDialer.for(this.o.store).records.setExternalId(call.id, sipCallId);
  }

  async hangup(callId: string): Promise<void> {
    this.o.sip.hangupOutbound(callId, 'hung up through the API');
  }
}
