// No metric label takes values from outside input beyond a closed set (issue
// 13 item 3): hostile HTTP (random paths, methods, status-provoking bodies),
// Twilio (unknown events, bad webhooks) and SIP (random methods and response
// codes) against a spawned server leave every metric with a bounded number of
// series; the label helpers map anything unknown to "other".
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { badInput, countBadInput, httpStatusLabel, providerErrorKind, registry, wsCloseKind } from '../../src/metrics/index.js';
import { rng } from '../helpers/hostile.js';
import { freePort } from '../helpers/app.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADMIN = 'series-admin-key';
const TOKEN = 'series-twilio-token';
/** Series allowed per metric family (a histogram counts each bucket). */
const BOUND = 120;

/**
 * Label sets per metric family in a Prometheus text exposition. A histogram
 * counts once per label set (its `_count` line): its fixed buckets are not
 * what outside input could grow.
 */
function seriesPerFamily(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (!name || /_(bucket|sum)$/.test(name)) continue;
    const family = name.replace(/_count$/, '');
    out.set(family, (out.get(family) ?? 0) + 1);
  }
  return out;
}

function randomToken(r: () => number, n: number, alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.!%~'): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
}

/** One raw HTTP/1.1 request (any method, any bytes in the target); resolves when the server answers or closes. */
function rawHttp(port: number, head: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(head));
    s.setTimeout(3000, () => s.destroy());
    s.on('data', () => undefined);
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

