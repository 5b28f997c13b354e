// Agents (immutable versions, blue/green or split deployments) and the phone
// numbers bound to them. Every change is audited in its own transaction and
// invalidates the call path's cache on every node. Tool auth headers are
// stored sealed (secrets.ts); whatever leaves this class (API answers, audit
// entries) carries only their masks.
import type pg from 'pg';
import type { Database } from './db.js';
import { audit } from './audit.js';
import { iso, newId } from './ids.js';
import { pageOf, tenantClause } from './page.js';

import { ConflictError, InvalidError, NotFoundError } from './errors.js';
import { isMask, isSealed, SEALED_PREFIX, type Keyring } from './secrets.js';
import { log } from '../log.js';
import type { Agent, AgentConfig, AgentVersion, Page, PhoneNumber, Principal, WebhookTool } from './types.js';

type Invalidate = () => Promise<void>;

/** The AAD of an agent's secrets: a sealed value copied into another tenant's agent does not open. */
export const secretContext = (tenantId: string) => `tenant:${tenantId}`;

/** A stored config with its secrets masked (what the API and the audit log see). */
export function maskConfig<T extends AgentConfig>(keys: Keyring, tenantId: string, c: T): T {
  if (!c.tools?.some((t) => t.authHeader !== undefined)) return c;
  return { ...c, tools: c.tools.map((t) => (t.authHeader === undefined ? t : { ...t, authHeader: keys.maskStored(t.authHeader, secretContext(tenantId)) })) };
}

/**
 * A stored config with its secrets in plaintext, for the call path (memory
 * only). A header that cannot be opened (its key is gone) is dropped and
 * logged: the tool is called without it rather than with ciphertext.
 */
export function revealConfig(keys: Keyring, tenantId: string, agentId: string, c: AgentConfig): AgentConfig {
  if (!c.tools?.some((t) => t.authHeader !== undefined)) return c;
  const tools = c.tools.map((t) => {
    if (t.authHeader === undefined) return t;
    try {
      return { ...t, authHeader: keys.reveal(t.authHeader, secretContext(tenantId)) };
    } catch (err) {
      log.error('tool authHeader cannot be decrypted; the tool is called without it', { agentId, tool: t.name, err: (err as Error).message });
      const { authHeader: _h, ...rest } = t;
      return rest;
    }
  });
  return { ...c, tools };
}

function toNumber(r: Record<string, unknown>): PhoneNumber {
  return { id: r.id as string, tenantId: r.tenant_id as string, number: r.number as string, agentId: r.agent_id as string, createdAt: iso(r.created_at) };
}

export class Agents {
  constructor(private readonly db: Database, private readonly invalidate: Invalidate, private readonly keys: Keyring) {}

  private present(a: Agent): Agent {
    return maskConfig(this.keys, a.tenantId, a);
  }

  /**
   * Incoming tools with their headers sealed. A mask sent back (from a GET)
   * keeps the stored secret of the tool with that name (else at that index)
   * when it is that secret's mask; any other mask is refused, since it would
   * store "****…" as the header.
   */
  private sealTools(tenantId: string, tools: WebhookTool[] | undefined, stored: WebhookTool[] = []): WebhookTool[] | undefined {
    if (!tools) return tools;
    const ctx = secretContext(tenantId);
    return tools.map((t, i) => {
      if (t.authHeader === undefined) return t;
      if (!isMask(t.authHeader)) return { ...t, authHeader: this.keys.seal(t.authHeader, ctx) };
      const candidates = [stored.find((s) => s.name === t.name), stored[i]];
      const keep = candidates.find((s) => s?.authHeader !== undefined && this.keys.maskStored(s.authHeader, ctx) === t.authHeader);
      if (!keep) throw new InvalidError(`tools[${i}].authHeader`, 'is a masked value that matches no stored header of this tool; send the full header');
      return { ...t, authHeader: keep.authHeader };
    });
  }

