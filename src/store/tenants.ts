// Tenants and API keys. Keys are shown once and stored only as SHA-256
// hashes, with their public first characters (prefix) to recognise them.
// Authentication is served from a bounded LRU of valid keys; a revocation
// drops the key from every node's LRU at once (SharedState publish/subscribe),
// and last use is written in batches, at most once a minute per key.
import type pg from 'pg';
import type { Database } from './db.js';
import type { SharedState } from './state.js';
import { audit } from './audit.js';
import { decodeCursor, encodeCursor, hashKey, iso, isoOrNull, newApiKey, newId } from './ids.js';
import { InvalidError, NotFoundError } from './errors.js';
import { Lru } from './lru.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import { TENANT_SCOPES, type ApiKeyInfo, type Page, type Principal, type Scope, type Tenant, type TenantOutbound } from './types.js';

/** The message prefix on SharedState's channel: `apikeys:revoke:<key id>`. */
const REVOKE = 'apikeys:revoke:';
/** `ayb_` and 8 random characters (48 bits of the key's 256): enough to tell keys apart, useless to guess the rest. */
const PREFIX_CHARS = 12;
/** A cached key is re-read after this long even without a revocation message (a lost pub/sub message is bounded). */
const CACHE_TTL_MS = 60_000;
const LAST_USED_EVERY_MS = 60_000;
const FLUSH_AFTER_MS = 10_000;
/** Who changes keys when ADMIN_API_KEY changes (the audit log's actor). */
const STARTUP: Principal = { keyId: 'system', keyName: 'ADMIN_API_KEY at startup', tenantId: null, platformAdmin: true, scopes: [] };

interface CachedKey {
  p: Principal;
  until: number;
  /** When this node last queued a last_used_at write for the key. */
  markedAt: number;
}

export interface TenantsOptions {
  /** Valid keys kept in memory (LRU). */
  cacheSize?: number;
}

function toTenant(r: Record<string, unknown>): Tenant {
  return {
    id: r.id as string, name: r.name as string, maxConcurrentCalls: (r.max_concurrent_calls as number | null) ?? null,
    outbound: { allowedCountries: (r.outbound_allowed_countries as string[] | undefined) ?? [], dailyCap: (r.outbound_daily_cap as number | undefined) ?? 1000 },
    recordingRetentionDays: (r.recording_retention_days as number | null | undefined) ?? null,
    createdAt: iso(r.created_at),
  };
}

/** PATCH /v1/tenants/{id}: the fields a platform admin may change. */
export interface TenantPatch {
  name?: string;
  maxConcurrentCalls?: number | null;
  outbound?: Partial<TenantOutbound>;
  /** 0: recordings kept until deleted. */
  recordingRetentionDays?: number;
}

function toKeyInfo(r: Record<string, unknown>): ApiKeyInfo {
  return {
    id: r.id as string,
    tenantId: (r.tenant_id as string | null) ?? null,
    name: r.name as string,
    scopes: r.scopes as Scope[],
    prefix: (r.key_prefix as string | null) ?? null,
    platformAdmin: r.platform_admin as boolean,
    createdAt: iso(r.created_at),
    lastUsedAt: isoOrNull(r.last_used_at),
  };
}

export class Tenants {
  private readonly cache: Lru<string, CachedKey>;
  /** Bumped by every revocation: a lookup that raced with one is not cached. */
  private generation = 0;
  private readonly pendingUse = new Map<string, Date>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** Database lookups for authentication (cache misses), for tests and diagnostics. */
  lookups = 0;

  constructor(private readonly db: Database, private readonly state?: SharedState, opts: TenantsOptions = {}) {
    this.cache = new Lru(opts.cacheSize ?? 10_000);
    state?.subscribe((m) => {
      if (m.startsWith(REVOKE)) this.forget(m.slice(REVOKE.length));
    });
  }

  /** Keys held in memory now (bounded by cacheSize). */
  get cachedKeys(): number {
    return this.cache.size;
  }

