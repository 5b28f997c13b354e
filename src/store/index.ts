// The control plane's storage as one component: database (embedded or
// external), migrations, shared state (Redis or in-process), and the
// repositories the API and the call path use.
import type { Component } from '../server/server.js';
import { migrate, openDatabase, type Database } from './db.js';
import { createState, DEFAULT_SLOT_TTL_MS, type SharedState } from './state.js';
import { guard } from '../guard.js';
import { log } from '../log.js';
import { Tenants } from './tenants.js';
import { Agents } from './agents.js';
import { Trunks } from './trunks.js';
import { Calls } from './calls.js';
import { CachedResolver } from './resolver.js';
import { Keyring } from './secrets.js';
import { CampaignStore } from '../outbound/campaign-store.js';
import { Webhooks } from '../webhooks/store.js';
import { AnalysisJobs } from '../postcall/jobs.js';
import { CallMemory } from '../postcall/memory.js';

export interface StoreOptions {
  databaseUrl?: string;
  dataDir: string;
  redisUrl?: string;
  /** Key prefix in Redis (tests isolate themselves with it). */
  redisPrefix?: string;
  /** redisUrl is one node of a Redis Cluster (REDIS_CLUSTER). */
  redisCluster?: boolean;
  adminApiKey?: string;
  sipRealm: string;
  /** AYBIZA_ENCRYPTION_KEY (else a key generated into dataDir) and previous keys for decryption only. */
  encryptionKey?: Buffer;
  encryptionKeysOld?: Buffer[];
  /** Connections in the pool (default 10 for an external database). */
  poolSize?: number;
  /** Shared state to use instead of opening one (a media worker's channel to the main thread's). */
  state?: SharedState;
  /**
   * Migrations, secret resealing and ADMIN_API_KEY (default true). A media
   * worker (WORKERS) opens the store the main thread has already set up.
   */
  setup?: boolean;
}

export class ControlPlane implements Component {
  readonly name = 'control-plane';
  readonly tenants: Tenants;
  readonly agents: Agents;
  readonly trunks: Trunks;
  readonly calls: Calls;
  readonly campaigns: CampaignStore;
  readonly resolver: CachedResolver;
  /** Webhook subscriptions and the outbox's producer side; calls announce their start and end to it. */
  readonly webhooks: Webhooks;
  /** Post-call analysis jobs (the queue's producer side: src/postcall) and memory across calls. */
  readonly analysisJobs: AnalysisJobs;
  readonly memory: CallMemory;
  private sweeper: NodeJS.Timeout | null = null;

  private constructor(readonly db: Database, readonly state: SharedState, readonly keys: Keyring, private readonly opts: StoreOptions) {
    this.resolver = new CachedResolver(db, state, keys);
    this.tenants = new Tenants(db, state);
    this.agents = new Agents(db, () => this.resolver.invalidate(), keys);
    this.trunks = new Trunks(db, opts.sipRealm, state, keys);
    this.calls = new Calls(db);
    this.campaigns = new CampaignStore(db);
    this.webhooks = new Webhooks(db, keys);
    this.analysisJobs = new AnalysisJobs(db);
    this.memory = new CallMemory(db, keys);
    this.calls.lifecycle = (type, call) => {
      this.webhooks.callLifecycle(type, call);
      if (type === 'call.ended') this.analysisJobs.callEnded(call);
    };
  }

  /** Opens the database, applies migrations, and makes ADMIN_API_KEY usable. */
  static async open(opts: StoreOptions): Promise<ControlPlane> {
    const keys = Keyring.load({ key: opts.encryptionKey, oldKeys: opts.encryptionKeysOld, dataDir: opts.dataDir });
    const db = await openDatabase({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, poolSize: opts.poolSize });
    try {
      const setup = opts.setup !== false;
      if (setup) await migrate(db);
      const state = opts.state ?? createState(opts.redisUrl, opts.redisPrefix, { cluster: opts.redisCluster });
      const cp = new ControlPlane(db, state, keys, opts);
      if (setup) await cp.agents.resealSecrets();
      if (setup) await cp.webhooks.resealSecrets();
      if (setup && opts.adminApiKey) await cp.tenants.ensureAdminKey(opts.adminApiKey);
      if (setup) cp.sweepLostNodes();
      return cp;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  /**
   * With Redis, every node looks every third of the heartbeat TTL for nodes
   * that died (SIGKILL, a lost machine) and ends their calls: the first node
   * to see one takes its calls (see SharedState.sweepLostNodes).
   */
  private sweepLostNodes(): void {
    if (this.state.kind !== 'redis') return;
    const sweep = async () => {
      const lost = await this.state.sweepLostNodes();
      if (lost.length === 0) return;
      const updated = await this.calls.endLost(lost);
      log.warn('calls of a lost node marked ended', { calls: lost.length, updated });
    };
    const run = guard('timer', () => void sweep().catch((err) => log.warn('lost-node sweep failed', { err: (err as Error).message })));
    this.sweeper = setInterval(run, DEFAULT_SLOT_TTL_MS / 3);
    this.sweeper.unref();
  }

  async ready(): Promise<boolean> {
    return (await this.db.ping()) && (await this.state.ping());
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.tenants.close(); // queued last-use times
    await this.calls.drain(); // queued turns and transcript segments
    await this.webhooks.drain(); // call events being written
    await this.analysisJobs.drain(); // analysis jobs being queued
    await this.state.close();
    await this.db.close();
  }
}

export type { SharedState } from './state.js';
export * from './types.js';
