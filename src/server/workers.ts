// WORKERS > 1: the main thread of `aybiza serve`. It keeps what must exist
// once per process — the store's setup (migrations, the embedded database,
// the in-process shared state), SIP signalling, drain, the process-wide
// /metrics and /readyz — and runs one media worker thread per core
// (src/worker/main.ts), each with its own uWebSockets.js app on the same port,
// its own pacing clock, call sessions and provider connections.
//
// Calls are counted per worker from the workers' own notes (call / ended);
// each worker hears how many calls the others carry, so MAX_CONCURRENT_CALLS
// holds across them. A worker that ends unexpectedly has its calls stored as
// failed ("worker exited"), their tenant slots released, and is started again;
// the process and the other workers' calls go on.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { conversations, openStore, registerSipCarrier } from '../app.js';
import { OutboundDialer } from '../outbound/dialer.js';
import type { Config } from '../config.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import { buildInfo, mergedMetrics, workerCallsActive, workerRestarts, workerStreamsStarting } from '../metrics/index.js';
import { createProviders, emulated } from '../providers/index.js';
import { EmulatorThread } from '../providers/emulators/thread.js';
import { emulatorOptions } from '../providers/emulators/profiles.js';
import type { Providers } from '../providers/types.js';
import type { ControlPlane } from '../store/index.js';
import { VERSION } from '../version.js';
import { Recordings } from '../recordings/recordings.js';
import { Rpc } from '../worker/rpc.js';
import { serveState } from '../worker/shared-state.js';
import { serveSipCarrier } from '../worker/remote-carrier.js';
import type { WorkerData } from '../worker/main.js';
import { SipHandoff } from '../worker/sip-handoff.js';
import { SipServer } from '../../sip/index.js';
import { ConnectionSteering } from './steering.js';
import { uwsNative } from './uws.js';

/** A port free on `host` right now (for PORT=0). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface PoolOptions {
  /**
   * The environment the workers read their config from (they call
   * loadConfig() themselves); default the process's. An in-process test
   * server passes the variables its config was built from.
   */
  env?: Record<string, string | undefined>;
  /** Redis key prefix for the main thread and every worker (tests isolate themselves with it). */
  redisPrefix?: string;
}

const RESTART_DELAY_MS = [200, 1000, 5000];
/** How often the steering weights are recomputed besides on every reported call start and end. */
const STEER_EVERY_MS = 50;
const METRICS_TIMEOUT_MS = 5000;

interface Slot {
  index: number;
  worker: Worker;
  rpc: Rpc;
  /** callId → tenantId of the calls this worker carries. */
  calls: Map<string, string>;
  /** SIP calls handed to it that it has not reported yet (counted for the least-loaded choice). */
  reserved: Set<string>;
  /** Its media streams accepted whose call it has not reported yet (one Int32 it writes; see WorkerData.connecting). */
  connecting: Int32Array;
  listening: boolean;
  /** Expected to end (shutdown): no restart. */
  stopping: boolean;
  /** Lets the next worker start listening (this one listens, or has exited). */
  releaseListen?: () => void;
  exited: Promise<number>;
}

