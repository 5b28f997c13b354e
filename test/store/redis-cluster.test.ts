// Shared state on a real Redis Cluster (REDIS_CLUSTER): three masters on
// loopback, started here. The client follows the cluster's slots, and the
// key prefix is wrapped in a hash tag so every key of a deployment lives in
// one slot — the slot scripts, the lost-node sweep and the transactions touch
// several keys at once, which a cluster refuses across slots.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/commands/child.js';
import { loadConfig } from '../../src/config.js';
import { RedisState } from '../../src/store/state.js';
import { tempDir } from '../helpers/spawn-server.js';
import { eventually } from '../cluster/cluster.js';

const have = ['redis-server', 'redis-cli'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
const TTL = 600;

describe.skipIf(!have)('shared state on a Redis Cluster', () => {
  const servers: ChildProcess[] = [];
  const ports: number[] = [];
  let dir = '';
  let url = '';
  const open: RedisState[] = [];
  const node = (nodeId: string) => {
    const s = new RedisState(url, `t${process.pid}:`, { nodeId, slotTtlMs: TTL, cluster: true });
    open.push(s);
    return s;
  };

  beforeAll(async () => {
    dir = tempDir('redis-cluster-');
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // The bus port explicitly (not port + 10000, which may be another test's RTP port).
      const bus = await freePort();
      ports.push(port);
      servers.push(spawn('redis-server', [
        '--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no',
      ], { stdio: 'ignore' }));
    }
    await eventually(() => ports.every((p) => spawnSync('redis-cli', ['-p', String(p), 'ping']).stdout?.toString().trim() === 'PONG'), 10_000, 'redis-server');
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    if (made.status !== 0) throw new Error(`redis-cli --cluster create: ${made.stdout}${made.stderr}`);
    await eventually(() => ports.every((p) => /cluster_state:ok/.test(spawnSync('redis-cli', ['-p', String(p), 'cluster', 'info']).stdout.toString())), 20_000, 'cluster_state:ok');
    url = `redis://127.0.0.1:${ports[0]}`;
  }, 40_000);

  afterAll(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    for (const s of servers) s.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('REDIS_CLUSTER=true is read from the environment', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:7000', REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:7000' }).redisCluster).toBe(false);
  });

  it('call slots, the call registry, the lost-node sweep, rate limits, claims and broadcasts work across the cluster', async () => {
    const a = node('node-a');
    const b = node('node-b');
    expect(await a.ping()).toBe(true);
    // Call slots: a limit shared by both nodes, idempotent per call.
    expect(await a.acquireCallSlot('tenant1', 'call1', 2)).toBe(true);
    expect(await a.acquireCallSlot('tenant1', 'call1', 2)).toBe(true);
    expect(await b.acquireCallSlot('tenant1', 'call2', 2)).toBe(true);
    expect(await b.acquireCallSlot('tenant1', 'call3', 2)).toBe(false);
    expect(await a.activeCalls('tenant1')).toBe(2);
    await b.releaseCallSlot('tenant1', 'call2');
    expect(await a.activeCalls('tenant1')).toBe(1);
    // The registry, and what a dead node leaves: its calls swept by one survivor, its slots freed.
    await a.registerCall('call1', 'node-a', TTL);
    expect(await b.callNode('call1')).toBe('node-a');
    await a.close();
    await eventually(async () => (await b.activeCalls('tenant1')) === 0, TTL * 5, "the dead node's slot to be reclaimed");
    let swept: string[] = [];
    await eventually(async () => (swept = await b.sweepLostNodes()).length > 0, TTL * 5, "the dead node's calls to be swept");
    expect(swept).toEqual(['call1']);
    expect(await b.sweepLostNodes()).toEqual([]);
    expect(await b.callNode('call1')).toBeNull();
    // Rate limits and single-use claims.
    const hits = [];
    for (let i = 0; i < 4; i++) hits.push(await b.hit('k1', 3, 10_000));
    expect(hits).toEqual([true, true, true, false]);
    expect(await b.claimOnce('token1', 10_000)).toBe(true);
    const c = node('node-c');
    expect(await c.claimOnce('token1', 10_000)).toBe(false);
    // A broadcast reaches every node.
    const got: string[] = [];
    c.subscribe((m) => got.push(m));
    await c.subscribed();
    await b.publish('agent-changed:1');
    await eventually(() => got.includes('agent-changed:1'), 5000, 'the broadcast');
  }, 30_000);

  it('keeps every key of the deployment in one hash slot', async () => {
    const s = node('node-d');
    await s.acquireCallSlot('tenant2', 'call9', 5);
    await s.registerCall('call9', 'node-d', TTL);
    const probe = new Cluster([{ host: '127.0.0.1', port: ports[0] }]);
    try {
      await new Promise((r) => probe.once('ready', r));
      const keys: string[] = [];
      for (const m of probe.nodes('master')) keys.push(...(await m.keys(`{t${process.pid}:}*`)));
      expect(keys.length).toBeGreaterThanOrEqual(3);
      const slots = new Set(await Promise.all(keys.map((k) => probe.cluster('KEYSLOT', k))));
      expect(slots.size).toBe(1);
    } finally {
      probe.disconnect();
    }
  });
});
