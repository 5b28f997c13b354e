// Digest authentication for INVITEs from trunks with credentials (RFC 2617,
// RFC 7616, RFC 8760 for SIP): MD5 and SHA-256 with qop=auth (required),
// checked against the HA1 hashes the trunk store keeps (never the password).
// - Nonces are a timestamp signed with a key every node shares (stored in
//   PostgreSQL), so a challenge from one node can be answered on another
//   behind a SIP load balancer; they expire after NONCE_TTL_MS (stale=true).
// - The digest `uri` must be the Request-URI: a response captured for one
//   request cannot authorise another.
// - Replays: each nonce's nc must increase on this node (highest nc per nonce
//   in a bounded map; a nonce evicted from it is answered stale, never trusted
//   afresh), and each (nonce, nc) is claimed once across nodes through
//   SharedState.claimOnce, so a replay sent to another node is refused too.
import crypto from 'node:crypto';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm;
  qop: string | null;
  nc: string | null;
  cnonce: string | null;
}

const NONCE_TTL_MS = 5 * 60_000;
/** Nonces whose highest nc this node remembers (each entry ~100 bytes). */
const MAX_TRACKED_NONCES = 50_000;

const UNKNOWN_USER_HA1 = crypto.randomBytes(32).toString('hex');

export type DigestVerdict = 'ok' | 'stale' | 'invalid' | 'replay';

export interface DigestOptions {
  /** The nonce HMAC key, shared by all nodes (Trunks.nonceKey). Default: a random per-process key (one node only). */
  key?: () => Promise<Buffer>;
  /** Cluster-wide single use of a key for ttlMs (SharedState.claimOnce). */
  claimOnce?: (key: string, ttlMs: number) => Promise<boolean>;
  now?: () => number;
  maxTrackedNonces?: number;
}

/** Parses `Digest k=v, k="v", …`; null when it is not a usable digest header. */
export function parseAuthorization(header: string | undefined): DigestCredentials | null {
  if (!header) return null;
  const m = /^\s*Digest\s+(.*)$/is.exec(header);
  if (!m) return null;
  const p: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let r: RegExpExecArray | null;
  while ((r = re.exec(m[1]!))) p[r[1]!.toLowerCase()] = r[2] !== undefined ? r[2].replace(/\\(.)/g, '$1') : r[3]!;
  const alg = (p.algorithm ?? 'MD5').toUpperCase();
  if (alg !== 'MD5' && alg !== 'SHA-256') return null;
  if (!p.username || !p.realm || !p.nonce || !p.uri || !p.response) return null;
  return {
    username: p.username, realm: p.realm, nonce: p.nonce, uri: p.uri, response: p.response.toLowerCase(),
    algorithm: alg, qop: p.qop ?? null, nc: p.nc ?? null, cnonce: p.cnonce ?? null,
  };
}

function hash(alg: DigestAlgorithm, s: string): string {
  return crypto.createHash(alg === 'MD5' ? 'md5' : 'sha256').update(s).digest('hex');
}

/** The expected response for HA1 (RFC 7616 §3.4.1; qop=auth or the RFC 2069 form). */
export function digestResponse(alg: DigestAlgorithm, ha1: string, method: string, c: Pick<DigestCredentials, 'nonce' | 'uri' | 'qop' | 'nc' | 'cnonce'>): string {
  const ha2 = hash(alg, `${method}:${c.uri}`);
  if (c.qop === 'auth') return hash(alg, `${ha1}:${c.nonce}:${c.nc ?? ''}:${c.cnonce ?? ''}:auth:${ha2}`);
  return hash(alg, `${ha1}:${c.nonce}:${ha2}`);
}

export class DigestAuth {
  private keyP: Promise<Buffer> | null = null;
  private readonly now: () => number;
  /** Highest nc seen per nonce, oldest first use first. */
  private readonly ncs = new Map<string, number>();
  /** Nonces issued at or before this time and no longer tracked are stale (their nc history was evicted). */
  private forgottenBefore = -Infinity;
  private readonly maxTracked: number;

  constructor(readonly realm: string, private readonly o: DigestOptions = {}) {
    this.now = o.now ?? Date.now;
    this.maxTracked = o.maxTrackedNonces ?? MAX_TRACKED_NONCES;
  }

  private key(): Promise<Buffer> {
    if (!this.keyP) {
      const p = this.o.key ? this.o.key() : Promise.resolve(crypto.randomBytes(32));
      p.catch(() => {
        if (this.keyP === p) this.keyP = null;
      });
      this.keyP = p;
    }
    return this.keyP;
  }

  async nonce(): Promise<string> {
    const t = this.now().toString(36);
    const salt = crypto.randomBytes(6).toString('hex');
    return `${t}.${salt}.${await this.sign(`${t}.${salt}`)}`;
  }

  private async sign(s: string): Promise<string> {
    return crypto.createHmac('sha256', await this.key()).update(s).digest('base64url').slice(0, 22);
  }

