// Where a SIP trunk's host name sends us (RFC 3263 §4.2, RFC 2782): when the
// trunk URI names no port, its SRV records for the trunk's transport
// (`_sip._udp`, `_sip._tcp`, `_sips._tcp` for TLS) give the servers and their
// ports, tried by priority and, within one priority, in a weighted random
// order; without records, the host itself at the transport's default port.
// NAPTR is not consulted: the trunk names its transport. What comes back is
// outside input (anyone's DNS): at most MAX_TARGETS targets are used, and each
// target's addresses still go through the network policy (src/outbound/sip.ts).
import dns from 'node:dns';
import type { TrunkOutbound } from '../store/trunk-outbound.js';

export type SrvResolver = (name: string) => Promise<dns.SrvRecord[]>;

export const systemSrv: SrvResolver = (name) => dns.promises.resolveSrv(name);

const MAX_TARGETS = 8;
const HOST_NAME = /^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;

export interface SipHop {
  host: string;
  port: number;
}

/** The SRV owner name for a trunk host and transport. */
export function srvName(host: string, transport: TrunkOutbound['transport']): string {
  return transport === 'tls' ? `_sips._tcp.${host}` : `_sip._${transport}.${host}`;
}

/** RFC 2782 order: ascending priority; within one, a weighted random draw without replacement (weight 0 last-ish, as the RFC's running sum gives). */
export function orderSrv(records: readonly dns.SrvRecord[], random: () => number = Math.random): dns.SrvRecord[] {
  const out: dns.SrvRecord[] = [];
  const priorities = [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b);
  for (const p of priorities) {
    // Zero weights first in the list, so they are picked only when the draw lands on the running sum's start (RFC 2782).
    const pool = records.filter((r) => r.priority === p).sort((a, b) => (a.weight === 0 ? -1 : 0) - (b.weight === 0 ? -1 : 0));
    while (pool.length) {
      const total = pool.reduce((s, r) => s + r.weight, 0);
      const draw = Math.floor(random() * (total + 1));
      let sum = 0;
      let i = 0;
      for (; i < pool.length - 1; i++) {
        sum += pool[i]!.weight;
        if (sum >= draw) break;
      }
      out.push(pool.splice(i, 1)[0]!);
    }
  }
  return out;
}

/**
 * The servers to try for a trunk, in order. `explicitPort`: the URI named a
 * port, so no SRV lookup (§4.2). An SRV answer of a single "." target means
 * the domain offers no SIP service on that transport: an error.
 */
export async function sipHops(host: string, port: number, explicitPort: boolean, transport: TrunkOutbound['transport'], resolve: SrvResolver = systemSrv): Promise<SipHop[]> {
  const itself = [{ host, port }];
  if (explicitPort || /^[0-9.]+$/.test(host)) return itself;
  let records: dns.SrvRecord[];
  try {
    records = await resolve(srvName(host, transport));
  } catch {
    // No records (ENODATA, ENOTFOUND) or no answer: the A record of the host itself, as before SRV.
    return itself;
  }
  if (records.length === 1 && (records[0]!.name === '' || records[0]!.name === '.')) throw new Error(`${host} offers no SIP over ${transport} (SRV target ".")`);
  const u16 = (n: number) => Number.isInteger(n) && n >= 0 && n < 65536;
  const usable = records.filter((r) => HOST_NAME.test(r.name) && u16(r.priority) && u16(r.weight) && u16(r.port) && r.port > 0);
  if (!usable.length) return itself;
  return orderSrv(usable).slice(0, MAX_TARGETS).map((r) => ({ host: r.name.replace(/\.$/, '').toLowerCase(), port: r.port }));
}
