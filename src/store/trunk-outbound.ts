// A SIP trunk's outbound settings: where calls the agent places through the
// trunk go (`sip:host[:port]`, UDP, TCP or TLS), with optional digest credentials
// for the carrier's 401/407 and the From identity it expects.
//
// The target is an address *we* connect to, chosen by a tenant: a server-side
// request forgery risk like a webhook tool's URL. So the URI is a bare
// `sip:host[:port]` (no user part, parameters or headers that could steer the
// request), the host an IPv4 literal or a DNS name (our SIP sockets are IPv4),
// and a literal that can never be a carrier (link-local and cloud metadata,
// multicast, broadcast, unspecified, reserved/documentation ranges) is refused
// here. Loopback and private addresses are judged when the call is placed,
// on the address the name resolves to then, under the node's network policy
// (TOOLS_ALLOW_PRIVATE_NETWORKS), and every request of the call goes to that
// one checked address (src/outbound/sip.ts).
import net from 'node:net';
import { classifyHost } from '../pipeline/address-policy.js';
import { InvalidError } from './errors.js';

export interface TrunkOutbound {
  /** `sip:host[:port]` */
  uri: string;
  transport: 'udp' | 'tcp' | 'tls';
  username?: string;
  /** Sealed at rest; masked in API answers and the audit log; plaintext only on the call path. */
  password?: string;
  /** The From user (the caller ID the carrier shows); default: the dial's `from`. */
  fromUser?: string;
  /** The From host; default: the trunk's host. */
  fromDomain?: string;
}

export interface SipTarget {
  host: string;
  port: number;
}

const HOST_NAME = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;
export const SIP_USER = /^[A-Za-z0-9._~!$&*+=-]{1,64}$/;
/** Never a carrier, whatever the policy. */
const NEVER = new Set(['link_local', 'metadata', 'multicast', 'unspecified', 'broadcast', 'reserved']);

/** The port a trunk URI without one means: 5061 over TLS, else 5060 (RFC 3263 §4.2). */
export function defaultSipPort(transport: TrunkOutbound['transport'] | undefined): number {
  return transport === 'tls' ? 5061 : 5060;
}

/** `sip:host[:port]` → host and port (the transport's default); null when it is not exactly that. */
export function parseSipTarget(uri: string, transport?: TrunkOutbound['transport']): SipTarget | null {
  const m = /^sip:([^:;?@\s]+)(?::(\d{1,5}))?$/i.exec(uri);
  if (!m) return null;
  const host = m[1]!;
  const port = m[2] === undefined ? defaultSipPort(transport) : Number(m[2]);
  if (port < 1 || port > 65535) return null;
  if (!net.isIPv4(host) && (!HOST_NAME.test(host) || /^[0-9.]+$/.test(host))) return null;
  return { host: host.replace(/\.$/, '').toLowerCase(), port };
}

/** Validates outbound settings (InvalidError naming `outbound.<field>`); returns them normalised. */
export function checkOutbound(o: TrunkOutbound): TrunkOutbound {
  const transport = o.transport ?? 'udp';
  if (!['udp', 'tcp', 'tls'].includes(transport)) throw new InvalidError('outbound.transport', 'must be udp, tcp or tls');
  const target = parseSipTarget(o.uri, transport);
  if (!target) throw new InvalidError('outbound.uri', 'must be sip:host[:port] with an IPv4 address or a host name, and nothing else');
  const cls = classifyHost(target.host);
  if (cls && NEVER.has(cls)) throw new InvalidError('outbound.uri', `refers to a ${cls.replace('_', '-')} address, which cannot be a SIP trunk`);
  if ((o.username === undefined) !== (o.password === undefined)) {
    throw new InvalidError(o.username === undefined ? 'outbound.username' : 'outbound.password', 'username and password go together');
  }
  if (o.username !== undefined && !SIP_USER.test(o.username)) throw new InvalidError('outbound.username', 'letters, digits and ._~!$&*+=- only');
  if (o.fromUser !== undefined && !SIP_USER.test(o.fromUser)) throw new InvalidError('outbound.fromUser', 'letters, digits and ._~!$&*+=- only');
  if (o.fromDomain !== undefined && (!HOST_NAME.test(o.fromDomain) && !net.isIPv4(o.fromDomain))) throw new InvalidError('outbound.fromDomain', 'must be a host name or an IPv4 address');
  return {
    uri: `sip:${target.host}${target.port === defaultSipPort(transport) ? '' : `:${target.port}`}`,
    transport,
    ...(o.username !== undefined ? { username: o.username, password: o.password } : {}),
    ...(o.fromUser !== undefined ? { fromUser: o.fromUser } : {}),
    ...(o.fromDomain !== undefined ? { fromDomain: o.fromDomain.toLowerCase() } : {}),
  };
}
