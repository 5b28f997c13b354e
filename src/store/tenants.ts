// Tenants and API keys. Keys are shown once and stored only as SHA-256
// hashes; authentication looks the hash up (with a short in-process cache).
import type pg from 'pg';
import type { Database } from './db.js';
import { audit } from './audit.js';
import { hashKey, iso, newApiKey, newId } from './ids.js';
import { InvalidError, NotFoundError } from './errors.js';
import { TENANT_SCOPES, type Principal, type Scope, type Tenant } from './types.js';

const ADMIN_KEY_ID = 'key_admin_env';

function toTenant(r: Record<string, unknown>): Tenant {
  return { id: r.id as string, name: r.name as string, maxConcurrentCalls: (r.max_concurrent_calls as number | null) ?? null, createdAt: iso(r.created_at) };
}

export class Tenants {
  private cache = new Map<string, { p: Principal | null; until: number }>();

  constructor(private readonly db: Database) {}

  /** Makes ADMIN_API_KEY a platform-admin key (hash stored; replaced if the value changed). */
  async ensureAdminKey(key: string): Promise<void> {
    await this.db.pool.query(
      `insert into api_keys (id, tenant_id, name, key_hash, scopes, platform_admin)
       values ($1, null, 'ADMIN_API_KEY', $2, $3, true)
       on conflict (id) do update set key_hash = excluded.key_hash, revoked_at = null`,
      [ADMIN_KEY_ID, hashKey(key), [...TENANT_SCOPES]],
    );
    this.cache.clear();
  }

  async authenticate(key: string): Promise<Principal | null> {
    const h = hashKey(key);
    const now = Date.now();
    const hit = this.cache.get(h);
    if (hit && hit.until > now) return hit.p;
    const r = (
      await this.db.pool.query('select id, name, tenant_id, scopes, platform_admin from api_keys where key_hash = $1 and revoked_at is null', [h])
    ).rows[0];
    const p: Principal | null = r
      ? { keyId: r.id, keyName: r.name, tenantId: r.tenant_id, platformAdmin: r.platform_admin, scopes: r.scopes as Scope[] }
      : null;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(h, { p, until: now + 10_000 });
    return p;
  }

  async create(who: Principal, name: string, maxConcurrentCalls: number | null): Promise<Tenant> {
    return this.db.tx(async (c) => {
      const id = newId('ten');
      const r = (await c.query('insert into tenants (id, name, max_concurrent_calls) values ($1,$2,$3) returning *', [id, name, maxConcurrentCalls])).rows[0];
      const t = toTenant(r);
      await audit(c, who, id, 'tenant.create', 'tenant', id, undefined, t);
      return t;
    });
  }

  async get(id: string): Promise<Tenant | null> {
    const r = (await this.db.pool.query('select * from tenants where id = $1', [id])).rows[0];
    return r ? toTenant(r) : null;
  }

  async list(): Promise<Tenant[]> {
    return (await this.db.pool.query('select * from tenants order by created_at desc, id desc limit 1000')).rows.map(toTenant);
  }

  async createKey(
    who: Principal,
    tenantId: string,
    name: string,
    scopes: Scope[],
  ): Promise<{ id: string; key: string; tenantId: string; name: string; scopes: Scope[] }> {
    return this.db.tx(async (c: pg.PoolClient) => {
      const t = (await c.query('select id from tenants where id = $1', [tenantId])).rows[0];
      if (!t) throw new NotFoundError('tenant');
      if (scopes.length === 0) throw new InvalidError('scopes', 'must not be empty');
      const id = newId('key');
      const key = newApiKey();
      await c.query('insert into api_keys (id, tenant_id, name, key_hash, scopes) values ($1,$2,$3,$4,$5)', [id, tenantId, name, hashKey(key), scopes]);
      await audit(c, who, tenantId, 'api_key.create', 'api_key', id, undefined, { id, tenantId, name, scopes });
      return { id, key, tenantId, name, scopes };
    });
  }
}