  private async load(c: pg.Pool | pg.PoolClient, tenantId: string | null, id: string, lock = false): Promise<Agent> {
    const params: unknown[] = [id];
    const r = (
      await c.query(
        `select a.*, d.live_version, d.canary_version, d.canary_percent,
                (select max(version) from agent_versions v where v.agent_id = a.id) as latest
           from agents a join deployments d on d.agent_id = a.id
          where a.id = $1 and ${tenantClause(tenantId, params, 'a.tenant_id')} ${lock ? 'for update of a' : ''}`,
        params,
      )
    ).rows[0];
    if (!r) throw new NotFoundError('agent');
    const v = (await c.query('select config from agent_versions where agent_id = $1 and version = $2', [id, r.latest])).rows[0];
    return {
      ...(v.config as AgentConfig),
      id: r.id,
      tenantId: r.tenant_id,
      version: r.latest,
      liveVersion: r.live_version,
      deployment: { liveVersion: r.live_version, canaryVersion: r.canary_version, canaryPercent: r.canary_percent },
      createdAt: iso(r.created_at),
      updatedAt: iso(r.updated_at),
    };
  }

  /**
   * At startup: seals headers stored in plaintext (before encryption existed)
   * and re-seals those under a previous key, so a retired key can be dropped
   * from AYBIZA_ENCRYPTION_KEYS_OLD once every node has restarted. A version
   * keeps its content; only the stored form of its secrets changes.
   */
  async resealSecrets(): Promise<{ resealed: number; unopened: number }> {
    const rows = (
      await this.db.pool.query(
        `select v.agent_id, v.version, v.config, a.tenant_id
           from agent_versions v join agents a on a.id = v.agent_id
          where exists (select 1 from jsonb_array_elements(case when jsonb_typeof(v.config->'tools') = 'array' then v.config->'tools' else '[]'::jsonb end) t
                         where t ? 'authHeader' and t->>'authHeader' not like $1)`,
        [`${SEALED_PREFIX}${this.keys.currentId}:%`],
      )
    ).rows;
    let resealed = 0;
    let unopened = 0;
    for (const r of rows) {
      const config = r.config as AgentConfig;
      const ctx = secretContext(r.tenant_id);
      let changed = false;
      const tools = (config.tools ?? []).map((t) => {
        if (typeof t.authHeader !== 'string' || !this.keys.needsReseal(t.authHeader)) return t;
        if (isSealed(t.authHeader) && !this.keys.canOpen(t.authHeader)) {
          unopened++;
          return t;
        }
        try {
          const authHeader = this.keys.seal(this.keys.reveal(t.authHeader, ctx), ctx);
          changed = true;
          resealed++;
          return { ...t, authHeader };
        } catch {
          unopened++;
          return t;
        }
      });
      if (changed) {
        await this.db.pool.query('update agent_versions set config = $3 where agent_id = $1 and version = $2', [r.agent_id, r.version, JSON.stringify({ ...config, tools })]);
      }
    }
    if (resealed) log.info('secrets sealed under the current encryption key', { resealed });
    if (unopened) log.warn('some stored secrets are sealed with a key that is not configured; add it to AYBIZA_ENCRYPTION_KEYS_OLD', { unopened });
    return { resealed, unopened };
  }

  async get(tenantId: string | null, id: string): Promise<Agent> {
    return this.present(await this.load(this.db.pool, tenantId, id));
  }

