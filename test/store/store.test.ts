// Storage behaviour on each backend: append-only audit, call records, the
// cached resolver with A/B split and cross-node invalidation, shared state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/store/index.js';
import { MemoryState } from '../../src/store/state.js';
import type { Principal } from '../../src/store/types.js';
import { BACKENDS, realPg, realRedis, redisPrefix } from '../helpers/databases.js';

const admin: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };

for (const backend of BACKENDS) {
  const skip = backend.name.startsWith('real') && !realPg;
  describe.skipIf(skip)(`control plane on ${backend.name}`, () => {
    let cp: ControlPlane;
    let env: Record<string, string>;
    const prefix = redisPrefix();
    beforeAll(async () => {
      env = await backend.env();
      cp = await ControlPlane.open({ dataDir: env.DATA_DIR, databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL || undefined, redisPrefix: prefix, sipRealm: 'aybiza' });
    });
    afterAll(async () => {
      await cp?.close();
    });

    it('the database itself refuses UPDATE, DELETE and TRUNCATE on the audit log', async () => {
      await cp.tenants.create(admin, 'Audited', null);
      await expect(cp.db.pool.query("update audit_log set actor = 'x'")).rejects.toThrow(/append-only/);
      await expect(cp.db.pool.query('delete from audit_log')).rejects.toThrow(/append-only/);
      await expect(cp.db.pool.query('truncate audit_log')).rejects.toThrow(/append-only/);
      const n = (await cp.db.pool.query('select count(*)::int as n from audit_log')).rows[0].n;
      expect(n).toBeGreaterThan(0);
    });

    it('records calls idempotently, with turns and a redacted transcript', async () => {
      const t = await cp.tenants.create(admin, 'Calls', null);
      const a = await cp.agents.create(admin, t.id, { name: 'x', prompt: 'p' });
      const c1 = await cp.calls.createCall({ tenantId: t.id, agentId: a.id, agentVersion: 1, transport: 'twilio', externalId: 'CA123', from: '+1555', to: '+1666' });
      const c2 = await cp.calls.createCall({ tenantId: t.id, agentId: a.id, agentVersion: 1, transport: 'twilio', externalId: 'CA123', from: '+1555', to: '+1666' });
      expect(c2.id).toBe(c1.id);
      await cp.calls.updateCallStatus(c1.id, 'in-progress');
      await cp.calls.addTranscript(c1.id, 'caller', 'my card is 4111 1111 1111 1111');
      await cp.calls.addTurn(c1.id, { seq: 1, userText: 'hi, mail me at a@b.com', assistantText: 'Sure', interrupted: false, latencies: { e2e: 812, server: 3 } });
      await cp.calls.updateCallStatus(c1.id, 'completed', 'caller hung up');
      await cp.calls.updateCallStatus(c1.id, 'completed', 'second callback');
      await cp.calls.updateCallStatus(c1.id, 'in-progress');
      await cp.calls.setMediaStats(c1.id, { late: 1, lost: 2 });
      const d = await cp.calls.detail(t.id, c1.id);
      expect(d.status).toBe('completed');
      expect(d.endReason).toBe('caller hung up');
      expect(d.answeredAt).not.toBeNull();
      expect(d.transcript[0].text).toBe('my card is [card]');
      expect(d.turns[0]).toMatchObject({ seq: 1, userText: 'hi, mail me at [email]', latencies: { e2e: 812, server: 3 } });
      expect(d.mediaStats).toEqual({ late: 1, lost: 2 });
      await expect(cp.calls.detail('ten_other', c1.id)).rejects.toThrow(/not found/);
      expect((await cp.calls.findCall('twilio', 'CA123'))?.id).toBe(c1.id);
    });

    it('resolves number → live version through the cache, with an A/B split', async () => {
      const t = await cp.tenants.create(admin, 'Split', 7);
      const a = await cp.agents.create(admin, t.id, { name: 'x', prompt: 'v1' });
      await cp.agents.patch(admin, t.id, a.id, { prompt: 'v2' });
      await cp.agents.addNumber(admin, t.id, '+15550001111', a.id);
      const r1 = await cp.resolver.resolveNumber('+15550001111');
      expect(r1).toMatchObject({ tenantId: t.id, agentId: a.id, agentVersion: 1, config: { prompt: 'v1' }, maxConcurrentCalls: 7 });
      await cp.agents.deploy(admin, t.id, a.id, 2, 30);
      const counts = { 1: 0, 2: 0 } as Record<number, number>;
      for (let i = 0; i < 2000; i++) counts[(await cp.resolver.resolveNumber('+15550001111'))!.agentVersion]++;
      expect(counts[2]).toBeGreaterThan(450);
      expect(counts[2]).toBeLessThan(750);
      await cp.agents.deploy(admin, t.id, a.id, 2);
      expect((await cp.resolver.resolveNumber('+15550001111'))!.agentVersion).toBe(2);
      expect(await cp.resolver.resolveNumber('+15559999999')).toBeNull();
    });

    it('limits concurrent calls per tenant and keeps a call registry', async () => {
      const s = cp.state;
      expect(await s.acquireCallSlot('ten_a', 'c1', 2)).toBe(true);
      expect(await s.acquireCallSlot('ten_a', 'c2', 2)).toBe(true);
      expect(await s.acquireCallSlot('ten_a', 'c1', 2)).toBe(true); // same call again
      expect(await s.acquireCallSlot('ten_a', 'c3', 2)).toBe(false);
      expect(await s.activeCalls('ten_a')).toBe(2);
      await s.releaseCallSlot('ten_a', 'c1');
      expect(await s.acquireCallSlot('ten_a', 'c3', 2)).toBe(true);
      await s.registerCall('c3', 'node-1', 60_000);
      expect(await s.callNode('c3')).toBe('node-1');
      await s.unregisterCall('c3');
      expect(await s.callNode('c3')).toBeNull();
      const results = await Promise.all(Array.from({ length: 10 }, () => s.hit('k', 5, 60_000)));
      expect(results.filter(Boolean).length).toBe(5);
    });
  });
}

