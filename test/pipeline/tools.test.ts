// HTTP tools against a real local server: refused by the address policy
// unless TOOLS_ALLOW_PRIVATE_NETWORKS, names checked after resolution and
// connected to the checked address, redirects not followed, the body capped
// and the whole call time-boxed.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callWebhookTool, MAX_TOOL_RESPONSE_BYTES } from '../../src/pipeline/tools.js';
import type { HostLookup } from '../../src/pipeline/address-policy.js';
import { badInput } from '../../src/metrics/index.js';
import type { WebhookTool } from '../../src/store/types.js';

const DEV = { allowPrivateNetworks: true };

async function refusals(reason: string): Promise<number> {
  const m = await badInput.get();
  return m.values.find((v) => v.labels.source === 'tool' && v.labels.reason === reason)?.value ?? 0;
}

describe('HTTP tools', () => {
  let server: http.Server;
  let port: number;
  const hits: { path: string; host?: string; body: string }[] = [];
  const tool = (path: string, extra: Partial<WebhookTool> = {}): WebhookTool =>
    ({ name: 't', description: 'd', parameters: { type: 'object' }, url: `http://127.0.0.1:${port}${path}`, ...extra });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hits.push({ path: req.url ?? '', host: req.headers.host, body });
        switch (req.url) {
          case '/ok':
            return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'shipped' }));
          case '/redirect-metadata':
            return res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
          case '/redirect-local':
            return res.writeHead(307, { location: `http://127.0.0.1:${port}/ok` }).end();
          case '/big': // chunked, no length: the cap must hold while reading
            res.writeHead(200, { 'content-type': 'text/plain' });
            for (let i = 0; i < 20; i++) res.write('x'.repeat(8192));
            return res.end();
          case '/big-declared':
            return res.writeHead(200, { 'content-length': String(MAX_TOOL_RESPONSE_BYTES + 1) }).end('y'.repeat(MAX_TOOL_RESPONSE_BYTES + 1));
          case '/exactly-64k':
            return res.writeHead(200).end('z'.repeat(MAX_TOOL_RESPONSE_BYTES));
          case '/slow': { // headers at once, then a byte now and then, never the end
            res.writeHead(200, { 'content-type': 'application/json' });
            res.write('{"a":');
            const t = setInterval(() => res.write(' '), 50);
            res.on('close', () => clearInterval(t));
            return;
          }
          default:
            return res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('refuses a tool on 127.0.0.1 by default and reaches it with TOOLS_ALLOW_PRIVATE_NETWORKS', async () => {
    hits.length = 0;
    const before = await refusals('loopback');
    const refused = await callWebhookTool(tool('/ok'), { q: 1 });
    expect(refused).toEqual({ ok: false, result: { error: 'refused: the tool URL refers to a loopback address' } });
    expect(hits).toEqual([]);
    expect(await refusals('loopback')).toBe(before + 1);
    // Other spellings of the same address are refused too.
    for (const url of [`http://2130706433:${port}/ok`, `http://0x7f000001:${port}/ok`, `http://127.1:${port}/ok`, `http://[::ffff:127.0.0.1]:${port}/ok`, `http://localhost.:${port}/ok`]) {
      expect((await callWebhookTool({ ...tool('/ok'), url }, {})).ok, url).toBe(false);
    }
    expect(hits).toEqual([]);

    const allowed = await callWebhookTool(tool('/ok'), { q: 1 }, undefined, DEV);
    expect(allowed).toEqual({ ok: true, result: { status: 'shipped' } });
    expect(hits).toEqual([{ path: '/ok', host: `127.0.0.1:${port}`, body: '{"q":1}' }]);
  });

  it('does not follow redirects, so a redirect to the metadata service is refused even with the flag', async () => {
    hits.length = 0;
    const before = await refusals('redirect');
    const out = await callWebhookTool(tool('/redirect-metadata'), {}, undefined, DEV);
    expect(out).toEqual({ ok: false, result: { error: 'HTTP 302: redirects are not followed' } });
    const local = await callWebhookTool(tool('/redirect-local'), {}, undefined, DEV);
    expect(local.ok).toBe(false);
    expect(hits.map((h) => h.path)).toEqual(['/redirect-metadata', '/redirect-local']); // /ok never fetched
    expect(await refusals('redirect')).toBe(before + 2);
    // The metadata address itself is never reachable, whatever the flag.
    const direct = await callWebhookTool({ ...tool('/'), url: 'http://169.254.169.254/latest/meta-data/' }, {}, undefined, DEV);
    expect(direct).toEqual({ ok: false, result: { error: 'refused: the tool URL refers to a cloud metadata address' } });
  });

  it('refuses a name that resolves to a private or loopback address, and connects to the checked address only', async () => {
    hits.length = 0;
    let lookups = 0;
    const toLoopback: HostLookup = async () => (lookups++ === 0 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }]);
    const named = { ...tool('/ok'), url: `http://tool.internal.example:${port}/ok` };
    expect(await callWebhookTool(named, {}, undefined, { allowPrivateNetworks: false, lookup: toLoopback })).toEqual({ ok: false, result: { error: 'refused: the tool URL refers to a loopback address' } });
    // One refused address among public ones refuses the name.
    const toPrivate: HostLookup = async () => [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.1', family: 4 }];
    expect(await callWebhookTool(named, {}, undefined, { allowPrivateNetworks: false, lookup: toPrivate })).toEqual({ ok: false, result: { error: 'refused: the tool URL refers to a private network address' } });
    const toMetadata: HostLookup = async () => [{ address: '169.254.169.254', family: 4 }];
    expect((await callWebhookTool(named, {}, undefined, { allowPrivateNetworks: true, lookup: toMetadata })).ok).toBe(false);
    expect(hits).toEqual([]);

    // With the flag, the name is resolved once and the socket goes to that answer
    // (a second, "rebound" answer is never asked for), with the name in Host.
    lookups = 0;
    const ok = await callWebhookTool(named, {}, undefined, { allowPrivateNetworks: true, lookup: toLoopback });
    expect(ok).toEqual({ ok: true, result: { status: 'shipped' } });
    expect(lookups).toBe(1);
    expect(hits).toEqual([{ path: '/ok', host: `tool.internal.example:${port}`, body: '{}' }]);
  });

  it('caps the response body at 64 KiB (refused, not truncated)', async () => {
    const before = await refusals('body_too_large');
    const error = { ok: false, result: { error: `response larger than ${MAX_TOOL_RESPONSE_BYTES} bytes` } };
    expect(await callWebhookTool(tool('/big'), {}, undefined, DEV)).toEqual(error);
    expect(await callWebhookTool(tool('/big-declared'), {}, undefined, DEV)).toEqual(error);
    expect(await refusals('body_too_large')).toBe(before + 2);
    const exact = await callWebhookTool(tool('/exactly-64k'), {}, undefined, DEV);
    expect(exact.ok).toBe(true);
    expect((exact.result as string).length).toBe(MAX_TOOL_RESPONSE_BYTES);
  });

  it('time-boxes the whole call, body read and DNS included', async () => {
    const before = await refusals('timeout');
    expect(await callWebhookTool(tool('/slow', { timeoutMs: 300 }), {}, undefined, DEV)).toEqual({ ok: false, result: { error: 'timed out after 300 ms' } });
    const hang: HostLookup = () => new Promise(() => {});
    const slowDns = await callWebhookTool({ ...tool('/ok', { timeoutMs: 200 }), url: 'http://slow-dns.example/' }, {}, undefined, { allowPrivateNetworks: false, lookup: hang });
    expect(slowDns).toEqual({ ok: false, result: { error: 'timed out after 200 ms' } });
    expect(await refusals('timeout')).toBe(before + 2);
  });

  it('stops when the call ends (the caller hung up)', async () => {
    const ac = new AbortController();
    const pending = callWebhookTool(tool('/slow', { timeoutMs: 10_000 }), {}, ac.signal, DEV);
    setTimeout(() => ac.abort(), 100);
    expect(await pending).toEqual({ ok: false, result: { error: 'the call ended' } });
  });
});
