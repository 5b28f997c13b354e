// A handler that throws inside a uWS callback answers 500 on that request
// only; the process, and every other request, carry on (issue 13, item 1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uws, type us_listen_socket } from '../../src/server/uws.js';
import { guardHttp, Router, sendReply } from '../../src/server/http.js';
import { registry } from '../../src/metrics/index.js';

async function internalErrors(where: string): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_internal_errors_total')?.get())?.values.find((v) => v.labels.where === where);
  return m?.value ?? 0;
}

describe('uWS callbacks under the guard', () => {
  const app = uws.App();
  let listen: us_listen_socket | false = false;
  let base = '';
  beforeAll(async () => {
    const router = new Router(app);
    app.get('/raw-throws', guardHttp('/raw-throws', () => {
      throw new Error('synchronous failure in a raw uWS handler');
    }));
    app.get('/raw-rejects', guardHttp('/raw-rejects', async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('asynchronous failure in a raw uWS handler');
    }));
    app.get('/raw-ok', guardHttp('/raw-ok', (res, _req, state) => sendReply(res, state, '/raw-ok', { status: 200, body: { ok: true } })));
    router.route('GET', '/routed-throws/:id', () => {
      throw new TypeError('synchronous failure in a routed handler');
    });
    router.route('POST', '/routed-body', (req) => {
      (req.json() as { a: { b: number } }).a.b = 1; // throws on {}
      return { status: 204 };
    });
    router.fallback();
    listen = await new Promise<us_listen_socket | false>((r) => app.listen('127.0.0.1', 0, r));
    base = `http://127.0.0.1:${uws.us_socket_local_port(listen as never)}`;
  });
  afterAll(() => {
    if (listen) uws.us_listen_socket_close(listen);
    (app as unknown as { close?: () => void }).close?.();
  });

  it('answers 500 JSON, counts aybiza_internal_errors_total{where="http"}, and keeps serving', async () => {
    const before = await internalErrors('http');
    for (const [method, path, body] of [
      ['GET', '/raw-throws'],
      ['GET', '/raw-rejects'],
      ['GET', '/routed-throws/x'],
      ['POST', '/routed-body', '{}'],
    ] as const) {
      const res = await fetch(base + path, { method, body });
      expect(res.status, path).toBe(500);
      expect(await res.json()).toEqual({ error: { code: 'internal', message: 'internal server error' } });
    }
    expect(await internalErrors('http')).toBe(before + 4);
    const ok = await fetch(`${base}/raw-ok`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true });
    expect(await internalErrors('uncaught')).toBe(0);
  });
});
