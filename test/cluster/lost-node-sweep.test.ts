// A node that dies (SIGKILL, a lost machine) leaves its calls registered in
// Redis: the survivors' sweep hands them, once, to one node, which marks them
// ended (issue 15 need 2; the whole path runs in cluster.test.ts). Against
// the real Redis from TEST_REDIS_URL.
import { describe, expect, it } from 'vitest';
import { RedisState } from '../../src/store/state.js';
import { realRedis, redisPrefix } from '../helpers/databases.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL = 400;

describe.skipIf(!realRedis)('lost-node sweep on Redis', () => {
  it('hands a dead node\'s calls to exactly one sweeper, and never a live node\'s', async () => {
    const prefix = redisPrefix();
    const [a, b, c] = ['node-a', 'node-b', 'node-c'].map((nodeId) => new RedisState(realRedis!, prefix, { nodeId, slotTtlMs: TTL }));
    try {
      await a!.registerCall('call-a1', 'node-a', 60_000);
      await a!.registerCall('call-a2', 'node-a', 60_000);
      await a!.registerCall('call-a3', 'node-a', 60_000);
      await a!.unregisterCall('call-a3'); // ended normally: not lost
      await b!.registerCall('call-b1', 'node-b', 60_000);
      expect(await c!.sweepLostNodes()).toEqual([]);

      await a!.close(); // its heartbeat stops, as if killed
      await sleep(TTL * 2.5);
      const [fromB, fromC] = await Promise.all([b!.sweepLostNodes(), c!.sweepLostNodes()]);
      expect([...fromB, ...fromC].sort()).toEqual(['call-a1', 'call-a2']);
      expect(await b!.callNode('call-a1')).toBeNull();
      // b kept beating: its call is still its own, and nothing is handed out twice.
      expect(await b!.callNode('call-b1')).toBe('node-b');
      expect(await c!.sweepLostNodes()).toEqual([]);
      expect(await b!.sweepLostNodes()).toEqual([]);
    } finally {
      await Promise.all([a, b, c].map((s) => s!.close()));
    }
  });
});
