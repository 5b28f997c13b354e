// Agents (immutable versions, blue/green or split deployments) and the phone
// numbers bound to them. Every change is audited in its own transaction and
// invalidates the call path's cache on every node.
import type pg from 'pg';
import type { Database } from './db.js';
import { audit } from './audit.js';
import { iso, newId } from './ids.js';
import { pageOf, tenantClause } from './page.js';

import { ConflictError, InvalidError, NotFoundError } from './errors.js';
import type { Agent, AgentConfig, AgentVersion, Page, PhoneNumber, Principal } from './types.js';

type Invalidate = () => Promise<void>;

function toNumber(r: Record<string, unknown>): PhoneNumber {
  return { id: r.id as string, tenantId: r.tenant_id as string, number: r.number as string, agentId: r.agent_id as string, createdAt: iso(r.created_at) };
}

export class Agents {
  constructor(private readonly db: Database, private readonly invalidate: Invalidate) {}

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

  get(tenantId: string | null, id: string): Promise<Agent> {
    return this.load(this.db.pool, tenantId, id);
  }

  async create(who: Principal, tenantId: string, config: AgentConfig): Promise<Agent> {
    const agent = await this.db.tx(async (c) => {
      if (!(await c.query('select 1 from tenants where id = $1', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const id = newId('agt');
      await c.query('insert into agents (id, tenant_id, name) values ($1,$2,$3)', [id, tenantId, config.name]);
      await c.query('insert into agent_versions (agent_id, version, config, created_by) values ($1, 1, $2, $3)', [id, JSON.stringify(config), who.keyId]);
      await c.query('insert into deployments (agent_id, live_version) values ($1, 1)', [id]);
      const a = await this.load(c, tenantId, id);
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
      await c.query('insert into agent_versions (agent_id, version, config, created_by) values ($1,$2,$3,$4)', [id, version + 1, JSON.stringify(next), who.keyId]);
      await c.query('update agents set name = $2, updated_at = now() where id = $1', [id, next.name]);
      const after = await this.load(c, tenantId, id);
      await audit(c, who, before.tenantId, 'agent.update', 'agent', id, before, after);
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
      const after = await this.load(c, tenantId, id);
      await audit(c, who, before.tenantId, 'agent.deploy', 'agent', id, before.deployment, after.deployment);
      return after;
    });
    await this.invalidate();
    return agent;
  }

  async versions(tenantId: string | null, id: string): Promise<AgentVersion[]> {
    await this.load(this.db.pool, tenantId, id);
    const rows = (await this.db.pool.query('select * from agent_versions where agent_id = $1 order by version desc', [id])).rows;
    return rows.map((r) => ({ agentId: r.agent_id, version: r.version, config: r.config, createdBy: r.created_by, createdAt: iso(r.created_at) }));
  }

  list(tenantId: string | null, limit: number, cursor?: string): Promise<Page<Agent>> {
    return pageOf(this.db.pool, 'agents', 'created_at', tenantId, limit, cursor, (r) => this.load(this.db.pool, tenantId, r.id as string));
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