  /**
   * Makes ADMIN_API_KEY a platform-admin key. When the value changed since the
   * last start, the previous platform-admin key is revoked (on every node). A
   * value that was revoked stays revoked: it is refused, with an error logged.
   */
  async ensureAdminKey(key: string): Promise<void> {
    const h = hashKey(key);
    const revoked = await this.db.tx(async (c) => {
      // Nodes starting together must not each insert a key and revoke the other's.
      await c.query('lock table api_keys in share row exclusive mode');
      const rows = (await c.query('select id, key_hash, revoked_at from api_keys where platform_admin')).rows as { id: string; key_hash: string; revoked_at: unknown }[];
      const same = rows.find((r) => r.key_hash === h);
      if (same?.revoked_at) {
        log.error('ADMIN_API_KEY is a revoked key and stays revoked: set a new value');
        return [];
      }
      if (!same) {
        const id = newId('key');
        await c.query(
          `insert into api_keys (id, tenant_id, name, key_hash, scopes, platform_admin) values ($1, null, 'ADMIN_API_KEY', $2, $3, true)`,
          [id, h, [...TENANT_SCOPES]],
        );
        await audit(c, STARTUP, null, 'api_key.create', 'api_key', id, undefined, { id, name: 'ADMIN_API_KEY', platformAdmin: true });
      }
      const old = (await c.query('update api_keys set revoked_at = now() where platform_admin and key_hash <> $1 and revoked_at is null returning id', [h])).rows as { id: string }[];
      for (const r of old) await audit(c, STARTUP, null, 'api_key.revoke', 'api_key', r.id, { id: r.id, name: 'ADMIN_API_KEY', platformAdmin: true }, undefined);
      return old.map((r) => r.id);
    });
    for (const id of revoked) {
      log.warn('ADMIN_API_KEY changed: the previous platform-admin key is revoked', { keyId: id });
      await this.announceRevoked(id);
    }
  }

  /** The principal for a key held in memory (no database access), or undefined. */
  cached(key: string): Principal | undefined {
    const e = this.cache.get(hashKey(key));
    if (!e) return undefined;
    const now = Date.now();
    if (e.until <= now) return undefined; // kept, as known(), until lookup() re-reads it
    this.markUsed(e, now);
    return e.p;
  }

  /** True for a key this node found valid before (its cached copy may be due for a re-read). */
  known(key: string): boolean {
    return this.cache.get(hashKey(key)) !== undefined;
  }

  /** Looks the key up in the database (a valid key is then kept in memory). */
  async lookup(key: string): Promise<Principal | null> {
    const h = hashKey(key);
    const gen = this.generation;
    this.lookups++;
    const r = (
      await this.db.pool.query('select id, name, tenant_id, scopes, platform_admin from api_keys where key_hash = $1 and revoked_at is null', [h])
    ).rows[0];
    if (!r) {
      this.cache.delete(h);
      return null;
    }
    const p: Principal = { keyId: r.id, keyName: r.name, tenantId: r.tenant_id, platformAdmin: r.platform_admin, scopes: r.scopes as Scope[] };
    const now = Date.now();
    const e: CachedKey = { p, until: now + CACHE_TTL_MS, markedAt: 0 };
    // A revocation that raced with this read must not be undone by caching it.
    if (gen === this.generation) this.cache.set(h, e);
    this.markUsed(e, now);
    return p;
  }

  async authenticate(key: string): Promise<Principal | null> {
    return this.cached(key) ?? (await this.lookup(key));
  }

  async create(who: Principal, name: string, maxConcurrentCalls: number | null, outbound: Partial<TenantOutbound> = {}): Promise<Tenant> {
    return this.db.tx(async (c) => {
      const id = newId('ten');
      const r = (
        await c.query(
          'insert into tenants (id, name, max_concurrent_calls, outbound_allowed_countries, outbound_daily_cap) values ($1,$2,$3,$4,$5) returning *',
          [id, name, maxConcurrentCalls, outbound.allowedCountries ?? [], outbound.dailyCap ?? 1000],
        )
      ).rows[0];
      const t = toTenant(r);
      await audit(c, who, id, 'tenant.create', 'tenant', id, undefined, t);
      return t;
    });
  }

