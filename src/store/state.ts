// State shared between nodes: rate limits, per-tenant concurrent-call slots,
// the call registry (call → node) and cache invalidation. Redis when
// REDIS_URL is set; otherwise an in-process implementation of the same
// interface (one node).
import { Redis } from 'ioredis';
import { log } from '../log.js';

export interface SharedState {
  readonly kind: 'memory' | 'redis';
  /** Fixed-window rate limit: true when this hit is within `limit` per `windowMs`. */
  hit(key: string, limit: number, windowMs: number): Promise<boolean>;
  /** Takes a concurrent-call slot for the tenant; false when `limit` are taken. */
  acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean>;
  releaseCallSlot(tenantId: string, callId: string): Promise<void>;
  activeCalls(tenantId: string): Promise<number>;
  registerCall(callId: string, nodeId: string, ttlMs: number): Promise<void>;
  callNode(callId: string): Promise<string | null>;
  unregisterCall(callId: string): Promise<void>;
  /** True the first time `key` is claimed within `ttlMs` on any node (single-use tokens). */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  /** Broadcast to every node (this one included). */
  publish(message: string): Promise<void>;
  subscribe(fn: (message: string) => void): void;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryState implements SharedState {
  readonly kind = 'memory' as const;
  private windows = new Map<string, { start: number; count: number }>();
  private slots = new Map<string, Set<string>>();
  private registry = new Map<string, { node: string; until: number }>();
  private listeners: ((m: string) => void)[] = [];

  async hit(key: string, limit: number, windowMs: number): Promise<boolean> {
    const now = Date.now();
    const start = now - (now % windowMs);
    let w = this.windows.get(key);
    if (!w || w.start !== start) {
      w = { start, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 100_000) this.windows.clear(); // bounded memory
    }
    w.count++;
    return w.count <= limit;
  }

  async acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean> {
    let set = this.slots.get(tenantId);
    if (!set) this.slots.set(tenantId, (set = new Set()));
    if (set.has(callId)) return true;
    if (set.size >= limit) return false;
    set.add(callId);
    return true;
  }

  async releaseCallSlot(tenantId: string, callId: string): Promise<void> {
    this.slots.get(tenantId)?.delete(callId);
  }

  async activeCalls(tenantId: string): Promise<number> {
    return this.slots.get(tenantId)?.size ?? 0;
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
    this.listeners = [];
  }
}

// Atomic "add if below limit" for call slots.
const ACQUIRE = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

export class RedisState implements SharedState {
  readonly kind = 'redis' as const;
  private readonly cmd: Redis;
  private sub: Redis | null = null;
  private readonly channel: string;
  private listeners: ((m: string) => void)[] = [];

  constructor(url: string, private readonly prefix = 'aybiza:') {
    this.cmd = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    this.cmd.on('error', (err) => log.warn('redis error', { err: err.message }));
    this.channel = `${prefix}events`;
  }

  async hit(key: string, limit: number, windowMs: number): Promise<boolean> {
    const now = Date.now();
    const k = `${this.prefix}rl:${key}:${Math.floor(now / windowMs)}`;
    const res = await this.cmd.multi().incr(k).pexpire(k, windowMs * 2).exec();
    const count = Number(res?.[0]?.[1] ?? 0);
    return count <= limit;
  }

  async acquireCallSlot(tenantId: string, callId: string, limit: number): Promise<boolean> {
    const r = await this.cmd.eval(ACQUIRE, 1, `${this.prefix}slots:${tenantId}`, callId, String(limit));
    return Number(r) === 1;
  }

  async releaseCallSlot(tenantId: string, callId: string): Promise<void> {
    await this.cmd.srem(`${this.prefix}slots:${tenantId}`, callId);
  }

  async activeCalls(tenantId: string): Promise<number> {
    return this.cmd.scard(`${this.prefix}slots:${tenantId}`);
  }

  async registerCall(callId: string, nodeId: string, ttlMs: number): Promise<void> {
    await this.cmd.set(`${this.prefix}call:${callId}`, nodeId, 'PX', ttlMs);
  }

  async callNode(callId: string): Promise<string | null> {
    return this.cmd.get(`${this.prefix}call:${callId}`);
  }

  async unregisterCall(callId: string): Promise<void> {
    await this.cmd.del(`${this.prefix}call:${callId}`);
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
    this.listeners = [];
    await Promise.allSettled([this.sub?.quit(), this.cmd.quit()]);
  }
}

export function createState(redisUrl: string | undefined, prefix?: string): SharedState {
  if (redisUrl) {
    log.info('shared state: Redis', { url: redisUrl.replace(/\/\/[^@]*@/, '//***@') });
    return new RedisState(redisUrl, prefix);
  }
  log.info('shared state: in-process (set REDIS_URL for multi-node)');
  return new MemoryState();
}
