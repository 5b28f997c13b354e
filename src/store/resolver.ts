// Number → agent → live version, served from an in-process cache so the call
// path pays microseconds. Any change to agents, deployments or numbers
// publishes an invalidation through SharedState (Redis pub/sub across nodes),
// and every node drops its cache at once. Tool secrets are decrypted here,
// on load, so the call path holds them in plaintext in memory only.
import type { Database } from './db.js';
import type { SharedState } from './state.js';
import type { Keyring } from './secrets.js';
import { revealConfig } from './agents.js';
import type { AgentConfig, AgentResolver, ResolvedAgent } from './types.js';

interface Entry {
  tenantId: string;
  agentId: string;
  maxConcurrentCalls: number | null;
  live: { version: number; config: AgentConfig };
  canary: { version: number; config: AgentConfig; percent: number } | null;
}

const INVALIDATE = 'agents:invalidate';

export class CachedResolver implements AgentResolver {
  private cache = new Map<string, Entry | null>();
  private generation = 0;

  constructor(
    private readonly db: Database,
    private readonly state: SharedState,
    private readonly keys: Keyring,
    private readonly random: () => number = Math.random,
  ) {
    state.subscribe((m) => {
      if (m === INVALIDATE) this.clear();
    });
  }

  clear(): void {
    this.generation++;
    this.cache.clear();
  }

  /** Tells every node (this one included) to drop cached agent data. */
  async invalidate(): Promise<void> {
    this.clear();
    await this.state.publish(INVALIDATE);
  }

  async resolveNumber(e164: string): Promise<ResolvedAgent | null> {
    let e = this.cache.get(e164);
    if (e === undefined) {
      const gen = this.generation;
      e = await this.load(e164);
      // Don't cache a result loaded before an invalidation that raced with it.
      if (gen === this.generation) {
        if (this.cache.size > 100_000) this.cache.clear();
        this.cache.set(e164, e);
      }
    }
    if (!e) return null;
    const pick = e.canary && this.random() * 100 < e.canary.percent ? e.canary : e.live;
    return { tenantId: e.tenantId, agentId: e.agentId, agentVersion: pick.version, config: pick.config, maxConcurrentCalls: e.maxConcurrentCalls };
  }

  /** The uncached lookup (also the benchmark's baseline). */
  async load(e164: string): Promise<Entry | null> {
    const r = (
      await this.db.pool.query(
        `select n.tenant_id, n.agent_id, t.max_concurrent_calls, d.live_version, d.canary_version, d.canary_percent,
                lv.config as live_config, cv.config as canary_config
           from phone_numbers n
           join tenants t on t.id = n.tenant_id
           join deployments d on d.agent_id = n.agent_id
           join agent_versions lv on lv.agent_id = d.agent_id and lv.version = d.live_version
           left join agent_versions cv on cv.agent_id = d.agent_id and cv.version = d.canary_version
          where n.number = $1`,
        [e164],
      )
    ).rows[0];
    if (!r) return null;
    return {
      tenantId: r.tenant_id,
      agentId: r.agent_id,
      maxConcurrentCalls: r.max_concurrent_calls,
      live: { version: r.live_version, config: revealConfig(this.keys, r.tenant_id, r.agent_id, r.live_config) },
      canary: r.canary_version
        ? { version: r.canary_version, config: revealConfig(this.keys, r.tenant_id, r.agent_id, r.canary_config), percent: r.canary_percent }
        : null,
    };
  }
}
