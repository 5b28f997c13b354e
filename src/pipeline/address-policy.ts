// Where an HTTP tool may connect: the address classifier behind the SSRF
// guard of src/pipeline/tools.ts and the tool-URL check of the admin API.
// A tool URL is written by a tenant and its arguments by the model (which the
// caller can talk into anything), so the server must not become a proxy into
// its own network: loopback, private ranges, link-local (cloud metadata at
// 169.254.169.254 / fd00:ec2::254), multicast and reserved ranges are refused
// in every spelling (decimal, hex, octal and short IPv4, IPv4-mapped and
// -compatible IPv6, 6to4, NAT64, trailing dots, localhost names), and the
// check is made on the addresses DNS returns, which are the ones connected to.
import dns from 'node:dns';
import net from 'node:net';

/** What an address is; everything but `public` is refused unless a policy lifts it. */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'metadata'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'reserved';

export interface NetworkPolicy {
  /**
   * TOOLS_ALLOW_PRIVATE_NETWORKS: lets tools reach loopback and private
   * ranges (development, tests, tools on the same VPC). Never link-local /
   * cloud metadata, multicast or reserved ranges.
   */
  allowPrivateNetworks: boolean;
}

export const DEFAULT_NETWORK_POLICY: NetworkPolicy = { allowPrivateNetworks: false };

const DESCRIPTION: Record<Exclude<AddressClass, 'public'>, string> = {
  loopback: 'refers to a loopback address',
  private: 'refers to a private network address',
  link_local: 'refers to a link-local address',
  metadata: 'refers to a cloud metadata address',
  multicast: 'refers to a multicast address',
  unspecified: 'refers to an unspecified address',
  broadcast: 'refers to the broadcast address',
  reserved: 'refers to a reserved address',
};

/** A refused tool URL or address; `reason` is a short stable token (metric label). */
export class AddressRefusedError extends Error {
  readonly code = 'AYB_ERR_ADDRESS_REFUSED';
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'AddressRefusedError';
  }
}

// ---- parsing -------------------------------------------------------------

/**
 * An IPv4 address in any spelling inet_aton(3) and the WHATWG URL parser
 * accept: 1 to 4 parts, each decimal, hex (0x) or octal (leading 0), the last
 * part filling the remaining bytes (`127.1`, `2130706433`, `0x7f000001`,
 * `0177.0.0.1`), one trailing dot allowed. Returns the address as an unsigned
 * 32-bit number, or null if `text` is not such a literal.
 */
export function parseIPv4(text: string): number | null {
  let s = text;
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (!s) return null;
  const parts = s.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) v = parseInt(p.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) v = Number(p);
    else return null;
    if (!Number.isSafeInteger(v)) return null;
    values.push(v);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255)) return null;
  if (last >= 256 ** (4 - values.length)) return null;
  let n = last;
  values.forEach((v, i) => (n += v * 256 ** (3 - i)));
  return n >>> 0;
}

/** An IPv6 literal (brackets and zone id allowed) as 16 bytes, or null. */
export function parseIPv6(text: string): Uint8Array | null {
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!net.isIPv6(s)) return null;
  const bytes = new Uint8Array(16);
  let tailV4: number | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    tailV4 = parseIPv4(s.slice(lastColon + 1));
    if (tailV4 === null) return null;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
  const groups = (x: string) => (x ? x.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = tail === null ? [] : groups(tail);
  const all = tail === null ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  if (all.length !== 8) return null;
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  if (tailV4 !== null) {
    bytes[12] = tailV4 >>> 24;
    bytes[13] = (tailV4 >>> 16) & 0xff;
    bytes[14] = (tailV4 >>> 8) & 0xff;
    bytes[15] = tailV4 & 0xff;
  }
  return bytes;
}

// ---- classification --------------------------------------------------------

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const inV4 = (n: number, base: number, bits: number) => bits === 0 || (n >>> (32 - bits)) === (base >>> (32 - bits));