describe('metric series under hostile input (spawned server)', () => {
  let srv: Spawned;
  let sipPort: number;
  let number: string;
  beforeAll(async () => {
    sipPort = await freePort();
    const port = await freePort();
    const db = process.env.TEST_DATABASE_URL;
    srv = await spawnServer({
      PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`,
      ADMIN_API_KEY: ADMIN, TWILIO_AUTH_TOKEN: TOKEN, EMULATORS: 'on', SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1',
      EMULATOR_TTS_RTF: '0.05', ...(db ? { DATABASE_URL: db } : {}),
    });
    const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const post = async (path: string, body: unknown) => (await fetch(srv.base + path, { method: 'POST', headers: auth, body: JSON.stringify(body) })).json() as Promise<{ id: string }>;
    const t = await post('/v1/tenants', { name: 'Series' });
    const a = await post('/v1/agents', { tenantId: t.id, name: 'Series', prompt: 'p', greeting: 'Hello there.' });
    number = `+1415556${String(1000 + Math.floor(Math.random() * 8999))}`;
    await post('/v1/phone-numbers', { number, agentId: a.id });
  }, 120_000);
  afterAll(async () => {
    await srv?.stop('SIGKILL');
  });

  it('keeps every metric under the series bound after random HTTP, Twilio and SIP input', async () => {
    const r = rng(13);
    // HTTP: random methods and targets (random bytes, broken percent escapes), and bodies.
    const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT'];
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const method = i % 3 === 0 ? randomToken(r, 3 + Math.floor(r() * 8), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') : methods[i % methods.length];
      const target = `/${['v1', 'v1/agents', 'twilio', 'metrics', randomToken(r, 6)][i % 5]}/${randomToken(r, 1 + Math.floor(r() * 30))}${i % 7 === 0 ? '%E0%A4%A' : ''}?${randomToken(r, 8)}=%${randomToken(r, 2)}`;
      const auth = i % 4 === 0 ? `Authorization: Bearer ${ADMIN}\r\n` : i % 4 === 1 ? `Authorization: Bearer ${randomToken(r, 20)}\r\n` : '';
      const body = i % 2 ? `{"${randomToken(r, 5)}":${i % 6 === 1 ? '{"__proto__":1}' : '"x"'}` : '';
      jobs.push(rawHttp(srv.port, `${method} ${target} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`));
      if (jobs.length >= 20) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs.splice(0));

    // Twilio: bad webhooks, and a call whose stream sends unknown events until it is closed.
    for (let i = 0; i < 30; i++) {
      await fetch(`${srv.base}/twilio/voice`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': randomToken(r, 28) }, body: `CallSid=${randomToken(r, 34)}&To=${encodeURIComponent(number)}` }).catch(() => undefined);
    }
    const caller = new TwilioCaller({ baseUrl: srv.base, authToken: TOKEN, to: number });
    await caller.dial();
    for (let i = 0; i < 200; i++) {
      caller.send({ event: randomToken(r, 4 + Math.floor(r() * 12)), streamSid: caller.streamSid });
      if (i % 20 === 0) await sleep(5);
    }
    await Promise.race([caller.waitClosed(), sleep(3000)]);
    await caller.hangup().catch(() => undefined);

    // SIP: requests with random method tokens, responses with random status codes.
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const me = sock.address().port;
    for (let i = 0; i < 300; i++) {
      const method = randomToken(r, 3 + Math.floor(r() * 10), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ');
      const branch = `z9hG4bK${randomToken(r, 10, 'abcdef0123456789')}`;
      const common = `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=${branch};rport\r\nFrom: <sip:a@127.0.0.1>;tag=${i}\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: ${randomToken(r, 16)}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
      const msg = i % 2
        ? `${method} sip:b@127.0.0.1 SIP/2.0\r\n${common.replace('\r\nMax', `\r\nCSeq: 1 ${method}\r\nMax`)}`
        : `SIP/2.0 ${100 + Math.floor(r() * 600)} Whatever\r\n${common.replace('\r\nMax', `\r\nCSeq: 1 ${method}\r\nMax`)}`;
      sock.send(msg, sipPort, '127.0.0.1');
      if (i % 25 === 0) await sleep(5);
    }
    await sleep(500);
    sock.close();

    const res = await fetch(`${srv.base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const families = seriesPerFamily(text);
    const over = [...families].filter(([name, n]) => name.startsWith('aybiza_') && n > BOUND);
    expect(over).toEqual([]);
    // The hostile input did arrive and was counted under closed labels.
    expect(text).toMatch(/aybiza_http_requests_total\{route="unmatched",code="404"\}/);
    expect(text).toMatch(/aybiza_sip_messages_total\{method="other",direction="in"/);
    expect(text).not.toMatch(/aybiza_sip_messages_total\{method="(?!INVITE|ACK|BYE|CANCEL|OPTIONS|INFO|REFER|NOTIFY|UPDATE|PRACK|MESSAGE|SUBSCRIBE|REGISTER|other")/);
    expect(text).not.toMatch(/code="(?!"|\d{3}"|other")/);
    // The server is still up.
    expect((await fetch(`${srv.base}/healthz`)).status).toBe(200);
  }, 120_000);
});

describe('label helpers map unknown values to a closed set', () => {
  it('HTTP status, provider error kinds and WebSocket close codes', () => {
    expect(httpStatusLabel(404)).toBe('404');
    expect(httpStatusLabel(299)).toBe('other');
    expect(providerErrorKind('ThrottlingException')).toBe('ThrottlingException');
    expect(providerErrorKind('EvilProxyError_123')).toBe('other');
    expect(providerErrorKind(undefined)).toBe('other');
    expect(wsCloseKind(1006)).toBe('close_1006');
    expect(wsCloseKind(undefined)).toBe('close_unknown');
    const r = rng(7);
    const kinds = new Set(Array.from({ length: 1000 }, () => wsCloseKind(Math.floor(r() * 5000))));
    expect(kinds.size).toBeLessThanOrEqual(21);
  });

  it('countBadInput keeps reason and source labels bounded even for values built from input', async () => {
    const r = rng(9);
    for (let i = 0; i < 2000; i++) countBadInput('test_src', `reason_${Math.floor(r() * 1e9)}`);
    for (let i = 0; i < 200; i++) countBadInput(`src_${i}`, 'x');
    countBadInput('test_src', 'Not A Token: 4111 1111 1111 1111');
    const m = await badInput.get();
    const reasons = new Set(m.values.filter((v) => v.labels.source === 'test_src').map((v) => v.labels.reason));
    expect(reasons.size).toBeLessThanOrEqual(65);
    expect(reasons.has('other')).toBe(true);
    expect(new Set(m.values.map((v) => v.labels.source)).size).toBeLessThanOrEqual(33);
    expect((await registry.metrics())).not.toContain('4111');
  });
});
