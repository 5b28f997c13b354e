// HTTP fuzzing: raw HTTP/1.1 requests written on a TCP socket (so paths can
// carry any byte, methods any token, bodies any encoding) against every route
// of the admin API (read from /v1/openapi.json, so new routes are covered as
// they appear), the Twilio webhooks (signed and unsigned), /metrics, /readyz.
// Each request gets its answer's status, or 'dropped' when the server closed
// the connection without one (uWS does that for unparseable requests).
import net from 'node:net';
import twilio from 'twilio';
import type { Rand } from './random.js';
import { hostileCsv } from './csv.js';

export interface HttpTarget {
  host: string;
  port: number;
  publicUrl: string;
  twilioToken: string;
  adminKey: string;
  tenantKey: string;
  tenantId: string;
  /** Ids of objects the fuzzer owns (its own tenant's agent, number, trunk …). */
  ids: string[];
  /** Numbers that route to an agent (its own tenant's). */
  numbers: string[];
  /** [method, path pattern with {param}] of every route. */
  routes: [string, string][];
}

export interface HttpCase {
  request: Buffer;
  /** What the case aimed at, for the report (the route pattern or 'raw'). */
  route: string;
}

/**
 * status: the answer's status code; 'dropped': closed without an answer
 * (`idle` when only after uWS's ~10 s idle timeout: it holds requests it
 * cannot parse until then); 'timeout': neither within `HANG_MS`; 'cut': the
 * run ended first.
 */
export type HttpOutcome = { status: number | 'dropped' | 'timeout' | 'cut'; idle?: boolean; ms: number };

/** A request with neither an answer nor a close by then hangs. */
export const HANG_MS = 15_000;
const IDLE_MS = 7_000;

const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'get', 'PROPFIND', 'X'.repeat(40), 'GE T', 'POST\0'];
const FIXED: [string, string][] = [
  ['POST', '/twilio/voice'], ['POST', '/twilio/status'], ['POST', '/twilio/amd'], ['GET', '/metrics'], ['GET', '/readyz'], ['GET', '/healthz'],
  ['GET', '/v1/openapi.json'], ['GET', '/twilio/media'], ['GET', '/'],
];

