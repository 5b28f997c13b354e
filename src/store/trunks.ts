// SIP trunks: which source addresses may send calls, and digest credentials
// stored only as HA1 hashes (MD5 and SHA-256 of username:realm:password), so
// the SIP server can check RFC 2617 / RFC 8760 digests without the password.
// The SIP path reads trunks from an in-memory index (CIDRs parsed once, users
// by name), so an INVITE flood from an unknown source never reaches the
// database; any change drops the index on every node through SharedState
// pub/sub (and it is reloaded at most every INDEX_TTL_MS as a safety net for
// a missed message).
import crypto from 'node:crypto';
import net from 'node:net';
import { guard } from '../guard.js';
import { log } from '../log.js';
import type { Database } from './db.js';
import type { SharedState } from './state.js';
import { audit } from './audit.js';
import { iso, newId } from './ids.js';
import { ConflictError, InvalidError, NotFoundError } from './errors.js';
import { tenantClause } from './page.js';
import type { Principal, SipTrunk, SipTrunkSecrets, TrunkDirectory } from './types.js';
import { isMask, type Keyring } from './secrets.js';
import { checkOutbound, type TrunkOutbound } from './trunk-outbound.js';

export interface NewTrunk {
  name: string;
  allowedCidrs: string[];
  username?: string;
  password?: string;
  allowRefer?: boolean;
  /** Lets allowedCidrs hold blocks broader than /8 (IPv4) or /32 (IPv6); /0 is refused always. */
  allowBroadCidr?: boolean;
  /** Where calls placed through this trunk go (src/store/trunk-outbound.ts). */
  outbound?: TrunkOutbound;
}

export type TrunkPatch = Partial<Omit<NewTrunk, 'username' | 'password'>> & { username?: string | null; password?: string };

/** A trunk as the API shows it (the outbound password masked). */
export type TrunkView = SipTrunk & { allowBroadCidr: boolean; outbound: TrunkOutbound | null };

const INVALIDATE = 'sip_trunks:invalidate';
const INDEX_TTL_MS = 60_000;
/** After a failed refresh, the next attempt (not one per INVITE). */
const RETRY_MS = 5_000;
/** Blocks broader than these need allowBroadCidr (a shared carrier block is /16../30; /8 is already a whole provider). */
const BROADEST = { 4: 8, 6: 32 } as const;

export function ha1(alg: 'md5' | 'sha256', username: string, realm: string, password: string): string {
  return crypto.createHash(alg).update(`${username}:${realm}:${password}`).digest('hex');
}

