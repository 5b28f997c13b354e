// A media worker thread (WORKERS > 1): its own uWebSockets.js app on the
// shared port (the kernel spreads connections between the workers), its own
// 20 ms pacing clock, call sessions and provider connections. The main thread
// (src/server/workers.ts) owns the database setup, in-process state, SIP
// signalling, the process-wide /metrics and /readyz, drain and restarts.
import { OutboundDialer } from '../outbound/dialer.js';
import { RemoteSipCarrier } from './remote-carrier.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { conversations, createApp, type App } from '../app.js';
import type { CallSession } from '../call/session.js';
import { loadConfig } from '../config.js';
import { installProcessGuards } from '../guard.js';
import { flushLogs, log, setLogLevel } from '../log.js';
import { registry, workerEventLoopLag } from '../metrics/index.js';
import { Rpc } from './rpc.js';
import { remoteState } from './shared-state.js';
import { SipMediaWorker } from './sip-media.js';
import { closeSocketsAtThreadExit } from './thread-exit.js';
import { nameThisThread } from '../thread-name.js';
import type { SharedEmulators } from '../providers/emulators/thread.js';

export interface WorkerData {
  index: number;
  port: number;
  /** The embedded database's socket URL; absent with DATABASE_URL. */
  databaseUrl?: string;
  /** Node id of the main thread's in-process state; absent with REDIS_URL. */
  stateNodeId?: string;
  /** The pool's Redis key prefix (tests), when it has one. */
  redisPrefix?: string;
  /** The process's provider emulators, when it emulates any (one set for every worker). */
  emulators?: SharedEmulators;
  /** One Int32: media streams accepted whose call has not started yet, read by the main thread's steering. */
  connecting: SharedArrayBuffer;
}

const data = workerData as WorkerData;
nameThisThread(`aybiza-w${data.index}`);
const rpc = new Rpc(parentPort!);
const config = { ...loadConfig(), port: data.port };
setLogLevel(config.logLevel);
installProcessGuards();
closeSocketsAtThreadExit();

let others = 0;
const connecting = new Int32Array(data.connecting);
rpc.handle('others', (n: number) => void (others = n));

const LAG_RESOLUTION_MS = 10;
const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
lag.enable();
const worker = String(data.index);

let app: App | null = null;
let sipMedia: SipMediaWorker | null = null;
let started: Promise<unknown> = Promise.resolve();
// Whatever ends this thread (a return, process.exit, an error), its uWS
// sockets close first: a uWS handle still open when a thread ends aborts the
// whole process (reference: uws.md).
let exiting = false;
/** Counted by the main thread per worker (MAX_CONCURRENT_CALLS, least-loaded choice, ending them if this thread dies). */
function onCall(s: CallSession): void {
  rpc.notify('call', s.callId, s.agent.tenantId);
  s.whenEnded(() => exiting || rpc.notify('ended', s.callId));
}
process.on('exit', () => {
  // Calls cut off here are the main thread's to report (it stores them as ended).
  exiting = true;
  app?.server.closeSockets();
  flushLogs();
});

rpc.handle('metrics-json', async () => {
  // The histogram holds whole timer intervals: the delay is what exceeds the resolution.
  const delay = (ns: number) => Math.max(0, ns / 1e9 - LAG_RESOLUTION_MS / 1000);
  workerEventLoopLag.set({ worker, quantile: 'p50' }, delay(lag.percentile(50)));
  workerEventLoopLag.set({ worker, quantile: 'p99' }, delay(lag.percentile(99)));
  workerEventLoopLag.set({ worker, quantile: 'max' }, delay(lag.max));
  lag.reset();
  return registry.getMetricsAsJSON();
});
rpc.handle('ready', () => app?.server.isReady() ?? false);
// Registered before the app exists: a shutdown during startup waits for it, then stops it.
rpc.handle('shutdown', async () => {
  await started.catch(() => {});
  await app?.server.shutdown();
  // After the reply has gone out: the thread ends here, not when its loop happens to empty.
  setTimeout(() => process.exit(0), 50);
  return true;
});
// Test hook (AYBIZA_WORKER_FAULTS=1 only): ends this thread as a crash would.
if (process.env.AYBIZA_WORKER_FAULTS === '1') {
  rpc.handle('crash', () => {
    log.warn('worker crashing on request (AYBIZA_WORKER_FAULTS)', { worker: data.index });
    setImmediate(() => process.exit(70));
  });
}
started = createApp(config, {
  redisPrefix: data.redisPrefix,
  worker: {
    index: data.index,
    state: data.stateNodeId ? remoteState(rpc, data.stateNodeId) : undefined,
    databaseUrl: data.databaseUrl,
    // The gateway counts its own Twilio sessions; the rest of this worker's calls are its SIP calls.
    otherCalls: () => others + (sipMedia?.liveCalls ?? 0),
    onCall,
    connecting: (delta) => void Atomics.add(connecting, 0, delta),
    metrics: () => rpc.call<string>('metrics'),
    ready: () => rpc.call<boolean>('ready'),
    emulators: data.emulators,
  },
}).then(async (a) => {
  app = a;
  // SIP calls' media (signalling stays in the main thread: src/worker/sip-handoff.ts).
  if (config.sipPort !== 0) {
    // Outbound SIP calls (the API, campaigns) are placed by the main thread's SIP carrier.
    OutboundDialer.for(a.store).register(new RemoteSipCarrier(rpc));
    const conversation = conversations(config, a.store, a.providers);
    a.server.use(sipMedia = new SipMediaWorker({
      rpc, config, store: a.store, providers: a.providers,
      onSession: (s) => {
        onCall(s);
        return conversation(s);
      },
    }));
  }
  // One worker starts listening at a time: the main thread learns which
  // listening socket is whose (src/server/steering.ts). Past the wait, listen anyway.
  await rpc.callWithin(30_000, 'may-listen').catch(() => {});
  const port = await a.server.listen();
  // What this worker logged while starting is out before the process says 'listening'.
  flushLogs();
  rpc.notify('listening', port);
});
await started.catch((err: Error) => {
  // Not listening: nothing here is of use. The main thread sees the exit (and fails startup, or restarts us).
  log.error('worker failed to start', { worker: data.index, err });
  process.exit(1);
});