/** The admin API's routes, from the OpenAPI document the server renders from its route table. */
export async function apiRoutes(base: string): Promise<[string, string][]> {
  const doc = (await (await fetch(`${base}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const out: [string, string][] = [];
  for (const [p, ops] of Object.entries(doc.paths)) for (const m of Object.keys(ops)) out.push([m.toUpperCase(), p]);
  return out;
}

/** A JSON value meant to hurt: deep nesting, huge numbers, prototype keys, odd types. */
function nasty(r: Rand, depth = 0): unknown {
  switch (r.int(depth > 3 ? 6 : 9)) {
    case 0: return r.pick([1e308, -1e308, 2 ** 53 + 1, -0, 0.1, 1e-320, 4294967296, -1, 0]);
    case 1: return r.text(40);
    case 2: return r.pick([null, true, false, '', ' ', '0', '+15555550100', 'http://169.254.169.254/', 'http://127.0.0.1/', 'sip:x@y']);
    case 3: return 'x'.repeat(r.pick([200, 2001, 50_001, 200_000]));
    case 4: return r.pick(['__proto__', 'constructor', 'prototype']);
    case 5: return [];
    case 6: return Array.from({ length: r.int(5) }, () => nasty(r, depth + 1));
    case 7: return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.chance(0.3) ? r.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) : r.text(12), nasty(r, depth + 1)]));
    default: return {};
  }
}

/** Agent analysis data schemas (src/postcall/schema.ts): usable ones and each kind the API refuses. */
const ANALYSIS_SCHEMAS: Record<string, unknown>[] = [
  { type: 'object', required: ['n'], properties: { n: { type: 'integer' }, s: { type: 'string', enum: ['a', 'b'] } } },
  { type: 'object', properties: { p: { type: 'string', pattern: '(a+)+$' } } },
  { type: 'object', properties: { r: { $ref: 'https://example.com/s.json' } } },
  { type: 'object', properties: { u: { type: 'array', uniqueItems: true, items: { type: 'object' } } } },
  { type: 'object', properties: { x: { type: 'strin' } }, requierd: ['x'] },
  { type: 'array' },
  { type: 'object', $defs: { a: { $ref: '#/$defs/a' } }, properties: { a: { $ref: '#/$defs/a' } } },
];

/** Plausible bodies per route, then damaged: a field's value or key replaced, or the bytes mutated. */
function validBody(r: Rand, path: string, t: HttpTarget): Record<string, unknown> {
  const tenantId = r.chance(0.8) ? t.tenantId : r.text(20);
  const tool = { name: 'lookup', description: 'Look something up', parameters: { type: 'object', properties: { q: { type: 'string' } } }, url: r.pick(['https://example.com/hook', 'http://169.254.169.254/latest/meta-data', 'http://2130706433/', 'http://[::ffff:127.0.0.1]/', 'http://localhost./']), timeoutMs: 1000, authHeader: 'Bearer secret-1234' };
  if (path.includes('tenants')) return { name: 'fuzz tenant', maxConcurrentCalls: 5 };
  if (path.includes('api-keys')) return { tenantId, name: 'fuzz key', scopes: ['agents:read'] };
  if (path.includes('deploy')) return { version: 1, percent: 50 };
  if (path.includes('agents')) return { tenantId, name: 'fuzz agent', prompt: 'You are terse.', greeting: 'Hi', llm: { temperature: 0.5, maxTokens: 100 }, stt: { endpointingMs: 300 }, tools: [tool], latencyBudgetMs: 1000, transfer: { targets: ['+15555550199', 'sip:*@example.com'] }, memory: { enabled: r.chance(0.5), retentionDays: 30 }, analysis: { outcomes: ['booked', 'other'], rubric: 'Brief.', schema: r.pick(ANALYSIS_SCHEMAS) } };
  if (path.includes('phone-numbers')) return { tenantId, number: `+1555${r.range(1000000, 9999999)}`, agentId: r.pick(t.ids) };
  if (path.includes('sip-trunks')) return { tenantId, name: 'fuzz trunk', allowedCidrs: [r.pick(['192.0.2.0/24', '0.0.0.0/0', '10.0.0.0/7', '::/0', '1.2.3.4/33', 'x'])], username: 'fuzz', password: 'fuzz-password', allowRefer: r.chance(0.5) };
  if (path.includes('webhooks')) return { tenantId, url: 'https://example.com/hook', events: ['call.ended'] };
  if (path.includes('dnc')) return { tenantId, number: '+15555550111' };
  if (path.includes('campaigns')) {
    return {
      tenantId, agentId: r.pick(t.ids), from: '+15555550112', via: r.pick(['twilio', 'sip']), concurrency: r.pick([1, 5, 0, 5000]), callsPerSecond: r.pick([1, 0.5, 0, 1e9]),
      window: { timezone: r.pick(['UTC', 'America/New_York', 'Mars/Base', '']), days: r.pick([['mon'], ['funday'], []]), start: r.pick(['09:00', '25:00', '9']), end: r.pick(['17:00', '24:00', '09:00']) },
      retry: { maxAttempts: r.pick([1, 3, 0, 99]), backoffS: r.pick([1, 60, -1]), on: r.pick([['busy'], ['completed'], []]) },
    };
  }
  if (path.includes('calls')) return { tenantId, to: '+15555550113', agentId: r.pick(t.ids) };
  return { tenantId, name: 'x' };
}

function damage(r: Rand, v: Record<string, unknown>): unknown {
  const o: Record<string, unknown> = JSON.parse(JSON.stringify(v));
  const keys = Object.keys(o);
  switch (r.int(6)) {
    case 0: if (keys.length) o[r.pick(keys)] = nasty(r); break;
    case 1: o[r.pick(['__proto__', 'constructor', 'prototype', r.text(8)])] = nasty(r); break;
    case 2: if (keys.length) delete o[r.pick(keys)]; break;
    case 3: return nasty(r);
    case 4: {
      // Deep nesting inside a free-form field (tool parameters) or at the top.
      let deep: unknown = 1;
      // (Deeper still is sent as text below: JSON.stringify itself overflows past a few thousand.)
      for (let i = r.pick([50, 500, 2000]); i > 0; i--) deep = r.chance(0.5) ? [deep] : { a: deep };
      if (keys.length) o[r.pick(keys)] = deep;
      else return deep;
      break;
    }
    default: break; // valid as is
  }
  return o;
}

function jsonWithProto(o: unknown): string {
  // JSON.stringify drops a real __proto__ key; write one as text.
  const s = JSON.stringify(o) ?? 'null';
  return s.startsWith('{') && s.length > 2 ? `{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},${s.slice(1)}` : s;
}

function escapeGarbage(r: Rand): Buffer {
  const parts: Buffer[] = [];
  for (let i = r.range(1, 6); i > 0; i--) {
    switch (r.int(5)) {
      case 0: parts.push(Buffer.from(r.pick(['%E0%A4%A', '%', '%Z', '%C0%80', '%FF', '%00', '%2e%2e', '%u0041', '%%41', '%E0%A4']), 'latin1')); break;
      case 1: parts.push(r.bytes(r.range(1, 16))); break;
      case 2: parts.push(Buffer.from(r.text(20), 'utf8')); break;
      case 3: parts.push(Buffer.from('x'.repeat(r.pick([100, 1000, 5000])))); break;
      default: parts.push(Buffer.from(r.token(), 'utf8'));
    }
  }
  return Buffer.concat(parts);
}

function fillPath(r: Rand, pattern: string, t: HttpTarget): Buffer {
  const segs = pattern.split(/(\{\w+\})/);
  return Buffer.concat(segs.map((s) => {
    if (!/^\{\w+\}$/.test(s)) return Buffer.from(s, 'latin1');
    if (r.chance(0.4) && t.ids.length) return Buffer.from(r.pick(t.ids));
    if (s === '{number}' && r.chance(0.5)) return Buffer.from(encodeURIComponent(r.pick(t.numbers)));
    return escapeGarbage(r);
  }));
}

/** GET /v1/usage's query values (src/usage/routes.ts): instants valid, out of the calendar or range, and groupings. */
const USAGE_VALUES = ['2026-12-01', '2026-12-01T00:00:00Z', '2026-02-30', '2026-12-01T25:00:00Z', '2026-12-01T10:00:00+14:99', '1900-01-01', '9999-12-31T23:59:59.999999999Z', 'day', 'agent', 'week'];

function query(r: Rand): Buffer {
  if (r.chance(0.5)) return Buffer.alloc(0);
  const pairs = Array.from({ length: r.range(1, 4) }, () => {
    const k = r.pick(['limit', 'cursor', 'tenantId', 'status', '__proto__', 'x', 'from', 'to', 'groupBy']);
    const v = r.chance(0.5) ? r.pick(['0', '1', '200', '201', '-1', '1e9', 'abc', '', 'eyJ4IjoxfQ', '%E0%A4%A', '9'.repeat(30), ...USAGE_VALUES]) : escapeGarbage(r).toString('latin1');
    return `${k}=${v}`;
  });
  return Buffer.from('?' + pairs.join(r.pick(['&', '&&', ';', '&amp;'])), 'latin1');
}

function twilioForm(r: Rand, t: HttpTarget): Record<string, string> {
  const p: Record<string, string> = {
    CallSid: r.chance(0.7) ? 'CA' + r.bytes(16).toString('hex') : r.text(40), AccountSid: 'AC' + '0'.repeat(32),
    From: r.chance(0.7) ? '+15005550006' : r.text(30), To: r.chance(0.5) ? r.pick(t.numbers) : r.text(20),
    CallStatus: r.pick(['ringing', 'in-progress', 'completed', 'failed', r.text(10)]), Direction: 'inbound', ApiVersion: '2010-04-01',
  };
  // Twilio's async AMD callback (/twilio/amd) carries these.
  if (r.chance(0.3)) p.AnsweredBy = r.pick(['human', 'machine_start', 'machine_end_beep', 'fax', 'unknown', r.text(12)]);
  if (r.chance(0.3)) p.MachineDetectionDuration = String(r.pick([1200, -1, 1e309, 'NaN', r.text(6)]));
  if (r.chance(0.3)) p[r.pick(['__proto__', 'constructor', r.text(10)])] = r.text(50);
  if (r.chance(0.2)) delete p[r.pick(Object.keys(p))];
  return p;
}

/** One request (now and then two pipelined on one connection: the first one's answer is what counts). */
export function httpCase(r: Rand, t: HttpTarget): HttpCase {
  const c = oneCase(r, t);
  if (!r.chance(0.03)) return c;
  const second = oneCase(r, t);
  return { route: c.route, request: Buffer.concat([c.request.subarray(0, c.request.indexOf('Connection: close\r\n')), Buffer.from('\r\n'), c.request.subarray(c.request.indexOf('Connection: close\r\n') + 19), second.request]) };
}

function oneCase(r: Rand, t: HttpTarget): HttpCase {
  if (r.chance(0.05)) {
    // Raw: random bytes, or a mutated request line, as the whole request.
    const base = Buffer.from(`GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.tenantKey}\r\n\r\n`);
    return { request: r.chance(0.5) ? r.bytes(r.size(4096)) : r.mutate(base, 8), route: 'raw' };
  }
  const [routeMethod, pattern] = r.chance(0.75) ? r.pick(t.routes) : r.pick(FIXED);
  const method = r.chance(0.85) ? routeMethod : r.pick(METHODS);
  let path = r.chance(0.9) ? fillPath(r, pattern, t) : escapeGarbage(r);
  if (r.chance(0.1)) path = r.mutate(path, 3);
  if (path[0] !== 0x2f && r.chance(0.9)) path = Buffer.concat([Buffer.from('/'), path]);
  path = Buffer.concat([path, query(r)]);
  const headers: [string, Buffer | string][] = [['Host', r.chance(0.95) ? `${t.host}:${t.port}` : r.text(300)]];
  const auth = r.int(6);
  if (auth === 0) headers.push(['Authorization', `Bearer ${t.adminKey}`]);
  else if (auth <= 2) headers.push(['Authorization', `Bearer ${t.tenantKey}`]);
  else if (auth === 3) headers.push(['Authorization', r.pick([`Bearer ${r.text(60)}`, 'Bearer', 'Basic eDp5', `bearer  ${t.tenantKey}`, `Bearer ${t.tenantKey.slice(0, -1)}`, 'x'.repeat(5000)])]);
  let body: Buffer = Buffer.alloc(0);
  if (pattern.startsWith('/twilio/')) {
    const form = twilioForm(r, t);
    body = Buffer.from(new URLSearchParams(form).toString());
    headers.push(['Content-Type', 'application/x-www-form-urlencoded']);
    if (r.chance(0.6)) headers.push(['X-Twilio-Signature', twilio.getExpectedTwilioSignature(t.twilioToken, t.publicUrl + pattern, form)]);
    else if (r.chance(0.5)) headers.push(['X-Twilio-Signature', r.text(40)]);
    if (r.chance(0.15)) body = r.mutate(body, 4);
  } else if (pattern.endsWith('/contacts') && method === 'POST' && r.chance(0.6)) {
    // The contact upload: hostile CSV (csv.ts), or a JSON array of contacts with damaged entries.
    if (r.chance(0.6)) {
      body = hostileCsv(r);
      headers.push(['Content-Type', r.pick(['text/csv', 'text/csv; charset=utf-8', 'TEXT/CSV'])]);
    } else {
      body = Buffer.from(JSON.stringify(Array.from({ length: r.range(0, 5) }, () => (r.chance(0.7) ? { to: `+1415555${r.range(1000, 9999)}`, variables: { name: r.text(20) } } : nasty(r)))));
      headers.push(['Content-Type', 'application/json']);
    }
  } else if (method !== 'GET' && method !== 'DELETE' && method !== 'HEAD' || r.chance(0.05)) {
    const v = validBody(r, pattern, t);
    const kind = r.int(10);
    if (kind < 5) body = Buffer.from(JSON.stringify(damage(r, v)) ?? '');
    else if (kind === 5) body = Buffer.from(jsonWithProto(damage(r, v)));
    else if (kind === 6) body = r.mutate(Buffer.from(JSON.stringify(v)), 6);
    else if (kind === 7) body = Buffer.concat([Buffer.from('{"name":"'), r.bytes(r.size(300)), Buffer.from('","prompt":"\xff\xfe\xc0\xaf"}', 'latin1')]);
    else if (kind === 8) body = Buffer.from(r.pick(['[', '{"a":', '"\\ud800"', '1'.repeat(100_000), '['.repeat(100_000) + ']'.repeat(100_000), '{"a":1,"a":2}', '\ufeff{}', `{"name":"x","prompt":"p","tools":[{"name":"t","description":"d","url":"https://example.com","parameters":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}]}`]));
    else body = Buffer.from(JSON.stringify(v));
    if (r.chance(0.02)) body = Buffer.concat([body, Buffer.alloc(300 * 1024, 0x20)]); // over the 256 KiB limit
    headers.push(['Content-Type', r.pick(['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', r.text(30)])]);
  }
  // Byte ranges for the recording route (src/recordings/routes.ts): valid, unsatisfiable, malformed, several.
  if (pattern.endsWith('/recording') && r.chance(0.7)) headers.push(['Range', r.pick(['bytes=0-99', 'bytes=-1', 'bytes=100-', 'bytes=0-0', 'bytes=99999999999-', 'bytes=5-1', 'bytes=-0', 'bytes=0-1,5-9', 'bytes=', 'bits=0-1', `bytes=${'9'.repeat(40)}-`, r.text(40)])]);
  if (r.chance(0.2)) headers.push([r.pick(['X-Forwarded-For', 'Transfer-Encoding', 'Expect', 'Upgrade', 'Cookie', r.text(20).replace(/[:\r\n]/g, '') || 'X']), r.pick(['127.0.0.1', 'chunked', '100-continue', 'websocket', r.text(200), 'x'.repeat(r.pick([10, 9000]))])]);
  if (r.chance(0.05)) headers.push(['X-Bin', r.bytes(r.range(1, 64))]);
  const lines: Buffer[] = [Buffer.from(`${method} `, 'latin1'), path, Buffer.from(' HTTP/1.1\r\n')];
  for (const [k, v] of headers) lines.push(Buffer.from(`${k}: `, 'latin1'), typeof v === 'string' ? Buffer.from(v, 'utf8') : v, Buffer.from('\r\n'));
  const chunked = headers.some(([k, v]) => k === 'Transfer-Encoding' && v === 'chunked');
  if (!chunked && (body.length || method === 'POST' || method === 'PATCH')) lines.push(Buffer.from(`Content-Length: ${body.length}\r\n`));
  lines.push(Buffer.from('Connection: close\r\n\r\n'));
  if (chunked) lines.push(Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n'));
  else lines.push(body);
  return { request: Buffer.concat(lines), route: pattern };
}

/** Sends one raw request; resolves with the answer's status, or how it ended without one. `deadline`: performance.now() to give up by ('cut'). */
export function sendRaw(host: string, port: number, request: Buffer, deadline = Infinity): Promise<HttpOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect(port, host);
    let head = '';
    let done = false;
    const finish = (status: HttpOutcome['status']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const ms = performance.now() - t0;
      resolve({ status, ms, idle: status === 'dropped' && ms >= IDLE_MS });
    };
    const limit = Math.min(HANG_MS, deadline - t0);
    const timer = setTimeout(() => finish(limit < HANG_MS ? 'cut' : 'timeout'), Math.max(0, limit));
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      // An interim 100 Continue (the request said Expect: 100-continue) is not the answer.
      if (/^HTTP\/1\.[01] 100 [^\r]*\r\n\r\n/.test(head)) head = head.slice(head.indexOf('\r\n\r\n') + 4);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) {
        if (m[1] !== '100') finish(Number(m[1]));
      } else if (head.length > 16 || head.includes('\r\n')) finish('dropped');
    });
    sock.on('error', () => finish('dropped'));
    sock.on('close', () => finish('dropped'));
  });
}

/**
 * Inputs that once broke a property, replayed first on every run (a
 * regression corpus): each must be answered without a 5xx other than 503.
 */
export function regressionCases(t: HttpTarget): HttpCase[] {
  const req = (method: string, target: string, key: string | null, body?: string): HttpCase => ({
    route: `regression ${method} ${target}`,
    request: Buffer.from(
      `${method} ${target} HTTP/1.1\r\nHost: ${t.host}:${t.port}\r\n${key ? `Authorization: Bearer ${key}\r\n` : ''}` +
        (body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '') + `Connection: close\r\n\r\n${body ?? ''}`,
    ),
  });
  const signed = (path: string, form: Record<string, string>): HttpCase => {
    const body = new URLSearchParams(form).toString();
    const sig = twilio.getExpectedTwilioSignature(t.twilioToken, t.publicUrl + path, form);
    return {
      route: `regression POST ${path}`,
      request: Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${t.host}:${t.port}\r\nX-Twilio-Signature: ${sig}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`),
    };
  };
  return [
    // Issue 13 item 1: malformed percent-encoding in a path parameter ended the process.
    req('GET', '/v1/agents/%E0%A4%A', t.tenantKey),
    req('GET', '/v1/agents/%E0%A4%A', null),
    req('GET', '/v1/agents?cursor=%E0%A4%A', t.tenantKey),
    // Found by this fuzzer: a NUL in an id or a text field reached PostgreSQL (22021) and answered 500.
    req('GET', '/v1/calls/abc%00', t.adminKey),
    req('DELETE', '/v1/sip-trunks/%00', t.tenantKey),
    req('GET', '/v1/phone-numbers/x%00y', t.tenantKey),
    req('POST', '/v1/tenants', t.adminKey, '{"name":"a\\u0000b"}'),
    req('POST', '/v1/agents', t.tenantKey, '{"name":"a\\u0000b","prompt":"p"}'),
    // Found by this fuzzer: a NUL in a signed Twilio webhook parameter answered 500.
    signed('/twilio/voice', { CallSid: 'CA' + '1'.repeat(32), From: '+1555\u0000', To: t.numbers[0] ?? '+15555550100', CallStatus: 'ringing' }),
    signed('/twilio/status', { CallSid: 'CA\u0000', CallStatus: 'completed' }),
    signed('/twilio/amd', { CallSid: 'CA' + '2'.repeat(32), AnsweredBy: 'machine_end_beep\u0000', MachineDetectionDuration: '1e309' }),
    // GET /v1/usage: a NUL in tenantId, an instant past the calendar, a repeated key, a range too long.
    req('GET', '/v1/usage?from=2026-01-01&to=2026-02-01&tenantId=%00', t.adminKey),
    req('GET', '/v1/usage?from=2026-02-30&to=2026-03-01', t.tenantKey),
    req('GET', '/v1/usage?from=2026-01-01&from=2026-01-02&to=2026-02-01', t.tenantKey),
    req('GET', '/v1/usage?from=1970-01-01&to=9999-12-31&groupBy=agent', t.tenantKey),
    // Prototype keys where a schema forbids extra properties.
    req('POST', '/v1/agents', t.tenantKey, '{"__proto__":{"x":1},"name":"a","prompt":"p"}'),
  ];
}
