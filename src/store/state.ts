// State shared between nodes: rate limits, per-tenant concurrent-call slots,
// the call registry (call → node) and cache invalidation. Redis when
// REDIS_URL is set; otherwise an in-process implementation of the same
// interface (one node).
//
// Call slots belong to the node that took them: each slot records its node,
// and each node keeps a heartbeat key alive (renewed every third of the slot
// TTL). A node that dies stops renewing; its slots are reclaimed by the next
// acquire or count on any node once the heartbeat has expired, so a crashed
// node cannot leave its tenants permanently "busy".
//
// The same heartbeat tells the survivors which calls died with a node: each
// node lists the calls it hosts (registerCall/unregisterCall), and every node
// sweeps (sweepLostNodes, every third of the TTL, from the control plane): the
// first to see a node's heartbeat gone takes that node's list, atomically,
// and marks those calls ended. A node killed with SIGKILL thus has its calls
// ended and its slots freed within TTL + TTL/3 (20 s by default).
import crypto from 'node:crypto';
import os from 'node:os';
import { Cluster, Redis } from 'ioredis';
import { guard } from '../guard.js';
import { log } from '../log.js';

/** How long a node's call slots outlive its last heartbeat. */
export const DEFAULT_SLOT_TTL_MS = 15_000;

/** Rate-limit windows the in-process state keeps at most. */
const MAX_WINDOWS = 100_000;

export interface StateOptions {
  /**
   * This node's identity for its call slots. Default: host, pid and a random
   * boot id, so a restarted process (same host name, pid 1 in a container)
   * never renews the slots of the one that died.
   */
  nodeId?: string;
  /** Slots of a node whose heartbeat is older than this are reclaimed. */
  slotTtlMs?: number;
  /**
   * The URL is one node of a Redis Cluster (REDIS_CLUSTER): the client
   * follows the cluster's slots, and the prefix is wrapped in a hash tag
   * (`{aybiza:}`) so every key of a deployment lives in one slot — the
   * scripts and transactions below touch several keys at once.
   */
  cluster?: boolean;
}

