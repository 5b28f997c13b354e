// Test databases: a fresh database on the real PostgreSQL that test/run.sh
// started (TEST_DATABASE_URL), or an embedded PGlite in a temp DATA_DIR.
import crypto from 'node:crypto';
import pg from 'pg';
import { tempDir } from './spawn-server.js';

export const realPg = process.env.TEST_DATABASE_URL;
export const realRedis = process.env.TEST_REDIS_URL;

/** Creates an empty database on the real server; returns its URL. */
export async function freshDatabase(): Promise<string> {
  if (!realPg) throw new Error('TEST_DATABASE_URL is not set: run the suite with `npm test`');
  const name = `aybiza_t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: realPg });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(realPg);
  u.pathname = `/${name}`;
  return u.toString();
}

export function redisPrefix(): string {
  return `t${crypto.randomBytes(4).toString('hex')}:`;
}

export interface Backend {
  name: string;
  env(): Promise<Record<string, string>>;
}

/** The storage backends every storage/API suite runs against. */
export const BACKENDS: Backend[] = [
  { name: 'embedded PGlite, in-process state', env: async () => ({ DATA_DIR: tempDir('emb-') }) },
  {
    name: 'real PostgreSQL and Redis',
    // A Redis prefix per backend instance: test files run at the same time against one Redis server.
    env: async () => ({ DATA_DIR: tempDir('real-'), DATABASE_URL: await freshDatabase(), REDIS_URL: realRedis ?? '', REDIS_PREFIX: redisPrefix() }),
  },
];
