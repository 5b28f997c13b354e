// Turns and transcript segments are written in batches (src/store/write-behind.ts):
// every write still settles with its own outcome, one bad row does not fail
// its batch-mates, order and timestamps are kept, and a call reported ended
// has everything it said stored. On each storage backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/store/index.js';
import type { Principal } from '../../src/store/types.js';
import { BACKENDS, realPg, redisPrefix } from '../helpers/databases.js';

const admin: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };

for (const backend of BACKENDS) {
  describe.skipIf(backend.name.startsWith('real') && !realPg)(`batched call writes on ${backend.name}`, () => {
    let cp: ControlPlane;
    beforeAll(async () => {
      const env = await backend.env();
      cp = await ControlPlane.open({ dataDir: env.DATA_DIR, databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL || undefined, redisPrefix: redisPrefix(), sipRealm: 'aybiza' });
    });
    afterAll(async () => {
      await cp?.close();
    });

    async function newCall(externalId: string) {
      const t = await cp.tenants.create(admin, `T ${externalId}`, null);
      return cp.calls.createCall({ tenantId: t.id, agentId: null, agentVersion: null, transport: 'sip', externalId, from: '+1555', to: '+1666' });
    }

    it('stores many calls\' writes in order, each promise settling; a bad row fails alone', async () => {
      const a = await newCall('wb-a');
      const b = await newCall('wb-b');
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 30; i++) {
        writes.push(cp.calls.addTranscript(a.id, i % 2 ? 'agent' : 'caller', `a${i}`));
        writes.push(cp.calls.addTranscript(b.id, 'caller', `b${i}`));
      }
      const outcome = (p: Promise<void>) => p.then(() => 'stored', (err: Error) => err.message);
      const orphan = outcome(cp.calls.addTranscript('call_does_not_exist', 'caller', 'lost?'));
      const orphanTurn = outcome(cp.calls.addTurn('call_does_not_exist', { seq: 1, userText: 'x', assistantText: 'y', interrupted: false, latencies: {} }));
      writes.push(cp.calls.addTurn(a.id, { seq: 1, userText: 'first', assistantText: 'draft', interrupted: false, latencies: { e2e: 1 } }));
      // The same turn again in the same batch: the later write wins, as it would one by one.
      writes.push(cp.calls.addTurn(a.id, { seq: 1, userText: 'first', assistantText: 'final', interrupted: true, latencies: { e2e: 2 } }));
      writes.push(cp.calls.addTurn(b.id, { seq: 1, userText: 'mail a@b.com', assistantText: 'ok', interrupted: false, latencies: {} }));
      await expect(Promise.all(writes)).resolves.toBeDefined();
      expect(await orphan).toMatch(/foreign key/);
      expect(await orphanTurn).toMatch(/foreign key/);
      const da = await cp.calls.detail(null, a.id);
      expect(da.transcript.map((s) => s.text)).toEqual(Array.from({ length: 30 }, (_, i) => `a${i}`));
      expect(da.transcript.map((s) => s.speaker)).toEqual(Array.from({ length: 30 }, (_, i) => (i % 2 ? 'agent' : 'caller')));
      expect(da.turns).toHaveLength(1);
      expect(da.turns[0]).toMatchObject({ assistantText: 'final', interrupted: true });
      const db = await cp.calls.detail(null, b.id);
      expect(db.transcript).toHaveLength(30);
      expect(db.turns[0].userText).not.toContain('a@b.com'); // still redacted
    });

    it('keeps when a segment was said, not when its batch ran', async () => {
      const c = await newCall('wb-time');
      const before = Date.now();
      const w = cp.calls.addTranscript(c.id, 'caller', 'hello');
      await new Promise((r) => setTimeout(r, 60));
      await w;
      const d = await cp.calls.detail(null, c.id);
      const at = Date.parse((d.transcript[0] as unknown as { at: string }).at);
      expect(at).toBeGreaterThanOrEqual(before - 5);
      expect(at).toBeLessThan(before + 50);
    });

    it('a call reported ended has its queued turn and transcript stored', async () => {
      const c = await newCall('wb-end');
      void cp.calls.addTranscript(c.id, 'agent', 'goodbye');
      void cp.calls.addTurn(c.id, { seq: 1, userText: 'bye', assistantText: 'goodbye', interrupted: false, latencies: {} });
      await cp.calls.updateCallStatus(c.id, 'completed', 'caller hung up');
      const d = await cp.calls.detail(null, c.id);
      expect(d.transcript.map((s) => s.text)).toEqual(['goodbye']);
      expect(d.turns).toHaveLength(1);
    });

    it('recording rows go in the same batches: each settles, a row of a missing call fails alone, an ended call has its row', async () => {
      const a = await newCall('wb-rec-a');
      const b = await newCall('wb-rec-b');
      const row = (callId: string, tenantId: string) => ({ callId, tenantId, storage: 'local', key: `${tenantId}/${callId}.wav`, channels: 'dual' });
      const outcome = (p: Promise<void>) => p.then(() => 'stored', (err: Error) => err.message);
      const ra = outcome(cp.calls.beginRecording(row(a.id, a.tenantId)));
      const again = outcome(cp.calls.beginRecording(row(a.id, a.tenantId))); // twice: the first row stays
      const orphan = outcome(cp.calls.beginRecording(row('call_does_not_exist', a.tenantId)));
      void cp.calls.beginRecording(row(b.id, b.tenantId));
      await cp.calls.updateCallStatus(b.id, 'completed', 'caller hung up');
      const count = async (id: string) => Number((await cp.db.pool.query('select count(*) as n from recordings where call_id = $1', [id])).rows[0].n);
      expect(await count(b.id)).toBe(1); // drained before the end was stored
      expect([await ra, await again, await orphan]).toEqual(['stored', 'stored', expect.stringMatching(/foreign key/)]);
      expect(await count(a.id)).toBe(1);
    });
  });
}
