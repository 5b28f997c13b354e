// SDP offer/answer (RFC 3264, RFC 4566) for G.711 calls: parse the caller's
// offer, pick PCMU or PCMA in the offer's order of preference plus
// telephone-event (RFC 4733) with the offer's own payload type, mirror the
// direction, and write the answer with the same number and order of m= lines.
import { isIPv4 } from 'node:net';

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type Codec = 'pcmu' | 'pcma';

export interface MediaOffer {
  type: string;
  port: number;
  proto: string;
  formats: string[];
  /** payload type → "name/rate" in lower case */
  rtpmap: Map<number, string>;
  direction: Direction | null;
  connection: string | null;
}

export interface SdpOffer {
  connection: string | null;
  direction: Direction | null;
  media: MediaOffer[];
}

export interface Negotiated {
  codec: Codec;
  pt: number;
  dtmfPt: number | null;
  /** Where to send RTP (the offer's c=/m=); null while the caller holds (c=0.0.0.0). */
  remoteAddress: string | null;
  remotePort: number;
  /** Our direction in the answer. */
  direction: Direction;
  /** Index of the accepted m= line. */
  index: number;
}

const DIRECTIONS: readonly Direction[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];
const STATIC: Record<number, string> = { 0: 'pcmu/8000', 8: 'pcma/8000' };

/** Parses an SDP body; null when it is not a usable session description. */
export function parseSdp(text: string): SdpOffer | null {
  const lines = text.split(/\r?\n/);
  if (!/^v=0\s*$/.test(lines[0] ?? '')) return null;
  const offer: SdpOffer = { connection: null, direction: null, media: [] };
  let m: MediaOffer | null = null;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq !== 1) continue;
    const k = line[0];
    const v = line.slice(2).trim();
    if (k === 'm') {
      const parts = v.split(/\s+/);
      const port = Number(parts[1]?.split('/')[0]);
      if (parts.length < 4 || !Number.isInteger(port) || port < 0 || port > 65535) return null;
      m = { type: parts[0]!, port, proto: parts[2]!, formats: parts.slice(3), rtpmap: new Map(), direction: null, connection: null };
      offer.media.push(m);
    } else if (k === 'c') {
      const c = /^IN\s+IP[46]\s+([^\s/]+)/.exec(v);
      if (!c) return null;
      if (m) m.connection = c[1]!;
      else offer.connection = c[1]!;
    } else if (k === 'a') {
      const dir = DIRECTIONS.find((d) => d === v);
      if (dir) {
        if (m) m.direction = dir;
        else offer.direction = dir;
      } else if (m && v.startsWith('rtpmap:')) {
        const r = /^rtpmap:(\d+)\s+([^/\s]+)\/(\d+)/.exec(v);
        if (r) m.rtpmap.set(Number(r[1]), `${r[2]!.toLowerCase()}/${r[3]}`);
      }
    }
  }
  return offer.media.length ? offer : null;
}

function encoding(m: MediaOffer, fmt: string): string | null {
  if (!/^\d+$/.test(fmt)) return null;
  const pt = Number(fmt);
  return m.rtpmap.get(pt) ?? STATIC[pt] ?? null;
}

/** Picks codec and DTMF from the first usable audio stream; null means 488 (nothing in common). */
export function negotiate(offer: SdpOffer): Negotiated | null {
  for (let i = 0; i < offer.media.length; i++) {
    const m = offer.media[i]!;
    if (m.type !== 'audio' || m.port === 0 || !/^RTP\/AVP$/i.test(m.proto)) continue;
    let codec: Codec | null = null;
    let pt = -1;
    let dtmfPt: number | null = null;
    for (const f of m.formats) {
      const enc = encoding(m, f);
      if (!codec && (enc === 'pcmu/8000' || enc === 'pcma/8000')) {
        codec = enc === 'pcmu/8000' ? 'pcmu' : 'pcma';
        pt = Number(f);
      } else if (dtmfPt === null && enc === 'telephone-event/8000') dtmfPt = Number(f);
    }
    if (!codec) continue;
    const address = m.connection ?? offer.connection;
    const theirs = m.direction ?? offer.direction ?? 'sendrecv';
    const held = address === '0.0.0.0';
    // Only an IPv4 literal is a place to send RTP to (our sockets are udp4): a host name would
    // cost a DNS lookup per packet and point our media wherever it resolves. Without one we
    // answer and send to wherever the caller's RTP comes from (symmetric RTP).
    const usable = address !== null && isIPv4(address);
    const ours: Direction = held ? (theirs === 'inactive' ? 'inactive' : 'recvonly') : mirror(theirs);
    return { codec, pt, dtmfPt, remoteAddress: held || !usable ? null : address, remotePort: m.port, direction: ours, index: i };
  }
  return null;
}

function mirror(d: Direction): Direction {
  return d === 'sendonly' ? 'recvonly' : d === 'recvonly' ? 'sendonly' : d;
}

export interface AnswerOptions {
  ip: string;
  port: number;
  sessionId: number;
  version: number;
}

/** The answer: every offered m= line in order; all but the accepted one rejected with port 0. */
export function buildAnswer(offer: SdpOffer, n: Negotiated, o: AnswerOptions): string {
  const out = [
    'v=0',
    `o=aybiza ${o.sessionId} ${o.version} IN IP4 ${o.ip}`,
    's=aybiza',
    `c=IN IP4 ${o.ip}`,
    't=0 0',
  ];
  offer.media.forEach((m, i) => {
    if (i !== n.index) {
      out.push(`m=${m.type} 0 ${m.proto} ${m.formats[0] ?? '0'}`);
      return;
    }
    const fmts = n.dtmfPt === null ? [n.pt] : [n.pt, n.dtmfPt];
    out.push(`m=audio ${o.port} RTP/AVP ${fmts.join(' ')}`);
    out.push(`a=rtpmap:${n.pt} ${n.codec === 'pcmu' ? 'PCMU' : 'PCMA'}/8000`);
    if (n.dtmfPt !== null) out.push(`a=rtpmap:${n.dtmfPt} telephone-event/8000`, `a=fmtp:${n.dtmfPt} 0-16`);
    out.push('a=ptime:20', `a=${n.direction}`);
  });
  return out.join('\r\n') + '\r\n';
}

/** Our offer, for an INVITE that came without one (delayed offer, RFC 3261 §13.2.1): PCMU, PCMA, telephone-event 101. */
export function buildOffer(o: AnswerOptions): string {
  return [
    'v=0', `o=aybiza ${o.sessionId} ${o.version} IN IP4 ${o.ip}`, 's=aybiza', `c=IN IP4 ${o.ip}`, 't=0 0',
    `m=audio ${o.port} RTP/AVP 0 8 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16', 'a=ptime:20', 'a=sendrecv',
  ].join('\r\n') + '\r\n';
}

/** What we assume until the answer to our offer arrives in the ACK. */
export const OUR_OFFER: Negotiated = { codec: 'pcmu', pt: 0, dtmfPt: 101, remoteAddress: null, remotePort: 0, direction: 'sendrecv', index: 0 };