// IANA IPv4 special-purpose registry (RFC 6890 and successors), most specific first.
const V4_RANGES: [number, number, AddressClass][] = [
  [v4(0, 0, 0, 0), 32, 'unspecified'],
  [v4(255, 255, 255, 255), 32, 'broadcast'],
  [v4(169, 254, 169, 254), 32, 'metadata'], // AWS, GCP, Azure, OCI, OpenStack
  [v4(100, 100, 100, 200), 32, 'metadata'], // Alibaba Cloud
  [v4(0, 0, 0, 0), 8, 'reserved'], // "this network": Linux connects 0.x to the host itself
  [v4(10, 0, 0, 0), 8, 'private'],
  [v4(100, 64, 0, 0), 10, 'private'], // CGNAT, RFC 6598
  [v4(127, 0, 0, 0), 8, 'loopback'],
  [v4(169, 254, 0, 0), 16, 'link_local'],
  [v4(172, 16, 0, 0), 12, 'private'],
  [v4(192, 0, 0, 0), 24, 'reserved'], // IETF protocol assignments
  [v4(192, 0, 2, 0), 24, 'reserved'], // TEST-NET-1
  [v4(192, 88, 99, 0), 24, 'reserved'], // 6to4 relay anycast (deprecated)
  [v4(192, 168, 0, 0), 16, 'private'],
  [v4(198, 18, 0, 0), 15, 'reserved'], // benchmarking
  [v4(198, 51, 100, 0), 24, 'reserved'], // TEST-NET-2
  [v4(203, 0, 113, 0), 24, 'reserved'], // TEST-NET-3
  [v4(224, 0, 0, 0), 4, 'multicast'],
  [v4(240, 0, 0, 0), 4, 'reserved'],
];

export function classifyIPv4(n: number): AddressClass {
  for (const [base, bits, cls] of V4_RANGES) if (inV4(n, base, bits)) return cls;
  return 'public';
}

