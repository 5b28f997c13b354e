// Digest authentication for INVITEs from trunks with credentials (RFC 2617,
// RFC 7616, RFC 8760 for SIP): MD5 and SHA-256 with qop=auth, checked
// against the HA1 hashes the trunk store keeps (never the password). Nonces
// are stateless: a timestamp signed with a per-process key, so any retry
// within NONCE_TTL_MS is accepted without a nonce table.
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
  private readonly key = crypto.randomBytes(32);

  constructor(readonly realm: string, private readonly now: () => number = Date.now) {}

  nonce(): string {
    const t = this.now().toString(36);
    const salt = crypto.randomBytes(6).toString('hex');
    return `${t}.${salt}.${this.sign(`${t}.${salt}`)}`;
  }

  private sign(s: string): string {
    return crypto.createHmac('sha256', this.key).update(s).digest('base64url').slice(0, 22);
  }

  /** 'ok', 'stale' (a nonce of ours that expired) or 'invalid'. */
  checkNonce(nonce: string): 'ok' | 'stale' | 'invalid' {
    const parts = nonce.split('.');
    if (parts.length !== 3) return 'invalid';
    const expected = this.sign(`${parts[0]}.${parts[1]}`);
    if (expected.length !== parts[2]!.length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(parts[2]!))) return 'invalid';
    const age = this.now() - parseInt(parts[0]!, 36);
    return age >= 0 && age <= NONCE_TTL_MS ? 'ok' : 'stale';
  }

  /** WWW-Authenticate values, MD5 first: most trunk equipment (and SIPp) reads only the first. */
  challenge(stale = false): string[] {
    const nonce = this.nonce();
    const s = stale ? ', stale=true' : '';
    return (['MD5', 'SHA-256'] as const).map((a) => `Digest realm="${this.realm}", nonce="${nonce}", algorithm=${a}, qop="auth"${s}`);
  }

  /** Checks credentials against the stored HA1; the caller looked the trunk up by username. */
  verify(method: string, c: DigestCredentials, ha1: string | null): 'ok' | 'stale' | 'invalid' {
    if (!ha1 || c.realm !== this.realm) return 'invalid';
    if (c.qop !== null && c.qop !== 'auth') return 'invalid';
    const expected = digestResponse(c.algorithm, ha1, method, c);
    if (expected.length !== c.response.length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(c.response))) return 'invalid';
    return this.checkNonce(c.nonce);
  }
}
