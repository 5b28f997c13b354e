// `aybiza migrate`: applies pending database migrations and exits.
import { loadConfig } from '../config.js';
import { setLogLevel } from '../log.js';
import { migrate, openDatabase } from '../store/db.js';

export async function run(_args: string[]): Promise<void> {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length ? `applied migrations: ${applied.join(', ')}\n` : 'database is up to date\n');
  } finally {
    await db.close();
  }
}
