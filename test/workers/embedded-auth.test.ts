// The embedded database's socket answers only connections that know its
// per-boot password (SCRAM-SHA-256, src/store/pglite-auth.ts): a wrong,
// missing or garbled password gets 28P01 and is counted, a silent or slow
// client is closed, and nothing sent before authentication reaches PGlite.
// Through openDatabase: the password is random per boot, the pools use it,
// failures reach aybiza_bad_input_total{source="embedded_db"} on the main
// thread, and AYBIZA_EMBEDDED_DB_PASSWORD (tests and fuzzing only) fixes it.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import type { AuthFailure } from '../../src/store/pglite-auth.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { PgliteServer } from '../../src/store/pglite-server.js';

const PASSWORD = 'test-only-embedded-password';
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function serve(authTimeoutMs?: number): Promise<{ host: string; port: number; failures: AuthFailure[] }> {
  const db = await PGlite.create();
  const failures: AuthFailure[] = [];
  const server = new PgliteServer({ db, password: PASSWORD, authTimeoutMs, onAuthFailure: (r) => failures.push(r) });
  const [host, port] = (await server.start()).split(':');
  cleanups.push(() => db.close(), () => server.stop());
  return { host: host!, port: Number(port), failures };
}

async function connect(host: string, port: number, password?: string): Promise<pg.Client> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', password });
  c.on('error', () => {});
  cleanups.push(() => c.end());
  await c.connect();
  return c;
}

function startup(): Buffer {
  const body = Buffer.from('\0\x03\0\0user\0postgres\0database\0postgres\0\0', 'latin1');
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

function typed(type: string, body: string): Buffer {
  const b = Buffer.from(body, 'utf8');
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

/**
 * Sends `chunks` on a raw socket (each after `gapMs`); once the server closed
 * it, resolves with the backend message types received and how many chunks went out.
 */
function raw(host: string, port: number, chunks: Buffer[], gapMs = 0): Promise<{ types: string; bytes: Buffer; sent: number }> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let sent = 0;
    let closed = false;
    const sock = net.connect(port, host, async () => {
      for (const c of chunks) {
        if (closed) break;
        sock.write(c);
        sent++;
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      const bytes = Buffer.concat(got);
      let types = '';
      for (let i = 0; i + 5 <= bytes.length; i += 1 + bytes.readInt32BE(i + 1)) types += String.fromCharCode(bytes[i]!);
      resolve({ types, bytes, sent });
    });
  });
}

async function counted(reason: string): Promise<number> {
  const m = await registry.getSingleMetric('aybiza_bad_input_total')!.get();
  return m.values.filter((v) => v.labels.source === 'embedded_db' && v.labels.reason === reason).reduce((a, v) => a + v.value, 0);
}