export class WorkerPool {
  private readonly slots: (Slot | null)[] = [];
  private port = 0;
  private state: 'starting' | 'ready' | 'draining' | 'closed' = 'starting';
  private sip: SipServer | null = null;
  private handoff: SipHandoff | null = null;
  private nextPick = 0;
  private providers: Providers | null = null;
  /** One set of provider emulators for every thread, when the config emulates any. */
  private emulators: EmulatorThread | null = null;
  private readonly crashes: number[] = [];
  private faults = 0;
  /** New connections to the least-loaded worker (null: one worker, or the kernel's hash). */
  private steering: ConnectionSteering | null = null;
  /** Workers start listening one at a time (see steering.ts): the turn after the last one granted. */
  private listenTurn: Promise<void> = Promise.resolve();
  private steerTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly config: Config, readonly store: ControlPlane, private readonly opts: PoolOptions) {}

  /** Opens the store, SIP (if enabled) and WORKERS media workers on PORT; resolves with the port once all listen. */
  static async start(config: Config, opts: PoolOptions = {}): Promise<WorkerPool> {
    const store = await openStore(config, { redisPrefix: opts.redisPrefix });
    const pool = new WorkerPool(config, store, opts);
    try {
      await pool.open();
    } catch (err) {
      // Workers already listening must end before the process does (an open uWS handle at thread exit aborts it).
      pool.state = 'closed';
      await pool.stopWorkers(10_000);
      await pool.closeMain();
      throw err;
    }
    return pool;
  }

  get listeningPort(): number {
    return this.port;
  }

  /** SIP signalling (this thread), null when SIP_PORT=0. */
  get sipServer(): SipServer | null {
    return this.sip;
  }

  /** Calls the whole process carries: every worker's and the main thread's SIP calls. */
  totalCalls(): number {
    let n = this.sip?.calls.size ?? 0;
    for (const s of this.slots) n += (s?.calls.size ?? 0) + (s?.reserved.size ?? 0);
    return n;
  }

  /** Calls per worker index (for tests and the load report; /metrics has aybiza_worker_calls_active). */
  callsPerWorker(): number[] {
    return this.slots.map((s) => s?.calls.size ?? 0);
  }

  private async open(): Promise<void> {
    buildInfo.set({ version: VERSION, uws_native: uwsNative ? '1' : '0' }, 1);
    const c = this.config;
    const emulate = emulated(c);
    if (emulate.deepgram || emulate.bedrock) {
      this.emulators = await EmulatorThread.start(emulatorOptions(c.emulator));
      log.info('provider emulators: one thread for every worker', { deepgram: this.emulators.deepgramUrl, bedrock: this.emulators.bedrockUrl });
    }
    if (c.sipPort !== 0) {
      this.providers = await createProviders(c, this.emulators ?? undefined);
      this.handoff = new SipHandoff(this.store, (callId) => this.pick(callId), (w, callId) => this.slots[w.index]?.reserved.delete(callId));
      this.sip = new SipServer({
        config: c, store: this.store, providers: this.providers, handoff: this.handoff,
        otherCalls: () => this.totalCalls() - (this.sip?.calls.size ?? 0),
        onSession: conversations(c, this.store, this.providers),
      });
      await this.sip.start();
      // Outbound SIP calls are placed here, for every worker (src/worker/remote-carrier.ts); their media stays on this thread.
      registerSipCarrier(c, this.store, this.sip);
    }
    if (this.store.state.kind === 'memory') {
      // Published messages (cache invalidations) reach every worker, as Redis pub/sub would.
      this.store.state.subscribe((m) => {
        for (const s of this.slots) s?.rpc.notify('state-message', m);
      });
    }
    // uWS shares a port between threads only when it was asked for that port
    // (with 0 each listener gets its own): PORT=0 becomes a free port chosen
    // here, tried again should another process take it first.
    for (let attempt = 1; ; attempt++) {
      this.port = c.port || (await freePort(c.host));
      this.steering = c.workers > 1 ? ConnectionSteering.create(this.port) : null;
      const started = await Promise.allSettled(Array.from({ length: c.workers }, (_, i) => this.spawn(i)));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failed) break;
      this.steering?.stop();
      if (c.port || attempt === 3) throw failed.reason;
      await this.stopWorkers(10_000);
    }
    this.state = 'ready';
    if (this.steering) this.steerTimer = setInterval(guard('timer', () => this.steer()), STEER_EVERY_MS).unref();
    log.info('listening', { host: c.host, port: this.port, version: VERSION, workers: c.workers });
  }

  /** The compiled worker script (vitest runs this file from TypeScript; a worker always runs from dist/). */
  private scriptPath(): string {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const beside = path.join(here, '..', 'worker', 'main.js');
    return fs.existsSync(beside) ? beside : path.join(here, '..', '..', 'dist', 'src', 'worker', 'main.js');
  }

  /** Starts worker `index`; resolves with its port once it listens, rejects if it ends first. */
  private spawn(index: number): Promise<number> {
    const data: WorkerData = {
      index,
      port: this.port,
      databaseUrl: this.store.db.embeddedUrl,
      stateNodeId: this.store.state.kind === 'memory' ? this.store.state.nodeId : undefined,
      redisPrefix: this.opts.redisPrefix,
      emulators: this.emulators ? { deepgramUrl: this.emulators.deepgramUrl, bedrockUrl: this.emulators.bedrockUrl } : undefined,
      connecting: new SharedArrayBuffer(4),
    };
    const worker = new Worker(this.scriptPath(), { workerData: data, stdout: false, stderr: false, env: this.opts.env ?? process.env });
    const rpc = new Rpc(worker);
    let resolveExit!: (code: number) => void;
    const slot: Slot = { index, worker, rpc, calls: new Map(), reserved: new Set(), connecting: new Int32Array(data.connecting), listening: false, stopping: false, exited: new Promise((r) => (resolveExit = r)) };
    this.slots[index] = slot;
    if (this.store.state.kind === 'memory') serveState(this.store.state, rpc);
    this.handoff?.attach({ index, rpc });
    if (this.sip) serveSipCarrier(rpc, OutboundDialer.for(this.store));
    rpc.handle('call', (callId: string, tenantId: string) => {
      slot.calls.set(callId, tenantId);
      slot.reserved.delete(callId);
      this.spreadLoad();
    });
    rpc.handle('ended', (callId: string) => {
      slot.calls.delete(callId);
      this.spreadLoad();
    });
    rpc.handle('may-listen', () => {
      const turn = this.listenTurn;
      this.listenTurn = new Promise<void>((r) => (slot.releaseListen = r));
      return turn;
    });
    rpc.handle('metrics', () => this.metrics());
    rpc.handle('ready', () => this.ready());
    return new Promise<number>((resolve, reject) => {
      rpc.handle('listening', (port: number) => {
        slot.listening = true;
        this.steering?.joined(index);
        slot.releaseListen?.();
        this.spreadLoad();
        resolve(port);
      });
      worker.on('error', guard('worker', (err: Error) => log.error('worker failed', { worker: index, err })));
      worker.on('exit', guard('worker', (code: number) => {
        rpc.close();
        slot.releaseListen?.();
        if (slot.listening) this.steering?.left(index);
        resolveExit(code);
        if (!slot.listening) reject(new Error(`worker ${index} exited (${code}) before listening`));
        this.exited(slot, code);
      }));
    });
  }

  /** Tells each worker how many calls the rest of the process carries; new connections go to the least loaded. */
  private spreadLoad(): void {
    const total = this.totalCalls();
    for (const s of this.slots) s?.rpc.notify('others', total - s.calls.size);
    this.steer();
  }

  /**
   * New connections towards the least-loaded worker: the calls it reports,
   * the SIP calls handed to it, the streams it has accepted but not yet
   * reported as calls, and (steering.ts) the connections waiting for it to
   * accept them. Also run every STEER_EVERY_MS: those last two change
   * without a message, and a busy worker's reports lag the most.
   */
  private steer(): void {
    this.steering?.steer(
      (w) => {
        const s = this.slots[w];
        return s ? s.calls.size + s.reserved.size + Math.max(0, Atomics.load(s.connecting, 0)) : 0;
      },
      (w) => !!this.slots[w]?.listening && !this.slots[w]!.stopping,
    );
  }


  private exited(slot: Slot, code: number): void {
    if (this.slots[slot.index] === slot) this.slots[slot.index] = null;
    const calls = [...slot.calls];
    slot.calls.clear();
    slot.reserved.clear();
    this.handoff?.workerExited(slot.index);
    this.spreadLoad();
    if (slot.stopping) return;
    // Its calls died with it: stored as ended, their tenant slots freed now rather than at the slot TTL.
    log.error('worker exited unexpectedly; its calls are ended and it is started again', { worker: slot.index, code, calls: calls.length });
    for (const [callId, tenantId] of calls) {
      this.store.calls.updateCallStatus(callId, 'failed', 'worker exited').catch((err) => reportInternalError('worker', err));
      this.store.state.releaseCallSlot(tenantId, callId).catch((err) => reportInternalError('worker', err));
      this.store.state.unregisterCall(callId).catch(() => {});
    }
    if (this.state !== 'ready' && this.state !== 'starting') return;
    if (slot.listening) {
      workerRestarts.inc();
      this.restartLater(slot.index);
    }
  }

  private restartLater(index: number): void {
    const now = Date.now();
    this.crashes.push(now);
    while (this.crashes.length && this.crashes[0]! < now - 60_000) this.crashes.shift();
    const delay = RESTART_DELAY_MS[Math.min(this.crashes.length - 1, RESTART_DELAY_MS.length - 1)]!;
    setTimeout(guard('worker', () => {
      if (this.state !== 'ready') return;
      this.spawn(index).then(
        () => log.info('worker restarted', { worker: index }),
        (err) => {
          log.error('worker restart failed', { worker: index, err });
          this.restartLater(index);
        },
      );
    }), delay).unref();
  }

  /** The least-loaded listening worker for a SIP call's media (ties go round in turn); it counts the call from now. */
  private pick(callId: string): { index: number; rpc: Rpc } | null {
    const live = this.slots.filter((s): s is Slot => !!s?.listening && !s.stopping);
    if (live.length === 0) return null;
    const start = this.nextPick++ % live.length;
    let best = live[start]!;
    for (let i = 1; i < live.length; i++) {
      const s = live[(start + i) % live.length]!;
      if (s.calls.size + s.reserved.size < best.calls.size + best.reserved.size) best = s;
    }
    best.reserved.add(callId);
    this.spreadLoad();
    return { index: best.index, rpc: best.rpc };
  }

  /** The process-wide /metrics: this thread's series merged with every live worker's. */
  async metrics(): Promise<string> {
    workerCallsActive.reset();
    workerStreamsStarting.reset();
    const parts: MetricObjectWithValues<MetricValue<string>>[][] = [];
    await Promise.all(this.slots.map(async (s) => {
      if (!s?.listening) return;
      workerCallsActive.set({ worker: String(s.index) }, s.calls.size);
      workerStreamsStarting.set({ worker: String(s.index) }, Math.max(0, Atomics.load(s.connecting, 0)));
      const json = await s.rpc.callWithin<MetricObjectWithValues<MetricValue<string>>[]>(METRICS_TIMEOUT_MS, 'metrics-json').catch(() => null);
      if (json) parts.push(json);
    }));
    return mergedMetrics(parts);
  }

  /** Ready when this thread and its store are, and every running worker says so. */
  async ready(): Promise<boolean> {
    if (this.state !== 'ready') return false;
    if (!(await this.store.ready().catch(() => false))) return false;
    const live = this.slots.filter((s): s is Slot => !!s?.listening);
    if (live.length === 0) return false;
    const answers = await Promise.all(live.map((s) => s.rpc.call<boolean>('ready').catch(() => false)));
    return answers.every(Boolean);
  }

  /**
   * Test hook (AYBIZA_WORKER_FAULTS=1): ends the busiest worker, in turn as a
   * crash inside it would (it exits) and as one from outside would (terminated
   * from here: no more JavaScript runs in it).
   */
  crashBusiest(): void {
    const live = this.slots.filter((s): s is Slot => !!s?.listening);
    const busiest = live.sort((a, b) => b.calls.size - a.calls.size)[0];
    if (!busiest) return;
    if (this.faults++ % 2 === 0) busiest.rpc.call('crash').catch(() => {});
    else void busiest.worker.terminate();
  }

  /**
   * SIGTERM/SIGINT: every worker drains (its readyz turns 503 at once, its
   * calls may finish for DRAIN_TIMEOUT_S) and stops, SIP drains alongside,
   * then the main thread's parts close.
   */
  async shutdown(): Promise<void> {
    if (this.state === 'draining' || this.state === 'closed') return;
    this.state = 'draining';
    // Draining workers close their listeners: the kernel's hash is all that is left to choose.
    this.steering?.stop();
    if (this.steerTimer) clearInterval(this.steerTimer);
    log.info('draining', { timeoutS: this.config.drainTimeoutS, workers: this.config.workers });
    const sip = this.sip ? this.drainSip(this.sip) : Promise.resolve();
    await Promise.all([this.stopWorkers((this.config.drainTimeoutS + 30) * 1000), sip]);
    this.handoff?.hangupAll();
    await this.closeMain();
    this.state = 'closed';
    log.info('stopped');
  }

  /** Each worker drains and closes its sockets, then its thread ends; resolves when all have. */
  private async stopWorkers(budgetMs: number): Promise<void> {
    await Promise.all(this.slots.filter((s): s is Slot => !!s).map(async (s) => {
      s.stopping = true;
      await s.rpc.callWithin(budgetMs, 'shutdown').catch((err) => log.warn('worker shutdown failed', { worker: s.index, err: (err as Error).message }));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([s.exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
      clearTimeout(timer);
    }));
  }

  private async drainSip(sip: SipServer): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, this.config.drainTimeoutS * 1000)));
    await Promise.race([sip.drain(), timeout]);
    clearTimeout(timer);
  }

  private async closeMain(): Promise<void> {
    for (const [name, close] of [
      ['sip', () => this.sip?.close()],
      // This thread's calls (outbound SIP keeps its media here) finish their recordings before the store closes.
      ['recordings', () => Recordings.of(this.store)?.close()],
      ['providers', () => this.providers?.close()],
      ['emulators', () => this.emulators?.close()],
      ['control-plane', () => this.store.close()],
    ] as const) {
      try {
        await close();
      } catch (err) {
        log.error('component close failed', { component: name, err });
      }
    }
  }
}
