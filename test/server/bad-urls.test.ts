// Malformed percent-encoding in a path or query is a 400 JSON answer, never
// a URIError that ends the process (issue 13, item 1). Sent over raw TCP so
// that no client library normalises the request line first.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';

/** One raw HTTP/1.1 request; resolves with the status and the body. */
function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error(`no answer to GET ${target}`));
    });
    s.on('connect', () => s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer not-a-key\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (!m) return reject(new Error(`no status line in ${JSON.stringify(data)}`));
      resolve({ status: Number(m[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
  });
}

describe('malformed percent-encoding', () => {
  let srv: Spawned;
  beforeAll(async () => {
    srv = await spawnServer({ EMULATORS: 'on' });
  });
  afterAll(async () => {
    await srv?.stop('SIGKILL');
  });

  it.each([
    '/v1/agents/%E0%A4%A', // the reported crash: a truncated UTF-8 sequence in a path parameter
    '/v1/agents/%ZZ',
    '/v1/agents/abc%',
    '/v1/agents/%C0%AF', // overlong encoding: not UTF-8
    '/v1/agents?cursor=%ZZ',
    '/v1/agents?limit=2&cursor=%E0%A4%A',
    '/v1/agents?cursor=abc%',
    '/v1/phone-numbers/%FF',
    '/no/such/%E0%A4%A', // the fallback route
    '/no/such?x=%',
  ])('GET %s is a 400 JSON error and the server stays up', async (target) => {
    const res = await rawGet(srv.port, target);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'bad_request' } });
    const health = await fetch(`${srv.base}/healthz`);
    expect(health.status).toBe(200);
    expect(srv.child.exitCode).toBeNull();
  });

  it('still decodes well-formed escapes (401 for an unknown key, not 400)', async () => {
    expect((await rawGet(srv.port, '/v1/agents/ag%C3%A9nt_1')).status).toBe(401);
    expect((await rawGet(srv.port, '/v1/agents?cursor=a%2Bb')).status).toBe(401);
  });

  it('counts the rejections and no internal error', async () => {
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/aybiza_bad_input_total\{source="http",reason="bad_percent_encoding"\} (\d+)/);
    expect(Number(/aybiza_bad_input_total\{source="http",reason="bad_percent_encoding"\} (\d+)/.exec(metrics)![1])).toBeGreaterThanOrEqual(10);
    expect(metrics).not.toMatch(/aybiza_internal_errors_total\{where="(uncaught|unhandled_rejection)"\} [1-9]/);
  });
});
