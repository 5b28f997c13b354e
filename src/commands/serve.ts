// `aybiza serve`: the media server. SIGTERM/SIGINT drain and exit 0.
// NODE_ENV=production refuses unsafe startups (src/production.ts).
import { loadConfig } from '../config.js';
import { flushLogs, log, setLogLevel } from '../log.js';
import { checkProduction, detectAwsCredentials } from '../production.js';
import { createApp } from '../app.js';
import { WorkerPool } from '../server/workers.js';
import { missingServerFlags } from '../server/node-flags.js';
import { installProcessGuards } from '../guard.js';

export async function run(_args: string[]): Promise<void> {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  await detectAwsCredentials(config);
  checkProduction(config);
  if (config.nodeEnv === 'production' && config.databaseEmbedded) {
    log.warn('DATABASE_URL=embedded: single-node embedded database in DATA_DIR; do not run more than one replica on it', { dataDir: config.dataDir });
  }
  const missing = missingServerFlags();
  if (missing.length) log.warn('started without the recommended V8 heap flags: longer GC pauses will show in the audio pacing', { add: missing.join(' ') });
  let server: { shutdown(): Promise<void> } | null = null;
  let stopping = false;
  const shutdown = (s: { shutdown(): Promise<void> }) => {
    // Logs go out through an asynchronous destination: flush before exiting.
    s.shutdown().then(
      () => {
        // shutdown() has logged 'stopped'.
        flushLogs();
        process.exit(0);
      },
      (err) => {
        log.error('shutdown failed', { err });
        flushLogs();
        process.exit(1);
      },
    );
  };
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('signal received', { signal });
    // During startup: once the server exists it stops (below).
    if (server) shutdown(server);
  };
  // Installed before anything listens: the default action of SIGTERM (die at
  // once) must never meet a listening server.
  // An exception or rejection that escaped every guard must not take every
  // other call down with it: counted as aybiza_internal_errors_total{where="uncaught"}.
  installProcessGuards();
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // WORKERS > 1: media worker threads on the same port (src/server/workers.ts); 1: everything on this thread.
  const pool = config.workers > 1 ? await WorkerPool.start(config) : null;
  const app = pool ? null : await createApp(config);
  server = pool ?? app!.server;
  if (stopping) return shutdown(server);
  if (pool && process.env.AYBIZA_WORKER_FAULTS === '1') {
    // Test hook: SIGUSR2 ends the busiest worker as a crash would (test/workers).
    process.on('SIGUSR2', () => pool.crashBusiest());
  }
  await app?.server.listen();
}
