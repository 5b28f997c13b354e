// The database connection: a real PostgreSQL when DATABASE_URL is set, else
// embedded PostgreSQL (PGlite, files in DATA_DIR) served on a loopback socket
// by src/store/pglite-server.ts — both reached through the same `pg` pool and SQL.
// The embedded socket takes only connections that know a random per-boot
// password (any local process can reach a loopback port); it is made here and
// handed on in-process only: to the database's worker thread and, inside
// embeddedUrl, to the media workers' workerData.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { guard } from '../guard.js';
import { log } from '../log.js';
import { countBadInput } from '../metrics/index.js';
import { AUTH_FAILURES } from './pglite-auth.js';
import { MIGRATIONS } from './migrations.js';

export interface Database {
  pool: pg.Pool;
  kind: 'embedded' | 'external';
  /**
   * postgres:// URL of the embedded database's loopback socket, with its
   * per-boot password (media workers connect to it through workerData);
   * absent for external. A secret: never log it or put it in an env var.
   */
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
  const password = embeddedPassword();
  const worker = new Worker(workerScript(), { workerData: { dataDir: dir, password } });
  worker.on('message', guard('store', (m: { authFailure?: unknown }) => {
    if (typeof m.authFailure === 'string' && AUTH_FAILURES.has(m.authFailure)) countBadInput('embedded_db', m.authFailure);
  }));
  const conn = await new Promise<string>((resolve, reject) => {
    const started = (m: { conn?: string; authFailure?: unknown }) => {
      if (m.authFailure) return;
      worker.off('message', started);
      if (m.conn) resolve(m.conn);
      else reject(new Error('embedded database did not start'));
    };
    worker.on('message', started);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`embedded database worker exited (${code})`)));
  });
  const [host, port] = conn.split(':');
  // PGlite is one session that each connection holds in turn (pglite-server.ts): more connections here would only queue there.
  const pool = new pg.Pool({ host, port: Number(port), user: 'postgres', password, database: 'postgres', max: 1 });
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
  embedded.embeddedUrl = `postgres://postgres:${encodeURIComponent(password)}@${host}:${port}/postgres`;
  return embedded;
}

/**
 * 32 random bytes, base64url; AYBIZA_EMBEDDED_DB_PASSWORD instead, a knob for
 * tests and fuzzing only (they connect to the socket from outside the process).
 */
function embeddedPassword(): string {
  const fixed = process.env.AYBIZA_EMBEDDED_DB_PASSWORD;
  if (!fixed) return crypto.randomBytes(32).toString('base64url');
  // Printable ASCII: SASLprep (RFC 4013, which clients apply) leaves it as it is. The value is never echoed.
  if (!/^[\x21-\x7e]{16,256}$/.test(fixed)) throw new Error('AYBIZA_EMBEDDED_DB_PASSWORD must be 16 to 256 printable ASCII characters without spaces');
  log.warn('AYBIZA_EMBEDDED_DB_PASSWORD is set: the embedded database takes a fixed password (for tests and fuzzing only)');
  return fixed;
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