  async create(who: Principal, tenantId: string, input: AgentConfig): Promise<Agent> {
    const config: AgentConfig = input.tools ? { ...input, tools: this.sealTools(tenantId, input.tools) } : input;
    const agent = await this.db.tx(async (c) => {
      if (!(await c.query('select 1 from tenants where id = $1', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const id = newId('agt');
      await c.query('insert into agents (id, tenant_id, name) values ($1,$2,$3)', [id, tenantId, config.name]);
      await c.query('insert into agent_versions (agent_id, version, config, created_by) values ($1, 1, $2, $3)', [id, JSON.stringify(config), who.keyId]);
      await c.query('insert into deployments (agent_id, live_version) values ($1, 1)', [id]);
      const a = this.present(await this.load(c, tenantId, id));
      await audit(c, who, tenantId, 'agent.create', 'agent', id, undefined, a);
      return a;
    });
    return agent;
  }

  async patch(who: Principal, tenantId: string | null, id: string, change: Partial<AgentConfig>): Promise<Agent> {
    const agent = await this.db.tx(async (c) => {
      const before = await this.load(c, tenantId, id, true);
      const { id: _i, tenantId: _t, version, liveVersion: _l, deployment: _d, createdAt: _c, updatedAt: _u, ...config } = before;
      const next: AgentConfig = { ...config, ...change };
      if (change.tools) next.tools = this.sealTools(before.tenantId, change.tools, config.tools);
      await c.query('insert into agent_versions (agent_id, version, config, created_by) values ($1,$2,$3,$4)', [id, version + 1, JSON.stringify(next), who.keyId]);
      await c.query('update agents set name = $2, updated_at = now() where id = $1', [id, next.name]);
      const after = this.present(await this.load(c, tenantId, id));
      await audit(c, who, before.tenantId, 'agent.update', 'agent', id, this.present(before), after);
      return after;
    });
    await this.invalidate();
    return agent;
  }

  /** percent absent or 100: `version` goes live for all calls; 1–99: that share of calls gets `version`. */
  async deploy(who: Principal, tenantId: string | null, id: string, version: number, percent?: number): Promise<Agent> {
    const agent = await this.db.tx(async (c) => {
      const before = await this.load(c, tenantId, id, true);
      if (!(await c.query('select 1 from agent_versions where agent_id = $1 and version = $2', [id, version])).rowCount) {
        throw new InvalidError('version', `agent has no version ${version}`);
      }
      if (percent === undefined || percent === 100 || version === before.deployment.liveVersion) {
        await c.query('update deployments set live_version = $2, canary_version = null, canary_percent = 0, updated_at = now() where agent_id = $1', [id, version]);
      } else if (percent === 0) {
        await c.query('update deployments set canary_version = null, canary_percent = 0, updated_at = now() where agent_id = $1', [id]);
      } else {
        await c.query('update deployments set canary_version = $2, canary_percent = $3, updated_at = now() where agent_id = $1', [id, version, percent]);
      }
      const after = this.present(await this.load(c, tenantId, id));
      await audit(c, who, before.tenantId, 'agent.deploy', 'agent', id, before.deployment, after.deployment);
      return after;
    });
    await this.invalidate();
    return agent;
  }

  async versions(tenantId: string | null, id: string): Promise<AgentVersion[]> {
    const a = await this.load(this.db.pool, tenantId, id);
    const rows = (await this.db.pool.query('select * from agent_versions where agent_id = $1 order by version desc', [id])).rows;
    return rows.map((r) => ({ agentId: r.agent_id, version: r.version, config: maskConfig(this.keys, a.tenantId, r.config as AgentConfig), createdBy: r.created_by, createdAt: iso(r.created_at) }));
  }

  list(tenantId: string | null, limit: number, cursor?: string): Promise<Page<Agent>> {
    return pageOf(this.db.pool, 'agents', 'created_at', tenantId, limit, cursor, async (r) => this.present(await this.load(this.db.pool, tenantId, r.id as string)));
  }

  async addNumber(who: Principal, tenantId: string | null, number: string, agentId: string): Promise<PhoneNumber> {
    const n = await this.db.tx(async (c) => {
      const agent = await this.load(c, tenantId, agentId);
      const id = newId('num');
      try {
        const r = (await c.query('insert into phone_numbers (id, tenant_id, number, agent_id) values ($1,$2,$3,$4) returning *', [id, agent.tenantId, number, agentId])).rows[0];
        const out = toNumber(r);
        await audit(c, who, agent.tenantId, 'phone_number.create', 'phone_number', id, undefined, out);
        return out;
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new ConflictError(`${number} is already bound`);
        if ((err as { code?: string }).code === '23514') throw new InvalidError('number', 'must be E.164, e.g. +14155550123');
        throw err;
      }
    });
    await this.invalidate();
    return n;
  }

  async getNumber(tenantId: string | null, id: string): Promise<PhoneNumber> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from phone_numbers where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('phone number');
    return toNumber(r);
  }

  listNumbers(tenantId: string | null, limit: number, cursor?: string): Promise<Page<PhoneNumber>> {
    return pageOf(this.db.pool, 'phone_numbers', 'created_at', tenantId, limit, cursor, toNumber);
  }

  async deleteNumber(who: Principal, tenantId: string | null, id: string): Promise<void> {
    await this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const r = (await c.query(`delete from phone_numbers where id = $1 and ${tenantClause(tenantId, params)} returning *`, params)).rows[0];
      if (!r) throw new NotFoundError('phone number');
      await audit(c, who, r.tenant_id, 'phone_number.delete', 'phone_number', id, toNumber(r), undefined);
    });
    await this.invalidate();
  }
}
