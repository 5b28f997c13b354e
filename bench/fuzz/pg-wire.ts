// Hostile PostgreSQL wire input for the embedded database's socket server
// (src/store/pglite-server.ts), which every thread's `pg` pool talks to:
// SSL/GSS/cancel requests, startup packets, SCRAM messages that cannot know
// the password, and frontend messages valid and broken (wrong lengths,
// unknown types, unterminated names, huge lengths, cycles left open,
// transactions left open), sent in random chunks, then byte-mutated. Half the
// cases send their messages without authenticating (refused with 28P01), half
// on a connection a `pg` client has authenticated first (the password is in
// the URL), so the protocol after authentication is fuzzed too.
// Fed to a server in this process by checkPgliteServer
// (test/workers/embedded-database.test.ts), and to the fuzzed server's by
// `aybiza fuzz` (PgWireFuzzer, boundary pg_wire).
import net from 'node:net';
import pg from 'pg';
import { registry } from '../../src/metrics/index.js';
import type { Rand } from './random.js';

function typed(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n | 0); return b; };

function startup(r: Rand): Buffer {
  const pairs = Buffer.concat([cstr('user'), cstr(r.pick(['postgres', '', r.text(20)])), cstr('database'), cstr('postgres'), Buffer.from([0])]);
  const code = r.chance(0.9) ? 196608 : r.pick([80877103, 80877104, 80877102, 196609, 0, -1]);
  const body = Buffer.concat([int32(code), pairs]);
  return Buffer.concat([int32(body.length + 4), body]);
}

/** SCRAM messages ('p') from a client without the password: made-up, malformed, or a proof that cannot be right. */
function passwordMessage(r: Rand): Buffer {
  const nonce = r.pick(['abc', Buffer.from(r.bytes(18)).toString('base64'), r.text(200)]);
  switch (r.int(4)) {
    case 0: {
      const first = Buffer.from(r.pick([`n,,n=*,r=${nonce}`, `y,,n=,r=${nonce}`, `p=tls-server-end-point,,n=*,r=${nonce}`, `n,a=x,n=*,r=${nonce},m=ext`, r.text(60)]), 'utf8');
      return typed('p', Buffer.concat([cstr(r.pick(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'PLAIN', ''])), int32(r.chance(0.8) ? first.length : r.pick([-1, 0, 1 << 20])), first]));
    }
    case 1: return typed('p', Buffer.from(`c=biws,r=${nonce},p=${r.bytes(r.pick([32, 31, 0])).toString('base64')}`, 'utf8'));
    case 2: return typed('p', cstr(r.text(40))); // a cleartext password where SCRAM is expected
    default: return typed('p', r.bytes(r.range(0, 64)));
  }
}

function message(r: Rand): Buffer {
  const name = r.pick(['', 's1', 'put', r.text(80)]);
  const sql = r.pick(['select 1', 'select $1::int', 'begin', 'commit', 'rollback', 'select pg_sleep(0)', 'deallocate all', 'select * from nope', r.text(200)]);
  switch (r.int(12)) {
    case 0: return typed('Q', cstr(sql));
    case 1: return typed('P', Buffer.concat([cstr(name), cstr(sql), int16(r.range(0, 2)), ...(r.chance(0.5) ? [int32(23)] : [])]));
    case 2: return typed('B', Buffer.concat([cstr(''), cstr(name), int16(0), int16(1), int32(r.pick([1, -1, 1 << 30])), Buffer.from('7'), int16(0)]));
    case 3: return typed('D', Buffer.concat([Buffer.from(r.pick(['S', 'P', 'X'])), cstr(name)]));
    case 4: return typed('E', Buffer.concat([cstr(''), int32(0)]));
    case 5: return typed('S', Buffer.alloc(0));
    case 6: return typed('C', Buffer.concat([Buffer.from(r.pick(['S', 'P'])), cstr(name)]));
    case 7: return typed('H', Buffer.alloc(0));
    case 8: return typed('X', Buffer.alloc(0));
    case 9: return Buffer.concat([Buffer.from(r.pick(['P', 'B', 'Z', '\0', '\xff'])), int32(r.pick([0, 3, 1 << 30, -5, 0x7fffffff]))]); // broken lengths, unknown types
    case 10: return typed('P', Buffer.from(r.text(30), 'utf8')); // no NUL anywhere
    default: return typed(r.pick(['d', 'c', 'f', 'F']), r.bytes(r.range(0, 16))); // COPY and function-call messages
  }
}

/** One unauthenticated connection's worth of bytes, valid or damaged. */
export function hostilePgWire(r: Rand): Buffer {
  const parts: Buffer[] = [];
  if (r.chance(0.1)) parts.push(Buffer.concat([int32(8), int32(r.pick([80877103, 80877104]))]));
  parts.push(startup(r));
  for (let i = r.range(0, 2); i > 0; i--) parts.push(passwordMessage(r));
  for (let i = r.range(0, 8); i > 0; i--) parts.push(message(r));
  return maybeMutated(r, Buffer.concat(parts));
}

/** What an authenticated connection sends next: frontend messages, valid or damaged. */
export function hostilePgSession(r: Rand): Buffer {
  const parts: Buffer[] = [];
  for (let i = r.range(1, 8); i > 0; i--) parts.push(r.chance(0.05) ? passwordMessage(r) : message(r));
  return maybeMutated(r, Buffer.concat(parts));
}

