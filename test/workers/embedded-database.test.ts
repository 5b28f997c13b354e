// The embedded database shared by several connections (the main thread's and
// one per media worker): several `pg` clients at once, one inside
// transactions with named prepared statements, the others running
// parameterised queries, each checking it got back exactly its own values.
// Served by @electric-sql/pglite-socket the answers get mixed up (another
// connection's Parse lands between one's Parse and Bind); served by
// src/store/pglite-server.ts every connection holds the session until it is
// idle again, and every answer is its own. (Authentication on that socket:
// embedded-auth.test.ts.)
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PgliteServer } from '../../src/store/pglite-server.js';
import { checkPgliteServer } from '../../bench/fuzz/pg-wire.js';
import { Rand } from '../../bench/fuzz/random.js';

interface Served {
  url: string;
  stop(): Promise<void>;
}

let db: PGlite | null = null;
const clients: pg.Client[] = [];
const PASSWORD = 'test-only-embedded-password';

async function ours(holdTimeoutMs?: number): Promise<Served> {
  db = await PGlite.create();
  const server = new PgliteServer({ db, holdTimeoutMs, password: PASSWORD });
  const conn = await server.start();
  return { url: `postgres://postgres:${PASSWORD}@${conn}/postgres`, stop: () => server.stop() };
}

async function pgliteSocket(): Promise<Served> {
  db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 });
  await server.start();
  return { url: `postgres://postgres@${server.getServerConn()}/postgres`, stop: () => server.stop() };
}

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
  await db?.close().catch(() => {});
  db = null;
});