function defaultNodeId(): string {
  return `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
}

export interface SharedState {
  readonly kind: 'memory' | 'redis';
  /** The node identity its call slots are held under. */
  readonly nodeId: string;
  /**
   * Fixed-window rate limit: true when this hit is within `limit` per
   * `windowMs`. `amount` 0 only reads: true while the window's count is
   * within `limit`.
   */
  hit(key: string, limit: number, windowMs: number, amount?: number): Promise<boolean>;
  /**
   * Takes a concurrent-call slot for the tenant, held by this node while its
   * heartbeat lives; false when `limit` live slots are taken. Slots of nodes
   * whose heartbeat expired are reclaimed first.
   */
  acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean>;
  releaseCallSlot(tenantId: string, callId: string): Promise<void>;
  /** Live slots of the tenant (expired nodes' slots are reclaimed, not counted). */
  activeCalls(tenantId: string): Promise<number>;
  /** Records that this node hosts the call (`nodeId` is what callNode answers); starts the heartbeat. */
  registerCall(callId: string, nodeId: string, ttlMs: number): Promise<void>;
  callNode(callId: string): Promise<string | null>;
  unregisterCall(callId: string): Promise<void>;
  /**
   * The calls of nodes whose heartbeat expired, each handed to exactly one
   * caller across the cluster (the node's list is taken atomically).
   */
  sweepLostNodes(): Promise<string[]>;
  /** True the first time `key` is claimed within `ttlMs` on any node (single-use tokens). */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  /** Broadcast to every node (this one included). */
  publish(message: string): Promise<void>;
  subscribe(fn: (message: string) => void): void;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** Renews this node's heartbeat every third of the TTL, from the first slot taken until close(). */
class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly ttlMs: number, private readonly beat: () => Promise<unknown>) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(guard('timer', () => this.beat().catch((err) => log.warn('call slot heartbeat failed', { err: (err as Error).message }))), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export class MemoryState implements SharedState {
  readonly kind = 'memory' as const;
  readonly nodeId: string;
  private readonly slotTtlMs: number;
  private windows = new Map<string, { start: number; end: number; count: number }>();
  /** tenant → callId → owning node. */
  private slots = new Map<string, Map<string, string>>();
  /** node → heartbeat expiry (ms since epoch). One process is one node, but the rules are the Redis ones. */
  private heartbeats = new Map<string, number>();
  private readonly heartbeat: Heartbeat;

  constructor(opts: StateOptions = {}) {
    this.nodeId = opts.nodeId ?? defaultNodeId();
    this.slotTtlMs = opts.slotTtlMs ?? DEFAULT_SLOT_TTL_MS;
    this.heartbeat = new Heartbeat(this.slotTtlMs, async () => this.beat());
  }

  private beat(): void {
    this.heartbeats.set(this.nodeId, Date.now() + this.slotTtlMs);
  }

  /** The tenant's live slots, after dropping those of nodes whose heartbeat expired. */
  private live(tenantId: string): Map<string, string> {
    let m = this.slots.get(tenantId);
    if (!m) this.slots.set(tenantId, (m = new Map()));
    const now = Date.now();
    for (const [callId, node] of m) if ((this.heartbeats.get(node) ?? 0) <= now) m.delete(callId);
    return m;
  }
  private registry = new Map<string, { node: string; until: number }>();
  private listeners: ((m: string) => void)[] = [];

  async hit(key: string, limit: number, windowMs: number, amount = 1): Promise<boolean> {
    const now = Date.now();
    const start = now - (now % windowMs);
    let w = this.windows.get(key);
    if (!w || w.start !== start) {
      // Re-inserted, so the map stays in order of each window's start.
      this.windows.delete(key);
      w = { start, end: start + windowMs, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > MAX_WINDOWS) this.pruneWindows(now);
    }
    w.count += amount;
    return w.count <= limit;
  }

  /**
   * Bounded memory: windows keyed by outside input (failed authentication per
   * address) must not grow the map, nor reset every other limit by filling it.
   * Ended windows go first; if that is not enough, the oldest.
   */
  private pruneWindows(now: number): void {
    for (const [k, x] of this.windows) if (x.end <= now) this.windows.delete(k);
    for (const k of this.windows.keys()) {
      if (this.windows.size <= MAX_WINDOWS * 0.9) break;
      this.windows.delete(k);
    }
  }

  async acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean> {
    this.beat();
    this.heartbeat.start();
    const m = this.live(tenantId);
    if (m.has(callId)) return true;
    if (m.size >= limit) return false;
    m.set(callId, this.nodeId);
    return true;
  }

  async releaseCallSlot(tenantId: string, callId: string): Promise<void> {
    const m = this.slots.get(tenantId);
    m?.delete(callId);
    if (m?.size === 0) this.slots.delete(tenantId);
  }

  async activeCalls(tenantId: string): Promise<number> {
    const n = this.live(tenantId).size;
    if (n === 0) this.slots.delete(tenantId);
    return n;
  }

  async registerCall(callId: string, nodeId: string, ttlMs: number): Promise<void> {
    this.registry.set(callId, { node: nodeId, until: Date.now() + ttlMs });
  }

  async callNode(callId: string): Promise<string | null> {
    const r = this.registry.get(callId);
    if (!r || r.until < Date.now()) return null;
    return r.node;
  }

  async unregisterCall(callId: string): Promise<void> {
    this.registry.delete(callId);
  }

  /** One process is one node: it cannot outlive itself. */
  async sweepLostNodes(): Promise<string[]> {
    return [];
  }

  private claimed = new Map<string, number>();

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    if (this.claimed.size > 50_000) for (const [k, until] of this.claimed) if (until < now) this.claimed.delete(k);
    const until = this.claimed.get(key);
    if (until !== undefined && until > now) return false;
    this.claimed.set(key, now + ttlMs);
    return true;
  }

  async publish(message: string): Promise<void> {
    for (const fn of this.listeners) fn(message);
  }

  subscribe(fn: (message: string) => void): void {
    this.listeners.push(fn);
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.heartbeat.stop();
    this.listeners = [];
  }
}

// Call slots: a hash per tenant, callId → owning node, and a heartbeat key
// per node (PX = slot TTL). Both scripts first drop the slots whose node has
// no heartbeat, then count; ACQUIRE also renews the caller's own heartbeat
// first, so its own slots are never the ones reclaimed.
// KEYS[1] = the tenant's hash; ARGV[1] = heartbeat key prefix.
const RECLAIM = `
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local n = 0
for i = 1, #all, 2 do
  local node = all[i + 1]
  local a = alive[node]
  if a == nil then
    a = redis.call('EXISTS', ARGV[1] .. node) == 1
    alive[node] = a
  end
  if a then n = n + 1 else redis.call('HDEL', KEYS[1], all[i]) end
end`;
// ARGV[2] = callId, ARGV[3] = limit, ARGV[4] = node id, ARGV[5] = TTL ms.
const ACQUIRE = `
redis.call('SET', ARGV[1] .. ARGV[4], '1', 'PX', ARGV[5])
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 1 end
${RECLAIM}
if n >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
return 1`;
const COUNT = `${RECLAIM}
return n`;
// KEYS[1] = the set of nodes that host calls; ARGV[1] = key prefix.
// A node without heartbeat: its call list is taken (returned and deleted)
// and its registry entries dropped, in one step, so one sweeper gets them.
const SWEEP = `
local lost = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 0 then
    for _, c in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'nodecalls:' .. node)) do
      lost[#lost + 1] = c
      redis.call('DEL', ARGV[1] .. 'call:' .. c)
    end
    redis.call('DEL', ARGV[1] .. 'nodecalls:' .. node)
    redis.call('SREM', KEYS[1], node)
  end
end
return lost`;

export class RedisState implements SharedState {
  readonly kind = 'redis' as const;
  readonly nodeId: string;
  private readonly slotTtlMs: number;
  private readonly heartbeat: Heartbeat;
  private readonly cmd: Redis | Cluster;
  private sub: Redis | Cluster | null = null;
  private readonly channel: string;
  private listeners: ((m: string) => void)[] = [];

  private readonly prefix: string;

  constructor(url: string, prefix = 'aybiza:', opts: StateOptions = {}) {
    if (opts.cluster) {
      this.prefix = prefix.includes('{') ? prefix : `{${prefix}}`;
      const u = new URL(url);
      this.cmd = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
        enableOfflineQueue: true,
        lazyConnect: false,
        redisOptions: {
          maxRetriesPerRequest: 2,
          username: u.username ? decodeURIComponent(u.username) : undefined,
          password: u.password ? decodeURIComponent(u.password) : undefined,
          tls: u.protocol === 'rediss:' ? {} : undefined,
        },
      });
    } else {
      this.prefix = prefix;
      this.cmd = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    }
    this.cmd.on('error', (err) => log.warn('redis error', { err: err.message }));
    this.channel = `${this.prefix}events`;
    this.nodeId = opts.nodeId ?? defaultNodeId();
    this.slotTtlMs = opts.slotTtlMs ?? DEFAULT_SLOT_TTL_MS;
    this.heartbeat = new Heartbeat(this.slotTtlMs, () => this.cmd.set(this.nodeKey, '1', 'PX', this.slotTtlMs));
  }

  private get callsKey(): string {
    return `${this.prefix}nodecalls:${this.nodeId}`;
  }

  private get nodeKey(): string {
    return `${this.prefix}node:${this.nodeId}`;
  }

  private slotsKey(tenantId: string): string {
    return `${this.prefix}callslots:${tenantId}`;
  }

  async hit(key: string, limit: number, windowMs: number, amount = 1): Promise<boolean> {
    const now = Date.now();
    const k = `${this.prefix}rl:${key}:${Math.floor(now / windowMs)}`;
    const res = await this.cmd.multi().incrby(k, amount).pexpire(k, windowMs * 2).exec();
    const count = Number(res?.[0]?.[1] ?? 0);
    return count <= limit;
  }

  async acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean> {
    this.heartbeat.start();
    const r = await this.cmd.eval(ACQUIRE, 1, this.slotsKey(tenantId), `${this.prefix}node:`, callId, String(limit), this.nodeId, String(this.slotTtlMs));
    return Number(r) === 1;
  }

  async releaseCallSlot(tenantId: string, callId: string): Promise<void> {
    await this.cmd.hdel(this.slotsKey(tenantId), callId);
  }

  async activeCalls(tenantId: string): Promise<number> {
    return Number(await this.cmd.eval(COUNT, 1, this.slotsKey(tenantId), `${this.prefix}node:`));
  }

  async registerCall(callId: string, nodeId: string, ttlMs: number): Promise<void> {
    this.heartbeat.start();
    // Heartbeat first, in the same transaction: a sweeper never sees the call listed under a node without one.
    await this.cmd.multi()
      .set(this.nodeKey, '1', 'PX', this.slotTtlMs)
      .set(`${this.prefix}call:${callId}`, nodeId, 'PX', ttlMs)
      .sadd(this.callsKey, callId)
      .sadd(`${this.prefix}nodes`, this.nodeId)
      .exec();
  }

  async callNode(callId: string): Promise<string | null> {
    return this.cmd.get(`${this.prefix}call:${callId}`);
  }

  async unregisterCall(callId: string): Promise<void> {
    await this.cmd.multi().del(`${this.prefix}call:${callId}`).srem(this.callsKey, callId).exec();
  }

  async sweepLostNodes(): Promise<string[]> {
    return (await this.cmd.eval(SWEEP, 1, `${this.prefix}nodes`, this.prefix)) as string[];
  }

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    return (await this.cmd.set(`${this.prefix}once:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async publish(message: string): Promise<void> {
    await this.cmd.publish(this.channel, message);
  }

  subscribe(fn: (message: string) => void): void {
    this.listeners.push(fn);
    if (this.sub) return;
    this.sub = this.cmd.duplicate();
    this.sub.on('error', (err) => log.warn('redis subscriber error', { err: err.message }));
    this.sub.on('message', (_channel: string, message: string) => {
      for (const l of this.listeners) l(message);
    });
    void this.sub.subscribe(this.channel);
  }

  /** Resolves once the subscriber connection is listening (tests, startup). */
  async subscribed(): Promise<void> {
    if (!this.sub) return;
    if (this.sub.status !== 'ready') await new Promise<void>((r) => this.sub!.once('ready', () => r()));
    await this.sub.subscribe(this.channel);
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.cmd.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.heartbeat.stop();
    this.listeners = [];
    await Promise.allSettled([this.sub?.quit(), this.cmd.quit()]);
  }
}

export function createState(redisUrl: string | undefined, prefix?: string, opts: StateOptions = {}): SharedState {
  if (redisUrl) {
    log.info(opts.cluster ? 'shared state: Redis Cluster' : 'shared state: Redis', { url: redisUrl.replace(/\/\/[^@]*@/, '//***@') });
    return new RedisState(redisUrl, prefix, opts);
  }
  log.info('shared state: in-process (set REDIS_URL for multi-node)');
  return new MemoryState(opts);
}