const word = (b: Uint8Array, i: number) => (b[i * 2] << 8) | b[i * 2 + 1];
const zero = (b: Uint8Array, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
const embedded = (b: Uint8Array, at: number) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;

export function classifyIPv6(b: Uint8Array): AddressClass {
  if (zero(b, 0, 16)) return 'unspecified';
  if (zero(b, 0, 15) && b[15] === 1) return 'loopback';
  // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d:
  // the socket reaches the IPv4 address, so it is judged as one.
  if (zero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return classifyIPv4(embedded(b, 12));
  if (zero(b, 0, 12)) return classifyIPv4(embedded(b, 12));
  if (zero(b, 0, 8) && word(b, 4) === 0xffff && word(b, 5) === 0) return classifyIPv4(embedded(b, 12));
  const w0 = word(b, 0);
  const w1 = word(b, 1);
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): the gateway connects to the embedded IPv4.
  if (w0 === 0x64 && w1 === 0xff9b && zero(b, 4, 12)) return classifyIPv4(embedded(b, 12));
  if (w0 === 0x64 && w1 === 0xff9b && word(b, 2) === 1) return 'private'; // local-use NAT64, RFC 8215
  if (w0 === 0x2002) return classifyIPv4(embedded(b, 2)); // 6to4 embeds an IPv4 address
  if (w0 === 0x100 && zero(b, 2, 8)) return 'reserved'; // discard-only
  if (w0 === 0x2001 && w1 === 0xdb8) return 'reserved'; // documentation
  if (w0 === 0x2001 && w1 < 0x200) return 'reserved'; // IETF protocol assignments (Teredo, ORCHID, benchmarking)
  if (w0 === 0xfd00 && w1 === 0x0ec2) return 'metadata'; // AWS IMDS, DNS and time sync (fd00:ec2::254, ::253, ::123)
  if ((w0 & 0xfe00) === 0xfc00) return 'private'; // ULA fc00::/7
  if ((w0 & 0xffc0) === 0xfe80) return 'link_local';
  if ((w0 & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local
  if ((w0 & 0xff00) === 0xff00) return 'multicast';
  if (w0 === 0x3fff && (w1 & 0xf000) === 0) return 'reserved'; // 3fff::/20 documentation, RFC 9637
  if ((w0 & 0xff00) === 0x5f00) return 'reserved'; // SRv6 SIDs
  if ((w0 & 0xe000) !== 0x2000) return 'reserved'; // only 2000::/3 is global unicast
  return 'public';
}

/** Classifies an IP literal in any spelling; null when `text` is not one. */
export function classifyAddress(text: string): AddressClass | null {
  const b6 = parseIPv6(text);
  if (b6) return classifyIPv6(b6);
  const n = parseIPv4(text);
  return n === null ? null : classifyIPv4(n);
}

/**
 * Classifies a URL host without DNS: IP literals and the names that are
 * loopback by definition (`localhost`, `*.localhost`, RFC 6761, with or
 * without the trailing dot). null: a name to resolve.
 */
export function classifyHost(host: string): AddressClass | null {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return 'loopback';
  return classifyAddress(name);
}

/** The refusal reason for an address class under `policy`, or null if allowed. */
export function refusal(cls: AddressClass, policy: NetworkPolicy): Exclude<AddressClass, 'public'> | null {
  if (cls === 'public') return null;
  if ((cls === 'loopback' || cls === 'private') && policy.allowPrivateNetworks) return null;
  return cls;
}

function refuse(cls: AddressClass, policy: NetworkPolicy): void {
  const r = refusal(cls, policy);
  if (r) throw new AddressRefusedError(r, DESCRIPTION[r]);
}

// ---- tool URLs -----------------------------------------------------------------

/**
 * Parses a tool URL and refuses what can be refused without DNS: other
 * schemes than http/https, credentials in the URL, refused literal hosts.
 * The admin API runs it on every tool of an agent; the tool call runs it
 * again, then resolves (see resolveChecked).
 */
export function checkToolUrl(raw: string, policy: NetworkPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AddressRefusedError('url_invalid', 'is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AddressRefusedError('url_scheme', 'must use http or https');
  if (url.username || url.password) throw new AddressRefusedError('url_credentials', 'must not carry credentials (use authHeader)');
  const cls = classifyHost(url.hostname);
  if (cls) refuse(cls, policy);
  return url;
}

/** The message for a refused tool URL, or null when it is acceptable (admin API). */
export function toolUrlProblem(raw: string, policy: NetworkPolicy): { reason: string; message: string } | null {
  try {
    checkToolUrl(raw, policy);
    return null;
  } catch (err) {
    if (err instanceof AddressRefusedError) return { reason: err.reason, message: err.message };
    throw err;
  }
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (dns.lookup by default; tests inject one). */
export type HostLookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemLookup: HostLookup = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * The address to connect to for a checked URL's host: a literal as is, a
 * name resolved and every address it resolves to checked (one refused
 * address refuses the name: which one a client picks is not ours to know).
 * The caller connects to exactly this address, so there is no second
 * resolution an attacker's DNS could answer differently (rebinding).
 */
export async function resolveChecked(url: URL, policy: NetworkPolicy, lookup: HostLookup = systemLookup): Promise<ResolvedAddress> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const cls = classifyHost(host);
  if (cls) {
    refuse(cls, policy);
    if (net.isIP(host)) return { address: host, family: net.isIPv6(host) ? 6 : 4 };
  }
  let addresses: { address: string; family: number }[];
  try {
    addresses = await lookup(host);
  } catch {
    throw new AddressRefusedError('dns_failed', `host ${host} could not be resolved`);
  }
  if (addresses.length === 0) throw new AddressRefusedError('dns_failed', `host ${host} could not be resolved`);
  for (const a of addresses) {
    const c = classifyAddress(a.address);
    if (c === null) throw new AddressRefusedError('dns_failed', `host ${host} resolved to something that is not an address`);
    refuse(c, policy);
  }
  const first = addresses[0];
  return { address: first.address, family: net.isIPv6(first.address) ? 6 : 4 };
}
