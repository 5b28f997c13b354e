// SIP trunks: which source addresses may send calls, and digest credentials
// stored only as HA1 hashes (MD5 and SHA-256 of username:realm:password), so
// the SIP server can check RFC 2617 / RFC 8760 digests without the password.
import crypto from 'node:crypto';
import net from 'node:net';
import type { Database } from './db.js';
import { audit } from './audit.js';
import { iso, newId } from './ids.js';
import { ConflictError, InvalidError, NotFoundError } from './errors.js';
import { tenantClause } from './page.js';
import type { Principal, SipTrunk, SipTrunkSecrets, TrunkDirectory } from './types.js';

export interface NewTrunk {
  name: string;
  allowedCidrs: string[];
  username?: string;
  password?: string;
  allowRefer?: boolean;
}

export function ha1(alg: 'md5' | 'sha256', username: string, realm: string, password: string): string {
  return crypto.createHash(alg).update(`${username}:${realm}:${password}`).digest('hex');
}

/** Normalises "10.0.0.0/8", "192.0.2.7" (→ /32), "2001:db8::/32"; throws InvalidError otherwise. */
export function normaliseCidr(value: string, index: number): string {
  const [addr, bits, extra] = value.trim().split('/');
  const family = net.isIP(addr ?? '');
  const max = family === 4 ? 32 : family === 6 ? 128 : 0;
  const n = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
  if (!family || extra !== undefined || n < 0 || n > max) {
    throw new InvalidError(`allowedCidrs[${index}]`, `${JSON.stringify(value)} is not an IP address or CIDR block`);
  }
  return `${addr}/${n}`;
}

function toTrunk(r: Record<string, unknown>): SipTrunk {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    name: r.name as string,
    allowedCidrs: (r.allowed_cidrs as string[]) ?? [],
    username: (r.username as string | null) ?? null,
    realm: r.realm as string,
    allowRefer: r.allow_refer as boolean,
    createdAt: iso(r.created_at),
  };
}

function toSecrets(r: Record<string, unknown>): SipTrunkSecrets {
  return { ...toTrunk(r), ha1Md5: (r.ha1_md5 as string | null) ?? null, ha1Sha256: (r.ha1_sha256 as string | null) ?? null };
}

/** pg returns cidr[] as a string like {10.0.0.0/8,192.0.2.7/32} on some servers. */
function parseCidrArray(v: unknown): string[] {
  if (Array.isArray(v)) return v as string[];
  if (typeof v === 'string') return v.replace(/^\{|\}$/g, '').split(',').filter(Boolean);
  return [];
}

export class Trunks implements TrunkDirectory {
  constructor(private readonly db: Database, private readonly realm: string) {}

  async create(who: Principal, tenantId: string, t: NewTrunk): Promise<SipTrunk> {
    const cidrs = t.allowedCidrs.map(normaliseCidr);
    if ((t.username === undefined) !== (t.password === undefined)) {
      throw new InvalidError(t.username === undefined ? 'username' : 'password', 'username and password go together');
    }
    if (cidrs.length === 0 && !t.username) throw new InvalidError('allowedCidrs', 'give allowed addresses, or a username and password');
    return this.db.tx(async (c) => {
      if (!(await c.query('select 1 from tenants where id = $1', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const id = newId('trk');
      try {
        const r = (
          await c.query(
            `insert into sip_trunks (id, tenant_id, name, allowed_cidrs, username, realm, ha1_md5, ha1_sha256, allow_refer)
             values ($1,$2,$3,$4::cidr[],$5,$6,$7,$8,$9) returning *`,
            [
              id, tenantId, t.name, cidrs, t.username ?? null, this.realm,
              t.username ? ha1('md5', t.username, this.realm, t.password!) : null,
              t.username ? ha1('sha256', t.username, this.realm, t.password!) : null,
              t.allowRefer ?? false,
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
  }

  private fix<T extends SipTrunk>(t: T): T {
    return { ...t, allowedCidrs: parseCidrArray(t.allowedCidrs) };
  }

  async get(tenantId: string | null, id: string): Promise<SipTrunk> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from sip_trunks where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('SIP trunk');
    return this.fix(toTrunk(r));
  }

  async list(tenantId: string | null): Promise<SipTrunk[]> {
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
  }

  async trunksForAddress(ip: string): Promise<SipTrunkSecrets[]> {
    if (!net.isIP(ip)) return [];
    const rows = (await this.db.pool.query('select * from sip_trunks where $1::inet <<= any(allowed_cidrs)', [ip])).rows;
    return rows.map((r) => this.fix(toSecrets(r)));
  }

  /** Whether any trunk has digest credentials (the SIP server then challenges unknown sources instead of refusing them). */
  async hasCredentialTrunks(): Promise<boolean> {
    return ((await this.db.pool.query('select 1 from sip_trunks where username is not null limit 1')).rowCount ?? 0) > 0;
  }

  async trunkForUsername(username: string): Promise<SipTrunkSecrets | null> {
    const r = (await this.db.pool.query('select * from sip_trunks where username = $1', [username])).rows[0];
    return r ? this.fix(toSecrets(r)) : null;
  }
}