function maybeMutated(r: Rand, b: Buffer): Buffer {
  return r.chance(0.3) ? r.mutate(b, r.range(1, 6)) : b;
}

function internalErrors(): Promise<number> {
  return (registry.getSingleMetric('aybiza_internal_errors_total')?.get() ?? Promise.resolve({ values: [] }))
    .then((m) => (m as { values: { value: number }[] }).values.reduce((a, v) => a + v.value, 0));
}

/**
 * Hostile connections to the socket server at `url`, one at a time, each
 * followed by a query of a healthy client that must get its own answer
 * within `answerMs`. `lingerMs` unset: the hostile connection stays open
 * until that answer (the server's hold timeout must free the session);
 * set: it is closed within `lingerMs` of its input, as a crashed client's
 * would be (for a server whose hold timeout is longer than a case may take).
 */
export class PgWireFuzzer {
  cases = 0;
  readonly violations: string[] = [];
  /** Of `cases`, those sent on an authenticated connection. */
  authenticated = 0;
  private readonly healthy: pg.Client;
  private readonly host: string;
  private readonly port: number;

  /** `url` carries the embedded database's password (AYBIZA_EMBEDDED_DB_PASSWORD in a spawned server). */
  constructor(private readonly r: Rand, private readonly url: string, private readonly answerMs: number, private readonly lingerMs?: number) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.healthy = new pg.Client({ connectionString: url });
    this.healthy.on('error', (err) => this.violate(`healthy client: ${err.message}`));
  }

  async open(): Promise<void> {
    await this.healthy.connect();
  }

  close(): Promise<void> {
    return this.healthy.end().catch(() => {});
  }

  private violate(v: string): void {
    if (this.violations.length < 20) this.violations.push(v);
  }

  /** A socket to the server: raw (nothing sent yet), or one a `pg` client has authenticated, for the post-authentication protocol. */
  private async connect(authenticate: boolean): Promise<net.Socket | null> {
    if (authenticate) {
      const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: this.answerMs });
      c.on('error', () => {});
      try {
        await c.connect();
      } catch (err) {
        this.violate(`an authenticating client was refused: ${(err as Error).message}`);
        return null;
      }
      const sock = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
      // From here the hostile bytes, not pg, speak on it.
      sock.removeAllListeners('data');
      sock.on('data', () => {});
      return sock;
    }
    const sock = net.connect(this.port, this.host);
    sock.on('error', () => {});
    sock.on('data', () => {});
    await new Promise<void>((resolve) => sock.once('connect', resolve).once('error', () => resolve()));
    return sock;
  }

  /** One case; resolves with its input. */
  async step(): Promise<Buffer> {
    const r = this.r;
    const authenticate = r.chance(0.5);
    const input = authenticate ? hostilePgSession(r) : hostilePgWire(r);
    this.cases++;
    if (authenticate) this.authenticated++;
    const sock = await this.connect(authenticate);
    if (!sock) return input;
    // In a few chunks, split anywhere.
    for (let at = 0; at < input.length;) {
      const n = r.range(1, Math.max(1, input.length - at));
      sock.write(input.subarray(at, at + n));
      at += n;
    }
    if (r.chance(0.5)) sock.end();
    const linger = this.lingerMs === undefined ? undefined : setTimeout(() => sock.destroy(), r.int(this.lingerMs));
    const n = r.int(1_000_000);
    let timer: NodeJS.Timeout | undefined;
    try {
      const res = await Promise.race([
        this.healthy.query('select $1::int as n', [n]),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${this.answerMs} ms`)), this.answerMs))),
      ]);
      if (res.rows[0]?.n !== n) this.violate(`healthy client answered ${JSON.stringify(res.rows)} for ${n}; after ${what(authenticate, input)}`);
    } catch (err) {
      this.violate(`healthy client: ${(err as Error).message}; after ${what(authenticate, input)}`);
    } finally {
      clearTimeout(timer);
      clearTimeout(linger);
      sock.destroy();
    }
    return input;
  }
}

function what(authenticated: boolean, input: Buffer): string {
  return `${authenticated ? 'authenticated' : 'unauthenticated'} input ${input.toString('hex').slice(0, 400)}`;
}

/**
 * Properties over `cases` hostile connections to the server at `url`
 * (holding the session no longer than its hold timeout): after each, a
 * healthy client gets its own answer within `answerMs`; nothing the server
 * does escapes as an internal error (the server runs in this process).
 */
export async function checkPgliteServer(r: Rand, url: string, cases: number, answerMs: number): Promise<{ cases: number; authenticated: number; violations: string[] }> {
  const f = new PgWireFuzzer(r, url, answerMs);
  await f.open();
  const errorsBefore = await internalErrors();
  try {
    while (f.cases < cases && f.violations.length < 10) await f.step();
    const escaped = (await internalErrors()) - errorsBefore;
    if (escaped > 0) f.violations.push(`${escaped} internal errors caught by the guard`);
  } finally {
    await f.close();
  }
  return { cases, authenticated: f.authenticated, violations: f.violations };
}
