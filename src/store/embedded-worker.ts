// Runs the embedded PostgreSQL (PGlite, WebAssembly) and its loopback socket
// server in a worker thread. PGlite executes queries synchronously; on the
// main thread a slow query would stall the 20 ms pacing clock of every call.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PgliteServer } from './pglite-server.js';
import { nameThisThread } from '../thread-name.js';

nameThisThread('aybiza-db');

// The password comes in workerData only (db.ts): never an env var, never logged.
const { dataDir, password } = workerData as { dataDir: string; password: string };
const db = await PGlite.create({ dataDir });
// One connection for the main thread and one per media worker (WORKERS), each holding the session in turn (pglite-server.ts).
const server = new PgliteServer({
  db, host: '127.0.0.1', port: 0, maxConnections: 64, password,
  // /metrics is the main thread's: it counts them (db.ts).
  onAuthFailure: (reason) => parentPort!.postMessage({ authFailure: reason }),
});
parentPort!.postMessage({ conn: await server.start() });
parentPort!.on('message', (m: { type?: string }) => {
  if (m.type !== 'stop') return;
  void (async () => {
    await server.stop();
    await db.close();
    parentPort!.postMessage({ stopped: true });
  })();
});
