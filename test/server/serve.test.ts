import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnServer, type Spawned } from '../helpers/spawn-server.js';

describe('aybiza serve (npm start) on embedded defaults', () => {
  let srv: Spawned;
  beforeAll(async () => {
    srv = await spawnServer({ EMULATORS: 'on' });
  });
  afterAll(async () => {
    await srv?.stop('SIGKILL');
  });

  it('serves /healthz, /readyz and /metrics with the native uWS build info', async () => {
    const health = await fetch(`${srv.base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${srv.base}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/aybiza_build_info\{version="[^"]+",uws_native="1"\} 1/);
    expect(metrics).toContain('process_cpu_seconds_total');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await fetch(`${srv.base}/no/such/route`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('logs structured JSON lines', () => {
    const first = srv.logs.find((l) => l.startsWith('{'));
    expect(first).toBeDefined();
    const rec = JSON.parse(first!) as Record<string, unknown>;
    expect(rec).toHaveProperty('time');
    expect(rec).toHaveProperty('level');
    expect(rec).toHaveProperty('msg');
  });

  it('exits 0 on SIGTERM', async () => {
    const code = await srv.stop('SIGTERM');
    expect(code).toBe(0);
  });
});

describe('startup refusals', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [CLI, 'serve'], { env: { ...process.env, SIP_PORT: '0', ...env }, encoding: 'utf8', timeout: 30_000 });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DRAIN_TIMEOUT_S', '-1'],
    ['LOG_LEVEL', 'loud'],
    ['EMULATORS', 'maybe'],
    ['DATABASE_URL', 'mysql://x'],
    ['PUBLIC_URL', 'not a url'],
    ['RTP_PORT_MIN', '5'],
  ])('a bad %s (%s) stops startup with a message naming it', (name, value) => {
    const r = run({ [name]: value });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(name);
  });

  it('refuses to start on the pure-JS uWS fallback', () => {
    const r = run({ UWS_USE_FALLBACK: '1', PORT: '0' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/uWebSockets\.js/);
  });
});
