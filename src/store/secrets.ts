// Secrets at rest: field-level AES-256-GCM (node:crypto) for every secret the
// control plane stores (a tool's authHeader today; any provider or webhook
// secret goes through the same seal/open/mask). Secrets never leave the
// server: the API and the audit log see mask() of them, the call path gets
// the plaintext in memory only.
//
// Sealed form:  enc:v1:<keyId>:<iv>:<ciphertext>:<tag>   (base64url parts)
//   keyId   first 12 hex of SHA-256 over the key, so every node holding the
//           same key derives the same id and old ciphertexts name their key;
//   iv      96 random bits per seal;
//   AAD     "<context>" (e.g. "tenant:ten_…"), so a ciphertext copied into
//           another tenant's row does not open there.
//
// Keys: AYBIZA_ENCRYPTION_KEY seals and opens; AYBIZA_ENCRYPTION_KEYS_OLD
// (comma-separated) open only. Without AYBIZA_ENCRYPTION_KEY a key is
// generated once into DATA_DIR/encryption.key (mode 0600) with a warning
// (production refuses to start without the variable, see src/config.ts); a
// key file left there after the variable is set keeps opening what it sealed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { log } from '../log.js';
import { parseKey32 } from '../config.js';

export const SEALED_PREFIX = 'enc:v1:';
export const MASK = '****';
const KEY_FILE = 'encryption.key';

/** A sealed value that no configured key opens, or that was tampered with. */
export class SecretError extends Error {
  readonly code = 'AYB_ERR_SECRET';
  constructor(message: string) {
    super(message);
    this.name = 'SecretError';
  }
}

export function keyId(key: Buffer): string {
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 12);
}

export function isSealed(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(SEALED_PREFIX);
}

/** The key id a sealed value names (null if it is not sealed). */
export function sealedKeyId(v: string): string | null {
  return isSealed(v) ? v.slice(SEALED_PREFIX.length).split(':')[0] : null;
}

/**
 * What the API and the audit log show of a secret: "****" and its last 4
 * characters, or "****" alone for a secret under 12 characters (where 4
 * would give away a third of it).
 */
export function mask(plain: string): string {
  return plain.length >= 12 ? MASK + plain.slice(-4) : MASK;
}

/** Whether a value a client sent is a mask (sent back unchanged from a GET). */
export function isMask(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(MASK) && v.length <= MASK.length + 4;
}

export interface KeyringOptions {
  /** AYBIZA_ENCRYPTION_KEY. */
  key?: Buffer;
  /** AYBIZA_ENCRYPTION_KEYS_OLD: open only. */
  oldKeys?: Buffer[];
  /** Where the development key is generated (and looked for). */
  dataDir: string;
}

export class Keyring {
  readonly currentId: string;
  private readonly current: Buffer;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, old: Buffer[] = []) {
    if (current.length !== 32) throw new SecretError('an AES-256 key is 32 bytes');
    this.current = current;
    this.currentId = keyId(current);
    this.keys.set(this.currentId, current);
    for (const k of old) if (k.length === 32) this.keys.set(keyId(k), k);
  }

  /** The configured key, else the one in DATA_DIR (generated there on first start). */
  static load(o: KeyringOptions): Keyring {
    const file = path.join(o.dataDir, KEY_FILE);
    const fromFile = readKeyFile(file);
    if (o.key) return new Keyring(o.key, [...(o.oldKeys ?? []), ...(fromFile ? [fromFile] : [])]);
    if (fromFile) {
      log.warn('AYBIZA_ENCRYPTION_KEY is not set: secrets are sealed with the key generated in DATA_DIR; set the variable (same key on every node) before production', { file });
      return new Keyring(fromFile, o.oldKeys);
    }
    const key = crypto.randomBytes(32);
    fs.mkdirSync(o.dataDir, { recursive: true });
    // wx: two processes starting on one DATA_DIR must not both write a key.
    try {
      fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return Keyring.load(o);
      throw err;
    }
    log.warn('AYBIZA_ENCRYPTION_KEY is not set: generated an encryption key into DATA_DIR; keep it with the data, and set the variable before production', { file });
    return new Keyring(key, o.oldKeys);
  }

  // Keys never reach a log line or a JSON answer, even by accident.
  toJSON(): string {
    return `Keyring(${this.currentId})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toJSON();
  }

  /** Whether the value is sealed under a key other than the current one (a rotation leftover). */
  needsReseal(v: string): boolean {
    return !isSealed(v) || sealedKeyId(v) !== this.currentId;
  }

  canOpen(v: string): boolean {
    const id = sealedKeyId(v);
    return id !== null && this.keys.has(id);
  }

  seal(plain: string, context: string): string {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', this.current, iv);
    c.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `${SEALED_PREFIX}${this.currentId}:${iv.toString('base64url')}:${ct.toString('base64url')}:${c.getAuthTag().toString('base64url')}`;
  }

  /** The plaintext of a sealed value; throws SecretError for an unknown key, a wrong context or tampering. */
  open(sealed: string, context: string): string {
    if (!isSealed(sealed)) throw new SecretError('not a sealed value');
    const [id, iv, ct, tag, extra] = sealed.slice(SEALED_PREFIX.length).split(':');
    const key = this.keys.get(id);
    if (!key) throw new SecretError(`sealed with key ${id}, which is not configured (add it to AYBIZA_ENCRYPTION_KEYS_OLD)`);
    if (iv === undefined || ct === undefined || tag === undefined || extra !== undefined) throw new SecretError('malformed sealed value');
    try {
      const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      d.setAAD(Buffer.from(context, 'utf8'));
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new SecretError(`sealed value does not authenticate under key ${id}`);
    }
  }

  /** The plaintext of a stored value: sealed, or plaintext written before encryption existed. */
  reveal(stored: string, context: string): string {
    return isSealed(stored) ? this.open(stored, context) : stored;
  }

  /** The mask of a stored value; "****" alone when it cannot be opened (the API must still answer). */
  maskStored(stored: string, context: string): string {
    try {
      return mask(this.reveal(stored, context));
    } catch {
      return MASK;
    }
  }
}

function readKeyFile(file: string): Buffer | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseKey32(file, raw);
}
