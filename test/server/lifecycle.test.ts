// In-process lifecycle: readyz is 503 while starting and draining, drain waits
// for components up to DRAIN_TIMEOUT_S.
import { describe, expect, it } from 'vitest';
import { Server } from '../../src/server/server.js';

describe('Server lifecycle', () => {
  it('turns readyz 503 while draining and closes after components drain', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0, drainTimeoutS: 10 });
    let finishDrain!: () => void;
    let closed = false;
    server.use({
      name: 'calls',
      drain: () => new Promise<void>((resolve) => (finishDrain = resolve)),
      close: async () => {
        closed = true;
      },
    });
    const port = await server.listen();
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const done = server.shutdown();
    const draining = await fetch(`${base}/readyz`);
    expect(draining.status).toBe(503);
    expect(await draining.json()).toEqual({ status: 'draining' });
    expect(closed).toBe(false);
    finishDrain();
    await done;
    expect(closed).toBe(true);
    expect(server.state).toBe('closed');
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    void base;
  });

  it('gives up waiting after the drain timeout', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0, drainTimeoutS: 0 });
    server.use({ name: 'stuck', drain: () => new Promise<void>(() => {}) });
    await server.listen();
    await server.shutdown();
    expect(server.state).toBe('closed');
  });

  it('reports not ready when a component is not ready', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0, drainTimeoutS: 1 });
    let dbUp = true;
    server.use({ name: 'db', ready: () => dbUp });
    const port = await server.listen();
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    dbUp = false;
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    await server.shutdown();
  });
});
