// The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677; PostgreSQL's SASL
// messages) for the embedded database's socket server: every connection
// proves it knows the per-boot password before anything reaches PGlite.
// SCRAM rather than a cleartext password: the password never crosses the
// socket, and a proof seen once cannot be replayed (the server's nonce is new
// per connection). The salted password is derived once per boot, so a
// connection costs the server a few HMACs, not a PBKDF2 run.
// Reference: https://www.postgresql.org/docs/current/sasl-authentication.html
import crypto from 'node:crypto';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
const ITERATIONS = 4096;
/** Longest client nonce accepted (pg sends 24 base64 characters; libpq 24 too). */
const MAX_NONCE = 128;

const AUTH = 'R'.charCodeAt(0);
const SASL = 10;
const SASL_CONTINUE = 11;
const SASL_FINAL = 12;

/**
 * Why an authentication attempt failed: the closed set counted as
 * aybiza_bad_input_total{source="embedded_db"} reasons. auth_missing: the
 * client was asked for the password and went away without one (what `pg`
 * does when it has none).
 */
export type AuthFailure = 'auth_failed' | 'auth_protocol' | 'auth_timeout' | 'auth_missing';
export const AUTH_FAILURES: ReadonlySet<string> = new Set<AuthFailure>(['auth_failed', 'auth_protocol', 'auth_timeout', 'auth_missing']);

export class AuthError extends Error {
  readonly code = 'AYB_ERR_PG_AUTH';
  constructor(readonly reason: AuthFailure, message: string) {
    super(message);
  }
}

function authMessage(kind: number, data?: string): Buffer {
  const body = data === undefined ? Buffer.alloc(0) : Buffer.from(data, 'utf8');
  const out = Buffer.alloc(9 + body.length);
  out[0] = AUTH;
  out.writeInt32BE(8 + body.length, 1);
  out.writeInt32BE(kind, 5);
  body.copy(out, 9);
  return out;
}

/** AuthenticationSASL offering SCRAM-SHA-256 only (no -PLUS: no TLS on a loopback socket, so nothing to bind to). */
export const SASL_REQUEST = authMessage(SASL, `${SCRAM_MECHANISM}\0\0`);

const hmac = (key: Buffer, data: string) => crypto.createHmac('sha256', key).update(data, 'utf8').digest();
const sha256 = (data: Buffer) => crypto.createHash('sha256').update(data).digest();

/** What the server keeps of the password (PostgreSQL's stored verifier): salt, StoredKey, ServerKey. */
export class ScramVerifier {
  readonly salt = crypto.randomBytes(16);
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;

  constructor(password: string) {
    const salted = crypto.pbkdf2Sync(password, this.salt, ITERATIONS, 32, 'sha256');
    this.storedKey = sha256(hmac(salted, 'Client Key'));
    this.serverKey = hmac(salted, 'Server Key');
  }
}

/** The body of a 'p' message (type and length already checked by the caller). */
function saslInitial(msg: Buffer): string {
  const nul = msg.indexOf(0, 5);
  if (nul < 0 || msg.toString('latin1', 5, nul) !== SCRAM_MECHANISM) throw new AuthError('auth_protocol', 'not a SCRAM-SHA-256 initial response');
  if (msg.length < nul + 5) throw new AuthError('auth_protocol', 'short SASL initial response');
  const len = msg.readInt32BE(nul + 1);
  if (len !== msg.length - nul - 5) throw new AuthError('auth_protocol', 'SASL initial response length');
  return msg.toString('latin1', nul + 5);
}

/** One connection's SCRAM exchange: client-first → server-first, client-final → server-final (or failure). */
export class ScramExchange {
  private gs2 = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(private readonly v: ScramVerifier) {}

  /** SASLInitialResponse (client-first-message) → AuthenticationSASLContinue (server-first-message). */
  first(msg: Buffer): Buffer {
    const m = /^([ny]),,(n=[^,]*,r=([\x21-\x2b\x2d-\x7e]+))$/.exec(saslInitial(msg));
    if (!m || m[3]!.length > MAX_NONCE) throw new AuthError('auth_protocol', 'malformed SCRAM client-first-message');
    this.gs2 = `${m[1]},,`;
    this.clientFirstBare = m[2]!;
    this.nonce = m[3]! + crypto.randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.v.salt.toString('base64')},i=${ITERATIONS}`;
    return authMessage(SASL_CONTINUE, this.serverFirst);
  }

  /** SASLResponse (client-final-message) → AuthenticationSASLFinal (server-final-message); AuthError when the proof is wrong. */
  final(msg: Buffer): Buffer {
    const text = msg.toString('latin1', 5);
    const m = /^(c=([A-Za-z0-9+/=]*),r=([^,]*)),p=([A-Za-z0-9+/=]+)$/.exec(text);
    if (!m) throw new AuthError('auth_protocol', 'malformed SCRAM client-final-message');
    if (m[2] !== Buffer.from(this.gs2).toString('base64') || m[3] !== this.nonce) throw new AuthError('auth_failed', 'SCRAM channel binding or nonce mismatch');
    const proof = Buffer.from(m[4]!, 'base64');
    if (proof.length !== 32) throw new AuthError('auth_failed', 'SCRAM proof length');
    const auth = `${this.clientFirstBare},${this.serverFirst},${m[1]}`;
    const signature = hmac(this.v.storedKey, auth);
    for (let i = 0; i < 32; i++) proof[i] = proof[i]! ^ signature[i]!;
    // proof ^ ClientSignature is the ClientKey; its hash must be the StoredKey (both 32-byte digests: constant time).
    if (!crypto.timingSafeEqual(sha256(proof), this.v.storedKey)) throw new AuthError('auth_failed', 'wrong password');
    return authMessage(SASL_FINAL, `v=${hmac(this.v.serverKey, auth).toString('base64')}`);
  }
}

/** Longest password message accepted (a SCRAM client-final-message is about 110 bytes). */
const MAX_PASSWORD_MESSAGE = 1024;
const PASSWORD_MESSAGE = 'p'.charCodeAt(0);

/** The password message ('p') at the start of buf, or null until it is complete; anything else before authentication is refused. */
export function readPasswordMessage(buf: Buffer): Buffer | null {
  if (buf.length === 0) return null;
  if (buf[0] !== PASSWORD_MESSAGE) throw new AuthError('auth_protocol', `message type 0x${buf[0]!.toString(16)} before authentication`);
  if (buf.length < 5) return null;
  const len = buf.readInt32BE(1);
  if (len < 4 || len > MAX_PASSWORD_MESSAGE) throw new AuthError('auth_protocol', `password message length ${len}`);
  return buf.length > len ? buf.subarray(0, len + 1) : null;
}

/** ErrorResponse 28P01, as PostgreSQL sends it; nothing from the client is echoed. */
export const AUTH_FAILED_RESPONSE = (() => {
  const fields = Buffer.from('SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0', 'utf8');
  const out = Buffer.alloc(5 + fields.length);
  out[0] = 'E'.charCodeAt(0);
  out.writeInt32BE(4 + fields.length, 1);
  fields.copy(out, 5);
  return out;
})();