  /** Changes a tenant (platform admin); audited with before and after. */
  async update(who: Principal, id: string, patch: TenantPatch): Promise<Tenant> {
    return this.db.tx(async (c) => {
      const row = (await c.query('select * from tenants where id = $1 for update', [id])).rows[0];
      if (!row) throw new NotFoundError('tenant');
      const before = toTenant(row);
      const r = (
        await c.query(
          `update tenants set name = $2, max_concurrent_calls = $3, outbound_allowed_countries = $4, outbound_daily_cap = $5 where id = $1 returning *`,
          [
            id, patch.name ?? before.name, patch.maxConcurrentCalls === undefined ? before.maxConcurrentCalls : patch.maxConcurrentCalls,
            patch.outbound?.allowedCountries ?? before.outbound.allowedCountries, patch.outbound?.dailyCap ?? before.outbound.dailyCap,
          ],
        )
      ).rows[0];
      let after = toTenant(r);
      if (patch.recordingRetentionDays !== undefined) {
        const days = patch.recordingRetentionDays || null;
        after = toTenant((await c.query('update tenants set recording_retention_days = $2 where id = $1 returning *', [id, days])).rows[0]);
      }
      await audit(c, who, id, 'tenant.update', 'tenant', id, before, after);
      return after;
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
  ): Promise<{ id: string; key: string; tenantId: string; name: string; scopes: Scope[]; prefix: string }> {
    return this.db.tx(async (c: pg.PoolClient) => {
      const t = (await c.query('select id from tenants where id = $1', [tenantId])).rows[0];
      if (!t) throw new NotFoundError('tenant');
      if (scopes.length === 0) throw new InvalidError('scopes', 'must not be empty');
      const id = newId('key');
      const key = newApiKey();
      const prefix = key.slice(0, PREFIX_CHARS);
      await c.query('insert into api_keys (id, tenant_id, name, key_hash, scopes, key_prefix) values ($1,$2,$3,$4,$5,$6)', [id, tenantId, name, hashKey(key), scopes, prefix]);
      await audit(c, who, tenantId, 'api_key.create', 'api_key', id, undefined, { id, tenantId, name, scopes, prefix });
      return { id, key, tenantId, name, scopes, prefix };
    });
  }

  /** Keys not revoked, newest first; `tenantId` null lists every tenant's (platform admin). */
  async listKeys(tenantId: string | null, limit: number, cursor?: string): Promise<Page<ApiKeyInfo>> {
    const params: unknown[] = [];
    const where = ['revoked_at is null'];
    if (tenantId !== null) {
      params.push(tenantId);
      where.push(`tenant_id = $${params.length}`);
    }
    if (cursor) {
      const c = decodeCursor(cursor);
      if (!c) throw new InvalidError('cursor', 'is not a cursor this API returned');
      params.push(c[0], c[1]);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(limit + 1);
    const rows = (
      await this.db.pool.query(
        `select id, tenant_id, name, scopes, key_prefix, platform_admin, created_at, last_used_at from api_keys
          where ${where.join(' and ')} order by created_at desc, id desc limit $${params.length}`,
        params,
      )
    ).rows;
    const last = rows[limit - 1];
    return { items: rows.slice(0, limit).map(toKeyInfo), nextCursor: rows.length > limit && last ? encodeCursor(iso(last.created_at), last.id) : null };
  }

  /**
   * Revokes a key at once on every node; `tenantId` limits it to that
   * tenant's keys (another tenant's, or a revoked one, reads as not found).
   */
  async revokeKey(who: Principal, tenantId: string | null, id: string): Promise<void> {
    await this.db.tx(async (c) => {
      const r = (
        await c.query(
          `update api_keys set revoked_at = now() where id = $1 and revoked_at is null and ($2::text is null or tenant_id = $2)
           returning id, tenant_id, name, scopes, key_prefix, platform_admin`,
          [id, tenantId],
        )
      ).rows[0];
      if (!r) throw new NotFoundError('api key');
      await audit(c, who, r.tenant_id, 'api_key.revoke', 'api_key', id, { id, tenantId: r.tenant_id, name: r.name, scopes: r.scopes, prefix: r.key_prefix }, undefined);
    });
    await this.announceRevoked(id);
  }

  /** Writes queued last-use times in one statement (also on close). */
  async flushLastUsed(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pendingUse.size === 0) return;
    const ids = [...this.pendingUse.keys()];
    const times = [...this.pendingUse.values()];
    this.pendingUse.clear();
    await this.db.pool.query(
      `update api_keys k set last_used_at = v.t
         from unnest($1::text[], $2::timestamptz[]) as v(id, t)
        where k.id = v.id and (k.last_used_at is null or k.last_used_at < v.t)`,
      [ids, times],
    );
  }

  /** Flushes the last-use times still queued. */
  async close(): Promise<void> {
    try {
      await this.flushLastUsed();
    } catch (err) {
      reportInternalError('store', err);
    }
  }

  /** Drops a key from this node's memory (this node's part of a revocation). */
  private forget(keyId: string): void {
    this.generation++;
    this.cache.deleteWhere((e) => e.p.keyId === keyId);
  }

  private async announceRevoked(keyId: string): Promise<void> {
    this.forget(keyId);
    if (!this.state) return;
    try {
      await this.state.publish(REVOKE + keyId);
    } catch (err) {
      // Revoked in the database; other nodes drop their copy within CACHE_TTL_MS.
      reportInternalError('store', err);
    }
  }

  private markUsed(e: CachedKey, now: number): void {
    if (now - e.markedAt < LAST_USED_EVERY_MS) return;
    e.markedAt = now;
    this.pendingUse.set(e.p.keyId, new Date(now));
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(guard('store', () => {
        this.flushTimer = null;
        return this.flushLastUsed();
      }), FLUSH_AFTER_MS);
      this.flushTimer.unref();
    }
  }
}