  /** 'ok', 'stale' (a nonce of ours that expired) or 'invalid'. */
  async checkNonce(nonce: string): Promise<'ok' | 'stale' | 'invalid'> {
    const parts = nonce.split('.');
    if (parts.length !== 3 || !/^[0-9a-z]{1,12}$/.test(parts[0]!)) return 'invalid';
    const expected = await this.sign(`${parts[0]}.${parts[1]}`);
    if (expected.length !== parts[2]!.length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(parts[2]!))) return 'invalid';
    const age = this.now() - parseInt(parts[0]!, 36);
    return age >= 0 && age <= NONCE_TTL_MS ? 'ok' : 'stale';
  }

  /** WWW-Authenticate values, MD5 first: most trunk equipment (and SIPp) reads only the first. */
  async challenge(stale = false): Promise<string[]> {
    const nonce = await this.nonce();
    const s = stale ? ', stale=true' : '';
    return (['MD5', 'SHA-256'] as const).map((a) => `Digest realm="${this.realm}", nonce="${nonce}", algorithm=${a}, qop="auth"${s}`);
  }

  /**
   * Checks credentials against the stored HA1 (the caller looked the trunk up
   * by username) and the request they came with: 'replay' for an nc not above
   * the nonce's last one (answer with a fresh challenge).
   */
  async verify(method: string, requestUri: string, c: DigestCredentials, ha1: string | null): Promise<DigestVerdict> {
    // RFC 7616 §3.4: qop=auth makes the client's nc and cnonce part of the hash; without it a response replays freely.
    const nc = c.nc && /^[0-9a-fA-F]{8}$/.test(c.nc) ? parseInt(c.nc, 16) : 0;
    const shaped = c.realm === this.realm && c.qop === 'auth' && !!c.cnonce && nc > 0 && c.uri === requestUri;
    // Hashed even for an unknown username, so timing does not tell which usernames exist.
    const expected = digestResponse(c.algorithm, ha1 ?? UNKNOWN_USER_HA1, method, c);
    const match = expected.length === c.response.length && crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(c.response));
    if (!ha1 || !shaped || !match) return 'invalid';
    const n = await this.checkNonce(c.nonce);
    if (n !== 'ok') return n;
    return (await this.useNc(c.nonce, nc)) ? 'ok' : 'replay';
  }

  /** Records nc for the nonce; false when it does not increase (here, or on another node for this exact nc). */
  private async useNc(nonce: string, nc: number): Promise<boolean> {
    const last = this.ncs.get(nonce);
    if (last === undefined && parseInt(nonce.split('.')[0]!, 36) <= this.forgottenBefore) return false;
    if (last !== undefined && nc <= last) return false;
    this.ncs.delete(nonce);
    this.ncs.set(nonce, nc);
    while (this.ncs.size > this.maxTracked) {
      const oldest = this.ncs.keys().next().value!;
      this.ncs.delete(oldest);
      this.forgottenBefore = Math.max(this.forgottenBefore, parseInt(oldest.split('.')[0]!, 36));
    }
    if (this.o.claimOnce && !(await this.o.claimOnce(`sipnc:${nonce}:${nc}`, NONCE_TTL_MS + 60_000))) return false;
    return true;
  }

  /** Nonces this node tracks (tests, metrics). */
  get trackedNonces(): number {
    return this.ncs.size;
  }
}

/**
 * Our side of a carrier's challenge (outbound calls, sip/uac.ts): sip.js's
 * digest answers MD5 only; this answers `algorithm=MD5` or `SHA-256` (RFC
 * 8760), with `qop=auth` when offered (else the RFC 2069 form). sip.js keeps
 * the first challenge of a 401/407; `auth-int` only challenges are refused.
 */
export class ClientDigest {
  private alg: DigestAlgorithm = 'MD5';
  private realm = '';
  private nonce = '';
  private opaque: string | undefined;
  private qop: 'auth' | undefined;
  private uri = '';
  private cnonce = '';
  private nc = 0;
  private response = '';

  constructor(private readonly username: string, private readonly password: string) {}

  /** sip.js's UAC calls this with the request and the parsed challenge; false refuses to answer it. */
  authenticate(request: { method: string; ruri: unknown }, challenge: { algorithm?: string; realm?: string; nonce?: string; opaque?: string; qop?: string | string[] }): boolean {
    const alg = (challenge.algorithm ?? 'MD5').toUpperCase();
    if (alg !== 'MD5' && alg !== 'SHA-256') return false;
    if (!challenge.realm || !challenge.nonce) return false;
    // sip.js's grammar gives qop as a list; a string is read as one too.
    const qops = (Array.isArray(challenge.qop) ? challenge.qop : String(challenge.qop ?? '').split(',')).map((q) => String(q).trim().toLowerCase()).filter(Boolean);
    if (qops.length && !qops.includes('auth')) return false;
    this.alg = alg;
    this.realm = challenge.realm;
    this.nonce = challenge.nonce;
    this.opaque = challenge.opaque;
    this.qop = qops.length ? 'auth' : undefined;
    this.uri = String(request.ruri);
    this.cnonce = crypto.randomBytes(12).toString('hex');
    this.nc = (this.nc % 0xffffffff) + 1;
    const ha1 = hash(alg, `${this.username}:${this.realm}:${this.password}`);
    this.response = digestResponse(alg, ha1, request.method, { nonce: this.nonce, uri: this.uri, qop: this.qop ?? null, nc: this.ncHex, cnonce: this.cnonce });
    return true;
  }

  private get ncHex(): string {
    return this.nc.toString(16).padStart(8, '0');
  }

  /** The Authorization / Proxy-Authorization value. */
  toString(): string {
    const q = (v: string) => `"${v.replace(/["\\]/g, '')}"`;
    const parts = [`username=${q(this.username)}`, `realm=${q(this.realm)}`, `nonce=${q(this.nonce)}`, `uri=${q(this.uri)}`, `response=${q(this.response)}`, `algorithm=${this.alg}`];
    if (this.opaque !== undefined) parts.push(`opaque=${q(this.opaque)}`);
    if (this.qop) parts.push(`qop=${this.qop}`, `cnonce=${q(this.cnonce)}`, `nc=${this.ncHex}`);
    return `Digest ${parts.join(', ')}`;
  }
}