describe('in-process state: rate-limit windows', () => {
  it('stay bounded under windows keyed by outside input, without resetting the limits still running', async () => {
    const s = new MemoryState();
    try {
      expect(await s.hit('api:key', 2, 60_000)).toBe(true);
      expect(await s.hit('api:key', 2, 60_000)).toBe(true);
      expect(await s.hit('api:key', 2, 60_000)).toBe(false);
      // A spray of failed authentications from as many addresses, each window already over by the time the map fills.
      for (let i = 0; i < 100_001; i++) await s.hit(`authfail:2001:db8:${i.toString(16)}::/64`, 20, 1);
      // At the overflow the ended windows were dropped (those of the last millisecond may remain).
      expect((s as unknown as { windows: Map<string, unknown> }).windows.size).toBeLessThan(50_000);
      // The key's limit was not reset by the spray (it had been: the whole map was cleared).
      expect(await s.hit('api:key', 2, 60_000)).toBe(false);
      // Reading (amount 0) does not spend.
      expect(await s.hit('authfail:x', 0, 60_000, 0)).toBe(true);
      expect(await s.hit('authfail:x', 0, 60_000, 0)).toBe(true);
      expect(await s.hit('authfail:x', 0, 60_000)).toBe(false);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!realPg || !realRedis)('two nodes sharing PostgreSQL and Redis', () => {
  it('a deploy on one node is seen at once by the other (pub/sub cache invalidation)', async () => {
    const { freshDatabase, redisPrefix: prefix } = await import('../helpers/databases.js');
    const { tempDir } = await import('../helpers/spawn-server.js');
    const url = await freshDatabase();
    const p = prefix();
    const nodeA = await ControlPlane.open({ dataDir: tempDir('a-'), databaseUrl: url, redisUrl: realRedis, redisPrefix: p, sipRealm: 'aybiza' });
    const nodeB = await ControlPlane.open({ dataDir: tempDir('b-'), databaseUrl: url, redisUrl: realRedis, redisPrefix: p, sipRealm: 'aybiza' });
    try {
      const t = await nodeB.tenants.create(admin, 'Multi', null);
      const a = await nodeB.agents.create(admin, t.id, { name: 'x', prompt: 'v1' });
      await nodeB.agents.addNumber(admin, t.id, '+15550002222', a.id);
      await (nodeA.state as unknown as { subscribed(): Promise<void> }).subscribed();
      expect((await nodeA.resolver.resolveNumber('+15550002222'))!.agentVersion).toBe(1); // now cached on A
      await nodeB.agents.patch(admin, t.id, a.id, { prompt: 'v2' });
      await nodeB.agents.deploy(admin, t.id, a.id, 2);
      let seen = 1;
      for (let i = 0; i < 100 && seen !== 2; i++) {
        seen = (await nodeA.resolver.resolveNumber('+15550002222'))!.agentVersion;
        if (seen !== 2) await new Promise((r) => setTimeout(r, 10));
      }
      expect(seen).toBe(2);
      // the concurrent-call limit is shared too
      expect(await nodeA.state.acquireCallSlot(t.id, 'x1', 1)).toBe(true);
      expect(await nodeB.state.acquireCallSlot(t.id, 'x2', 1)).toBe(false);
    } finally {
      await nodeA.close();
      await nodeB.close();
    }
  });

  it('REDIS_PREFIX keeps deployments that share one Redis apart (default aybiza:, validated)', async () => {
    const { loadConfig } = await import('../../src/config.js');
    const { createState } = await import('../../src/store/state.js');
    expect(loadConfig({}).redisPrefix).toBe('aybiza:');
    expect(() => loadConfig({ REDIS_PREFIX: 'a b' })).toThrow(/REDIS_PREFIX/);
    expect(() => loadConfig({ REDIS_PREFIX: 'x'.repeat(65) })).toThrow(/REDIS_PREFIX/);
    const one = loadConfig({ REDIS_URL: realRedis, REDIS_PREFIX: redisPrefix() });
    const other = loadConfig({ REDIS_URL: realRedis, REDIS_PREFIX: redisPrefix() });
    const a = createState(one.redisUrl, one.redisPrefix);
    const b = createState(one.redisUrl, one.redisPrefix);
    const c = createState(other.redisUrl, other.redisPrefix);
    try {
      expect(await a.acquireCallSlot('tenant-p', 'call-1', 1)).toBe(true);
      expect(await b.acquireCallSlot('tenant-p', 'call-2', 1)).toBe(false); // same deployment: one limit
      expect(await c.acquireCallSlot('tenant-p', 'call-3', 1)).toBe(true); // another deployment's prefix
      expect(await a.hit('k', 1, 3_600_000)).toBe(true);
      expect(await b.hit('k', 1, 3_600_000)).toBe(false);
      expect(await c.hit('k', 1, 3_600_000)).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });
});
