// The database connection: a real PostgreSQL when DATABASE_URL is set, else
// embedded PostgreSQL (PGlite, files in DATA_DIR) served on a loopback socket
// by src/store/pglite-server.ts — both reached through the same `pg` pool and SQL.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { log } from '../log.js';
import { MIGRATIONS } from './migrations.js';

export interface Database {
  pool: pg.Pool;
  kind: 'embedded' | 'external';
  /** postgres:// URL of the embedded database's loopback socket (media workers connect to it); absent for external. */
  embeddedUrl?: string;
  /** Runs fn in a transaction on one connection. */
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string;
  dataDir: string;
  /** Pool size for a real server. */
  poolSize?: number;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    pool.on('error', (err) => log.warn('database connection error', { err }));
    log.info('database: external PostgreSQL', { url: redactUrl(opts.databaseUrl) });
    return wrap(pool, 'external', async () => pool.end());
  }
  const dir = path.join(opts.dataDir, 'pgdata');
  fs.mkdirSync(dir, { recursive: true });
  const worker = new Worker(workerScript(), { workerData: { dataDir: dir } });
  const conn = await new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { conn?: string }) => (m.conn ? resolve(m.conn) : reject(new Error('embedded database did not start'))));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`embedded database worker exited (${code})`)));
  });
  const [host, port] = conn.split(':');
  // PGlite is one session that each connection holds in turn (pglite-server.ts): more connections here would only queue there.
  const pool = new pg.Pool({ host, port: Number(port), user: 'postgres', database: 'postgres', max: 1 });
  pool.on('error', (err) => log.warn('embedded database connection error', { err }));
  log.info('database: embedded PostgreSQL (PGlite, in a worker thread)', { dataDir: dir, socket: `${host}:${port}` });
  const embedded = wrap(pool, 'embedded', async () => {
    await pool.end();
    const stopped = new Promise<void>((resolve) => {
      worker.on('message', (m: { stopped?: boolean }) => m.stopped && resolve());
      worker.once('exit', () => resolve());
    });
    worker.postMessage({ type: 'stop' });
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 5000))]);
    await worker.terminate();
  });
  embedded.embeddedUrl = `postgres://postgres@${host}:${port}/postgres`;
  return embedded;
}

/** The compiled worker script (vitest runs src/ from TypeScript; the worker always runs from dist/). */
function workerScript(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'dist', 'src', 'store', 'embedded-worker.js');
    if (fs.existsSync(candidate)) return candidate;
    if (path.basename(dir) === 'store' && fs.existsSync(path.join(dir, 'embedded-worker.js'))) return path.join(dir, 'embedded-worker.js');
    dir = path.dirname(dir);
  }
  throw new Error('dist/src/store/embedded-worker.js not found: run `npm run build:ts` first');
}

function wrap(pool: pg.Pool, kind: Database['kind'], close: () => Promise<void>): Database {
  let closed = false;
  return {
    pool,
    kind,
    async tx(fn) {
      const c = await pool.connect();
      try {
        await c.query('begin');
        const out = await fn(c);
        await c.query('commit');
        return out;
      } catch (err) {
        await c.query('rollback').catch(() => {});
        throw err;
      } finally {
        c.release();
      }
    },
    async ping() {
      if (closed) return false;
      try {
        await withTimeout(pool.query('select 1'), 2000);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await close();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error('timeout')), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

/** Applies pending migrations (idempotent; serialised by an advisory lock on real servers). */
export async function migrate(db: Database): Promise<number[]> {
  return db.tx(async (c) => {
    if (db.kind === 'external') await c.query('select pg_advisory_xact_lock(7263519)');
    await c.query(
      'create table if not exists schema_migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())',
    );
    const done = new Set((await c.query<{ version: number }>('select version from schema_migrations')).rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await c.query(m.sql);
      await c.query('insert into schema_migrations (version, name) values ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    if (applied.length) log.info('database migrated', { applied });
    return applied;
  });
}