/** An address as a family and a number (IPv4-mapped IPv6 counts as IPv4); null if it is not an IP address. */
export function parseIp(input: string): { family: 4 | 6; value: bigint } | null {
  let ip = input.trim();
  const zone = ip.indexOf('%');
  if (zone >= 0) ip = ip.slice(0, zone);
  const family = net.isIP(ip);
  if (family === 4) return { family: 4, value: v4(ip) };
  if (family !== 6) return null;
  const value = v6(ip);
  // ::ffff:a.b.c.d (in any spelling) is an IPv4 peer on a dual-stack socket.
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

function v4(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6(ip: string): bigint {
  // A trailing dotted quad is two groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip)?.[1];
  if (tail) {
    const n = v4(tail);
    ip = ip.slice(0, -tail.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, rest] = ip.split('::') as [string, string | undefined];
  const a = head ? head.split(':') : [];
  const b = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

interface Block {
  family: 4 | 6;
  network: bigint;
  mask: bigint;
}

function toBlock(cidr: string): Block | null {
  const [addr, bits] = cidr.split('/');
  const ip = parseIp(addr ?? '');
  if (!ip) return null;
  const width = ip.family === 4 ? 32 : 128;
  // An IPv4-mapped block written in IPv6 form counts as its IPv4 block.
  const n = Math.max(0, Number(bits ?? width) - (ip.family === 4 && addr!.includes(':') ? 96 : 0));
  const mask = n === 0 ? 0n : ((1n << BigInt(n)) - 1n) << BigInt(width - n);
  return { family: ip.family, network: ip.value & mask, mask };
}

/** Whether the address falls in the block (same family only, as PostgreSQL's inet <<= cidr). */
export function cidrContains(block: Block, ip: { family: 4 | 6; value: bigint }): boolean {
  return block.family === ip.family && (ip.value & block.mask) === block.network;
}

/**
 * Normalises "10.0.0.0/8", "192.0.2.7" (→ /32), "2001:db8::/32"; throws
 * InvalidError naming allowedCidrs[index] otherwise: not an address, host bits
 * set, IPv4-mapped IPv6 (write IPv4), /0 (the whole internet, refused always),
 * or broader than /8 (IPv4) or /32 (IPv6) without allowBroadCidr.
 */
export function normaliseCidr(value: string, index: number, allowBroad = false): string {
  const field = `allowedCidrs[${index}]`;
  const [addr, bits, extra] = value.trim().split('/');
  const family = net.isIP(addr ?? '');
  const max = family === 4 ? 32 : family === 6 ? 128 : 0;
  const n = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
  if (!family || extra !== undefined || n < 0 || n > max) {
    throw new InvalidError(field, `${JSON.stringify(value)} is not an IP address or CIDR block`);
  }
  if (family === 6 && parseIp(addr!)!.family === 4) {
    throw new InvalidError(field, `${JSON.stringify(value)} is an IPv4-mapped IPv6 block: write it as IPv4`);
  }
  if (n === 0) throw new InvalidError(field, `${JSON.stringify(value)} admits every address on the internet`);
  const broadest = BROADEST[family as 4 | 6];
  if (n < broadest && !allowBroad) {
    throw new InvalidError(field, `${JSON.stringify(value)} is broader than /${broadest}: set "allowBroadCidr": true on the trunk if that is intended`);
  }
  const block = toBlock(`${addr}/${n}`)!;
  if ((parseIp(addr!)!.value & ~block.mask & ((1n << BigInt(max)) - 1n)) !== 0n) {
    throw new InvalidError(field, `${JSON.stringify(value)} has bits set beyond the /${n} prefix (give the network address)`);
  }
  return `${addr}/${n}`;
}

/** The trunks as the SIP path reads them: by source address and by digest username, without a query. */
export class TrunkIndex {
  private readonly blocks: { trunk: SipTrunkSecrets; blocks: Block[] }[] = [];
  private readonly users = new Map<string, SipTrunkSecrets>();
  readonly anyCredentials: boolean;

  constructor(readonly trunks: SipTrunkSecrets[]) {
    for (const t of trunks) {
      const blocks = t.allowedCidrs.map(toBlock).filter((b): b is Block => b !== null);
      if (blocks.length) this.blocks.push({ trunk: t, blocks });
      if (t.username && t.ha1Md5) this.users.set(t.username, t);
    }
    this.anyCredentials = this.users.size > 0;
  }

  /** Trunks (of any tenant) whose allowedCidrs contain the address. */
  forAddress(address: string): SipTrunkSecrets[] {
    const ip = parseIp(address);
    if (!ip) return [];
    return this.blocks.filter((e) => e.blocks.some((b) => cidrContains(b, ip))).map((e) => e.trunk);
  }

  forUsername(username: string): SipTrunkSecrets | null {
    return this.users.get(username) ?? null;
  }

}

function toTrunk(r: Record<string, unknown>): TrunkView {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    name: r.name as string,
    allowedCidrs: (r.allowed_cidrs as string[]) ?? [],
    username: (r.username as string | null) ?? null,
    realm: r.realm as string,
    allowRefer: r.allow_refer as boolean,
    allowBroadCidr: (r.allow_broad_cidr as boolean | undefined) ?? false,
    outbound: (r.outbound as TrunkOutbound | null | undefined) ?? null,
    createdAt: iso(r.created_at),
  };
}

/** The AAD of a trunk's sealed outbound password: it does not open in another tenant's row. */
const outboundContext = (tenantId: string) => `tenant:${tenantId}`;

function toSecrets(r: Record<string, unknown>): SipTrunkSecrets & { outbound: TrunkOutbound | null } {
  return { ...toTrunk(r), ha1Md5: (r.ha1_md5 as string | null) ?? null, ha1Sha256: (r.ha1_sha256 as string | null) ?? null };
}

/** pg returns cidr[] as a string like {10.0.0.0/8,192.0.2.7/32} on some servers. */
function parseCidrArray(v: unknown): string[] {
  if (Array.isArray(v)) return v as string[];
  if (typeof v === 'string') return v.replace(/^\{|\}$/g, '').split(',').filter(Boolean);
  return [];
}

export class Trunks implements TrunkDirectory {
  private cached: { index: TrunkIndex; at: number } | null = null;
  private loading: Promise<TrunkIndex> | null = null;
  private generation = 0;
  private nonceKeyP: Promise<Buffer> | null = null;

  constructor(private readonly db: Database, private readonly realm: string, private readonly state?: SharedState, private readonly keys?: Keyring) {
    state?.subscribe(guard('store', (m: string) => {
      if (m === INVALIDATE) this.clear();
    }));
  }

  async create(who: Principal, tenantId: string, t: NewTrunk): Promise<TrunkView> {
    const cidrs = t.allowedCidrs.map((v, i) => normaliseCidr(v, i, t.allowBroadCidr === true));
    if ((t.username === undefined) !== (t.password === undefined)) {
      throw new InvalidError(t.username === undefined ? 'username' : 'password', 'username and password go together');
    }
    if (cidrs.length === 0 && !t.username) throw new InvalidError('allowedCidrs', 'give allowed addresses, or a username and password');
    const outbound = t.outbound ? this.sealOutbound(tenantId, checkOutbound(t.outbound), null) : null;
    const out = await this.db.tx(async (c) => {
      if (!(await c.query('select 1 from tenants where id = $1', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const id = newId('trk');
      try {
        const r = (
          await c.query(
            `insert into sip_trunks (id, tenant_id, name, allowed_cidrs, username, realm, ha1_md5, ha1_sha256, allow_refer, allow_broad_cidr, outbound)
             values ($1,$2,$3,$4::cidr[],$5,$6,$7,$8,$9,$10,$11::jsonb) returning *`,
            [
              id, tenantId, t.name, cidrs, t.username ?? null, this.realm,
              t.username ? ha1('md5', t.username, this.realm, t.password!) : null,
              t.username ? ha1('sha256', t.username, this.realm, t.password!) : null,
              t.allowRefer ?? false, t.allowBroadCidr ?? false, outbound === null ? null : JSON.stringify(outbound),
            ],
          )
        ).rows[0];
        const out = this.fix(toTrunk(r));
        await audit(c, who, tenantId, 'sip_trunk.create', 'sip_trunk', id, undefined, out);
        return out;
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new ConflictError(`username ${t.username} is taken`);
        throw err;
      }
    });
    await this.changed();
    return out;
  }

  /** Changes a trunk; `username: null` removes its credentials, a username needs a password. */
  async update(who: Principal, tenantId: string | null, id: string, p: TrunkPatch): Promise<TrunkView> {
    if (p.username && p.password === undefined) throw new InvalidError('password', 'a new username needs its password');
    if (p.password !== undefined && p.username === undefined) throw new InvalidError('username', 'username and password go together');
    const out = await this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const r = (await c.query(`select * from sip_trunks where id = $1 and ${tenantClause(tenantId, params)} for update`, params)).rows[0];
      if (!r) throw new NotFoundError('SIP trunk');
      const before = this.fix(toTrunk(r));
      const allowBroad = p.allowBroadCidr ?? before.allowBroadCidr;
      // Existing blocks are checked again: turning allowBroadCidr off must not keep a broad block.
      const cidrs = (p.allowedCidrs ?? before.allowedCidrs).map((v, i) => normaliseCidr(v, i, allowBroad));
      const username = p.username === undefined ? before.username : p.username;
      if (cidrs.length === 0 && !username) throw new InvalidError('allowedCidrs', 'give allowed addresses, or a username and password');
      const outbound = p.outbound ? this.sealOutbound(r.tenant_id as string, checkOutbound(p.outbound), (r.outbound as TrunkOutbound | null) ?? null) : null;
      const creds = p.username === undefined ? null : p.username === null ? { u: null, md5: null, sha: null } : {
        u: p.username, md5: ha1('md5', p.username, this.realm, p.password!), sha: ha1('sha256', p.username, this.realm, p.password!),
      };
      try {
        const row = (
          await c.query(
            `update sip_trunks set name = $2, allowed_cidrs = $3::cidr[], allow_refer = $4, allow_broad_cidr = $5,
               username = case when $6 then $7 else username end, ha1_md5 = case when $6 then $8 else ha1_md5 end,
               ha1_sha256 = case when $6 then $9 else ha1_sha256 end, realm = case when $6 then $10 else realm end,
               outbound = case when $11 then $12::jsonb else outbound end
             where id = $1 returning *`,
            [
              id, p.name ?? before.name, cidrs, p.allowRefer ?? before.allowRefer, allowBroad, creds !== null, creds?.u ?? null, creds?.md5 ?? null, creds?.sha ?? null, this.realm,
              outbound !== null, outbound === null ? null : JSON.stringify(outbound),
            ],
          )
        ).rows[0];
        const after = this.fix(toTrunk(row));
        await audit(c, who, before.tenantId, 'sip_trunk.update', 'sip_trunk', id, before, after);
        return after;
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new ConflictError(`username ${p.username} is taken`);
        throw err;
      }
    });
    await this.changed();
    return out;
  }

  private fix<T extends SipTrunk & { outbound: TrunkOutbound | null }>(t: T): T {
    const o = t.outbound;
    // The password leaves only masked (API answers, audit log, the SIP index).
    const outbound = o?.password === undefined ? o : { ...o, password: this.keyring().maskStored(o.password, outboundContext(t.tenantId)) };
    return { ...t, allowedCidrs: parseCidrArray(t.allowedCidrs), outbound };
  }

  private keyring(): Keyring {
    if (!this.keys) throw new Error('trunk secrets need the keyring');
    return this.keys;
  }

  /**
   * Outbound settings as stored: the password sealed. A mask sent back (from
   * a GET) keeps the stored password.
   */
  private sealOutbound(tenantId: string, o: TrunkOutbound, stored: TrunkOutbound | null): TrunkOutbound {
    if (o.password === undefined) return o;
    const ctx = outboundContext(tenantId);
    if (isMask(o.password)) {
      if (stored?.password === undefined) throw new InvalidError('outbound.password', 'no stored password to keep: send the password itself');
      return { ...o, password: stored.password };
    }
    return { ...o, password: this.keyring().seal(o.password, ctx) };
  }

  /** A trunk's outbound settings with the password in plaintext, for placing a call (memory only); null: none. */
  async outboundFor(tenantId: string, id: string): Promise<(TrunkOutbound & { trunkId: string; allowRefer: boolean }) | null> {
    const r = (await this.db.pool.query('select outbound, allow_refer from sip_trunks where id = $1 and tenant_id = $2', [id, tenantId])).rows[0];
    if (!r) throw new NotFoundError('SIP trunk');
    const o = (r.outbound as TrunkOutbound | null) ?? null;
    if (!o) return null;
    const password = o.password === undefined ? {} : { password: this.keyring().reveal(o.password, outboundContext(tenantId)) };
    return { ...o, ...password, trunkId: id, allowRefer: r.allow_refer as boolean };
  }

  async get(tenantId: string | null, id: string): Promise<TrunkView> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from sip_trunks where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('SIP trunk');
    return this.fix(toTrunk(r));
  }

  async list(tenantId: string | null): Promise<TrunkView[]> {
    const params: unknown[] = [];
    const rows = (await this.db.pool.query(`select * from sip_trunks where ${tenantClause(tenantId, params)} order by created_at desc, id desc limit 1000`, params)).rows;
    return rows.map((r) => this.fix(toTrunk(r)));
  }

  async delete(who: Principal, tenantId: string | null, id: string): Promise<void> {
    await this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const r = (await c.query(`delete from sip_trunks where id = $1 and ${tenantClause(tenantId, params)} returning *`, params)).rows[0];
      if (!r) throw new NotFoundError('SIP trunk');
      await audit(c, who, r.tenant_id, 'sip_trunk.delete', 'sip_trunk', id, this.fix(toTrunk(r)), undefined);
    });
    await this.changed();
  }

  /**
   * Every trunk, indexed for the SIP path: loaded once (concurrent callers
   * share one query) and kept until a change on any node, or INDEX_TTL_MS.
   */
  async index(): Promise<TrunkIndex> {
    if (this.cached && Date.now() - this.cached.at < INDEX_TTL_MS) return this.cached.index;
    if (!this.loading) {
      const gen = this.generation;
      const stale = this.cached;
      const p = this.load().then(
        (index) => {
          // Not kept when an invalidation raced with the load.
          if (gen === this.generation) this.cached = { index, at: Date.now() };
          return index;
        },
        (err) => {
          // A periodic refresh that fails (database away) keeps serving what we had; a change still clears it.
          if (stale && gen === this.generation) {
            this.cached = { index: stale.index, at: Date.now() - INDEX_TTL_MS + RETRY_MS };
            return stale.index;
          }
          throw err;
        },
      );
      const clear = () => {
        if (this.loading === p) this.loading = null;
      };
      p.then(clear, clear);
      this.loading = p;
    }
    return this.loading;
  }

  private async load(): Promise<TrunkIndex> {
    const rows = (await this.db.pool.query('select * from sip_trunks')).rows;
    return new TrunkIndex(rows.map((r) => this.fix(toSecrets(r))));
  }

  /** Drops this node's index (on our own change, or another node's message). */
  clear(): void {
    this.generation++;
    this.cached = null;
    this.loading = null;
  }

  /** Drops the index here and tells every other node. A lost message is healed by INDEX_TTL_MS. */
  private async changed(): Promise<void> {
    this.clear();
    try {
      await this.state?.publish(INVALIDATE);
    } catch (err) {
      log.warn('could not publish SIP trunk invalidation', { err: (err as Error).message });
    }
  }

  async trunksForAddress(ip: string): Promise<SipTrunkSecrets[]> {
    return (await this.index()).forAddress(ip);
  }

  /** Whether any trunk has digest credentials (the SIP server then challenges unknown sources instead of refusing them). */
  async hasCredentialTrunks(): Promise<boolean> {
    return (await this.index()).anyCredentials;
  }

  async trunkForUsername(username: string): Promise<SipTrunkSecrets | null> {
    return (await this.index()).forUsername(username);
  }

  /**
   * The HMAC key for SIP digest nonces, the same on every node (so a challenge
   * from one node can be answered on another): created once by whichever node
   * comes first, then read. Loaded once per process.
   */
  nonceKey(): Promise<Buffer> {
    if (!this.nonceKeyP) {
      const p = (async () => {
        await this.db.pool.query('insert into shared_secrets (name, value) values ($1, $2) on conflict (name) do nothing', [
          'sip_digest_nonce', crypto.randomBytes(32).toString('base64'),
        ]);
        const r = (await this.db.pool.query('select value from shared_secrets where name = $1', ['sip_digest_nonce'])).rows[0];
        return Buffer.from(r.value as string, 'base64');
      })();
      // A failed load (database down) is retried by the next caller.
      p.catch(() => {
        if (this.nonceKeyP === p) this.nonceKeyP = null;
      });
      this.nonceKeyP = p;
    }
    return this.nonceKeyP;
  }
}