/** Runs the mixed workload; returns the answers that were not the asker's own (and errors). */
async function mixedWorkload(url: string, rounds: number, sharedNames = true): Promise<string[]> {
  const wrong: string[] = [];
  const setup = await client(url);
  await setup.query('create table if not exists items (id serial primary key, owner text not null, n int not null)');
  const txClient = await client(url);
  const others = await Promise.all([1, 2, 3].map(() => client(url)));

  const inTransactions = async () => {
    for (let i = 0; i < rounds; i++) {
      try {
        await txClient.query('begin');
        const ins = await txClient.query({ name: 'put', text: 'insert into items (owner, n) values ($1, $2) returning owner, n', values: ['tx', i] });
        if (ins.rows[0]?.owner !== 'tx' || ins.rows[0]?.n !== i) wrong.push(`tx insert ${i}: ${JSON.stringify(ins.rows)}`);
        const sum = await txClient.query({ name: 'count', text: 'select count(*)::int as c from items where owner = $1 and n = $2', values: ['tx', i] });
        if (sum.rows[0]?.c !== 1) wrong.push(`tx count ${i}: ${JSON.stringify(sum.rows)}`);
        await txClient.query('commit');
      } catch (err) {
        wrong.push(`tx ${i}: ${(err as Error).message}`);
        await txClient.query('rollback').catch(() => {});
      }
    }
  };
  const echoing = async (c: pg.Client, who: number) => {
    for (let i = 0; i < rounds; i++) {
      try {
        // The same statement name as the transaction's, with other text: private to each connection.
        if (sharedNames) {
          const r = await c.query({ name: 'put', text: 'select $1::text as who, $2::int + 1000 as n', values: [`c${who}`, i] });
          if (r.rows[0]?.who !== `c${who}` || r.rows[0]?.n !== i + 1000) wrong.push(`c${who} named ${i}: ${JSON.stringify(r.rows)}`);
        }
        const u = await c.query('select $1::text as who, $2::int as n, $3::text as tag', [`c${who}`, i, `t${who}-${i}`]);
        if (u.rows[0]?.who !== `c${who}` || u.rows[0]?.n !== i || u.rows[0]?.tag !== `t${who}-${i}`) wrong.push(`c${who} unnamed ${i}: ${JSON.stringify(u.rows)}`);
      } catch (err) {
        wrong.push(`c${who} ${i}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all([inTransactions(), ...others.map((c, i) => echoing(c, i + 1))]);
  const committed = await setup.query("select count(*)::int as c from items where owner = 'tx'");
  if (committed.rows[0]?.c !== rounds) wrong.push(`committed ${committed.rows[0]?.c} of ${rounds}`);
  return wrong;
}

describe('embedded database shared by several connections', () => {
  it('pglite-socket (which the server used before) answers one connection with another\'s parameters: the reproduction', async () => {
    const s = await pgliteSocket();
    try {
      const wrong = await mixedWorkload(s.url, 40, false);
      // One connection's query answered with another's parameters. Should this ever fail, pglite-socket
      // serialises whole cycles now; the tests below hold for ours either way.
      expect(wrong.some((w) => /^c(\d) unnamed \d+: \[\{"who":"c(?!\1)\d/.test(w))).toBe(true);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
      await s.stop();
    }
  });

  it('every connection gets its own answers: one holds the session until idle, statement names are private', async () => {
    const s = await ours();
    try {
      expect(await mixedWorkload(s.url, 150)).toEqual([]);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
      await s.stop();
    }
  });

  it('a connection that goes away mid-transaction is rolled back and frees the session and its statement names', async () => {
    const s = await ours();
    try {
      const a = await client(s.url);
      const b = await client(s.url);
      await a.query('create table t (v int)');
      await a.query('begin');
      await a.query({ name: 'ins', text: 'insert into t values ($1)', values: [1] });
      // b waits while a holds the session.
      let bDone = false;
      const bQuery = b.query('select count(*)::int as c from t').then((r) => ((bDone = true), r));
      await new Promise((r) => setTimeout(r, 200));
      expect(bDone).toBe(false);
      // a's socket ends without commit.
      (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      expect((await bQuery).rows[0].c).toBe(0);
      // a's statement is gone with it; b's own 'ins' is the only one in the session.
      await b.query({ name: 'ins', text: 'insert into t values ($1)', values: [2] });
      expect((await b.query('select count(*)::int as c from t')).rows[0].c).toBe(1);
      expect((await b.query("select count(*)::int as c from pg_prepared_statements where name like '%ins'")).rows[0].c).toBe(1);
    } finally {
      await s.stop();
    }
  });

  it('a connection holding a transaction silent past the hold timeout is closed and the others go on', async () => {
    const s = await ours(300);
    try {
      const a = await client(s.url);
      const b = await client(s.url);
      await a.query('create table t (v int)');
      await a.query('begin');
      await a.query('insert into t values (1)');
      // a says nothing more; b gets the session once a is closed and rolled back.
      expect((await b.query('select count(*)::int as c from t')).rows[0].c).toBe(0);
      await expect(a.query('select 1')).rejects.toThrow();
    } finally {
      await s.stop();
    }
  });

  it('refuses a malformed message by closing that connection only', async () => {
    const s = await ours();
    try {
      const b = await client(s.url);
      const net = await import('node:net');
      const u = new URL(s.url);
      const answer = await new Promise<string>((resolve) => {
        const got: Buffer[] = [];
        const sock = net.connect(Number(u.port), u.hostname, () => sock.write(Buffer.from([0, 0, 0, 8, 0x7f, 0, 0, 0])));
        sock.on('data', (d) => got.push(d));
        sock.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
        sock.on('error', () => {});
      });
      // Before authentication, as a wrong password would be: 28P01, then closed.
      expect(answer).toContain('28P01');
      expect((await b.query('select 1 as one')).rows[0].one).toBe(1);
    } finally {
      await s.stop();
    }
  });

  it('hostile wire input (bench/fuzz/pg-wire.ts), unauthenticated and authenticated, ends only its own connection: a healthy client keeps getting its own answers', async () => {
    const s = await ours(200);
    try {
      const seed = Number(process.env.FUZZ_SEED ?? 15);
      const res = await checkPgliteServer(new Rand(seed), s.url, 150, 3000);
      expect(res.violations, `seed ${seed}`).toEqual([]);
      // Both halves ran: refused before authentication, and the protocol after it.
      expect(res.authenticated).toBeGreaterThan(40);
      expect(res.cases - res.authenticated).toBeGreaterThan(40);
    } finally {
      await s.stop();
    }
  });
});
