// WORKERS > 1: SIP signalling lives in the main thread, so a media worker
// (where the API and the campaign runner answer) cannot place a SIP call
// itself. It hands the call to the main thread's SIP carrier over the worker
// channel; the main thread reports the call's progress through its own
// dialer (CarrierEvents are rebuilt from the call id there), into the same
// call row every thread reads.
import type { OutboundDialer } from '../outbound/dialer.js';
import type { Carrier, PlaceRequest } from '../outbound/types.js';
import type { Rpc } from './rpc.js';

/** The place/hangup round trip may wait for DNS and the trunk's first answer. */
const PLACE_TIMEOUT_MS = 60_000;

/** In a media worker: the SIP carrier, forwarded to the main thread. */
export class RemoteSipCarrier implements Carrier {
  readonly via = 'sip' as const;

  constructor(private readonly rpc: Rpc) {}

  async place({ call, request, agent }: PlaceRequest): Promise<void> {
    await this.rpc.callWithin(PLACE_TIMEOUT_MS, 'sip-place', call, request, agent);
  }

  async hangup(callId: string): Promise<void> {
    await this.rpc.callWithin(PLACE_TIMEOUT_MS, 'sip-hangup', callId);
  }
}

/** In the main thread: serves a worker's RemoteSipCarrier with the dialer's registered SIP carrier. */
export function serveSipCarrier(rpc: Rpc, dialer: OutboundDialer): void {
  rpc.handle('sip-place', async (call: PlaceRequest['call'], request: PlaceRequest['request'], agent: PlaceRequest['agent']) => {
    const carrier = dialer.carrier('sip');
    if (!carrier) throw new Error('outbound SIP is not available on this server (SIP_PORT=0)');
    await carrier.place({ call, request, agent, events: dialer.events(call.id) });
    return true;
  });
  rpc.handle('sip-hangup', async (callId: string) => {
    await dialer.carrier('sip')?.hangup(callId);
    return true;
  });
}
