// Stopping and restarting `aybiza serve` on the embedded default keeps every object.
import { describe, expect, it } from 'vitest';
import { spawnServer, tempDir } from '../helpers/spawn-server.js';

describe('embedded database across restarts', () => {
  it('keeps tenants, agents, versions, numbers, trunks and the audit log', async () => {
    const dataDir = tempDir('persist-');
    const env = { DATA_DIR: dataDir, ADMIN_API_KEY: 'k', EMULATORS: 'on' };
    const auth = { authorization: 'Bearer k', 'content-type': 'application/json' };
    const first = await spawnServer(env);
    const post = (base: string, path: string, body: unknown) =>
      fetch(base + path, { method: 'POST', headers: auth, body: JSON.stringify(body) }).then((r) => r.json() as Promise<Record<string, unknown>>);
    const t = await post(first.base, '/v1/tenants', { name: 'Keep' });
    const tenantKey = (await post(first.base, '/v1/api-keys', { tenantId: t.id })).key as string;
    const a = await post(first.base, '/v1/agents', { tenantId: t.id, name: 'Keeper', prompt: 'p' });
    await fetch(`${first.base}/v1/agents/${a.id}`, { method: 'PATCH', headers: auth, body: JSON.stringify({ prompt: 'p2' }) });
    await post(first.base, '/v1/phone-numbers', { number: '+14155550199', agentId: a.id });
    await post(first.base, '/v1/sip-trunks', { tenantId: t.id, name: 'trunk', allowedCidrs: ['10.1.0.0/16'] });
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await spawnServer(env);
    try {
      const get = (path: string, key = tenantKey) =>
        fetch(second.base + path, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.json() as Promise<Record<string, unknown>>);
      expect(await get(`/v1/agents/${a.id}`)).toMatchObject({ name: 'Keeper', version: 2, prompt: 'p2' });
      expect(((await get('/v1/phone-numbers')).items as unknown[]).length).toBe(1);
      expect(((await get('/v1/sip-trunks')).items as unknown[]).length).toBe(1);
      expect(((await get('/v1/tenants', 'k')).items as { name: string }[]).map((x) => x.name)).toContain('Keep');
      // tenant, key, agent, agent update, number, trunk
      expect(((await get('/v1/audit-log')).items as unknown[]).length).toBe(6);
    } finally {
      await second.stop('SIGTERM');
    }
  });
});