async function until(ok: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  for (const t0 = Date.now(); !(await ok());) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('embedded database socket: authentication', () => {
  it('a client with the password gets its answers (SCRAM-SHA-256: pg checks the server signature too)', async () => {
    const s = await serve();
    const c = await connect(s.host, s.port, PASSWORD);
    expect((await c.query('select $1::int + 1 as n', [41])).rows[0].n).toBe(42);
    expect(s.failures).toEqual([]);
  });

  it('a wrong password gets 28P01 and is counted', async () => {
    const s = await serve();
    await expect(connect(s.host, s.port, 'not-the-password')).rejects.toMatchObject({ code: '28P01' });
    await until(() => s.failures.length > 0);
    expect(s.failures).toEqual(['auth_failed']);
  });

  it('a client without a password is asked for one and closed when the authentication time is up, and counted', async () => {
    const s = await serve(500);
    // pg gives up (it has no password to prove) but keeps the socket open: the server's time limit ends it.
    await expect(connect(s.host, s.port)).rejects.toThrow(/password/);
    await until(() => s.failures.length > 0);
    expect(s.failures).toEqual(['auth_timeout']);
  });

  it('a client that is asked for the password and leaves is counted', async () => {
    const s = await serve();
    const r = await new Promise<string>((resolve) => {
      const sock = net.connect(s.port, s.host, () => sock.write(startup()));
      sock.on('error', () => {});
      sock.once('data', (d) => {
        sock.destroy();
        resolve(String.fromCharCode(d[0]!));
      });
    });
    expect(r).toBe('R');
    await until(() => s.failures.length > 0);
    expect(s.failures).toEqual(['auth_missing']);
  });

  it('a query instead of the password message: 28P01, closed, never answered, and nothing of it reached the database', async () => {
    const s = await serve();
    const r = await raw(s.host, s.port, [Buffer.concat([startup(), typed('Q', 'create table leaked (v int); select 1\0')])]);
    // AuthenticationSASL, then the ErrorResponse: no RowDescription, DataRow or ReadyForQuery.
    expect(r.types).toBe('RE');
    expect(r.bytes.toString('latin1')).toContain('28P01');
    expect(s.failures).toEqual(['auth_protocol']);
    const c = await connect(s.host, s.port, PASSWORD);
    expect((await c.query("select count(*)::int as n from pg_tables where tablename = 'leaked'")).rows[0].n).toBe(0);
  });

  it('garbled SCRAM messages and a forged proof get 28P01 and are counted', async () => {
    const s = await serve();
    const initial = (text: string) => {
      const mech = Buffer.from('SCRAM-SHA-256\0');
      const len = Buffer.alloc(4);
      len.writeInt32BE(Buffer.byteLength(text));
      return typed('p', Buffer.concat([mech, len, Buffer.from(text)]).toString('latin1'));
    };
    const garbage = await raw(s.host, s.port, [startup(), typed('p', 'hunter2\0')]);
    expect(garbage.types).toBe('RE');
    // A well-formed exchange with a made-up proof: the server's nonce is echoed, the proof cannot match.
    const forged = await new Promise<string>((resolve) => {
      const got: Buffer[] = [];
      let sent = false;
      const sock = net.connect(s.port, s.host, () => sock.write(Buffer.concat([startup(), initial('n,,n=*,r=clientnonce')])));
      sock.on('error', () => {});
      sock.on('data', (d) => {
        got.push(d);
        const nonce = /r=(clientnonce[^,]+),s=[^,]+,i=\d+/.exec(Buffer.concat(got).toString('latin1'))?.[1];
        if (nonce && !sent) {
          sent = true;
          sock.write(typed('p', `c=biws,r=${nonce},p=${Buffer.alloc(32, 7).toString('base64')}`));
        }
      });
      sock.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
    });
    expect(forged).toContain('28P01');
    expect(s.failures).toEqual(['auth_protocol', 'auth_failed']);
  });

  it('a slow client (slow-loris) is closed when the authentication time is up, and counted', async () => {
    const s = await serve(300);
    const packet = startup();
    // One byte every 100 ms: closed before the startup packet is even complete.
    const r = await raw(s.host, s.port, [...packet].map((b) => Buffer.from([b])), 100);
    expect(r.sent).toBeLessThan(packet.length);
    expect(r.types).toBe('E');
    expect(r.bytes.toString('latin1')).toContain('28P01');
    expect(s.failures).toEqual(['auth_timeout']);
  });

  it('a flood of bytes before authentication is refused', async () => {
    const s = await serve();
    const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const r = await raw(s.host, s.port, [Buffer.concat(Array.from({ length: 4000 }, () => sslRequest))]);
    expect(r.bytes.toString('latin1')).toContain('28P01');
    expect(s.failures).toEqual(['auth_protocol']);
  });
});

describe('openDatabase: the embedded database\'s password', () => {
  const opened: Database[] = [];
  afterEach(async () => {
    for (const d of opened.splice(0)) await d.close();
    delete process.env.AYBIZA_EMBEDDED_DB_PASSWORD;
  });
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-auth-'));

  it('is random per boot, used by the pool, handed on in embeddedUrl only; a refused client is counted on the main thread', async () => {
    const a = await openDatabase({ dataDir: tmp() });
    opened.push(a);
    expect(await a.ping()).toBe(true);
    const u = new URL(a.embeddedUrl!);
    expect(u.password.length).toBeGreaterThanOrEqual(43);
    expect(Object.values(process.env)).not.toContain(u.password);
    // The URL (what media workers get in workerData) connects.
    const c = new pg.Client({ connectionString: a.embeddedUrl });
    c.on('error', () => {});
    cleanups.push(() => c.end());
    await c.connect();
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    // Without it: refused, and counted in this thread's registry.
    const before = await counted('auth_failed');
    await expect(connect(u.hostname, Number(u.port), 'wrong-password')).rejects.toMatchObject({ code: '28P01' });
    await until(async () => (await counted('auth_failed')) === before + 1);
    // Another boot, another password.
    const b = await openDatabase({ dataDir: tmp() });
    opened.push(b);
    expect(new URL(b.embeddedUrl!).password).not.toBe(u.password);
  });

  it('AYBIZA_EMBEDDED_DB_PASSWORD (tests and fuzzing only) fixes it; a malformed one is refused without echoing it', async () => {
    process.env.AYBIZA_EMBEDDED_DB_PASSWORD = 'short';
    await expect(openDatabase({ dataDir: tmp() })).rejects.toThrow(/^(?!.*short).*AYBIZA_EMBEDDED_DB_PASSWORD/);
    process.env.AYBIZA_EMBEDDED_DB_PASSWORD = PASSWORD;
    const d = await openDatabase({ dataDir: tmp() });
    opened.push(d);
    const u = new URL(d.embeddedUrl!);
    const c = await connect(u.hostname, Number(u.port), PASSWORD);
    expect((await c.query('select 2 as two')).rows[0].two).toBe(2);
  });
});
