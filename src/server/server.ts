// The HTTP/WebSocket front: one uWS app, the health and metrics routes, and
// the lifecycle every other part hooks into (start → ready → draining → closed).
import { uws, uwsNative, type TemplatedApp, type us_listen_socket } from './uws.js';
import { guardHttp, Router, sendReply } from './http.js';
import { buildInfo, registry } from '../metrics/index.js';
import { log } from '../log.js';
import { VERSION } from '../version.js';

/** A part of the server with a lifecycle (store, providers, gateways, SIP). */
export interface Component {
  readonly name: string;
  /** Called before the listener opens; routes are registered by then. */
  start?(): Promise<void>;
  /** readyz is 503 while any component reports false (e.g. database unreachable). */
  ready?(): Promise<boolean> | boolean;
  /** Stop taking new work; resolve when in-flight work has finished. */
  drain?(): Promise<void>;
  /** Release everything (sockets, timers, native handles). */
  close?(): Promise<void>;
}

export type ServerState = 'starting' | 'ready' | 'draining' | 'closed';

export interface ServerOptions {
  host: string;
  port: number;
  drainTimeoutS: number;
  bodyLimit?: number;
  /**
   * A media worker's server (WORKERS > 1): its index, and the process-wide
   * /metrics and /readyz, which the main thread assembles from every worker.
   */
  worker?: { index: number; metrics(): Promise<string>; ready(): Promise<boolean> };
}

export class Server {
  readonly app: TemplatedApp;
  readonly router: Router;
  private readonly components: Component[] = [];
  private listenSocket: us_listen_socket | null = null;
  private _state: ServerState = 'starting';
  private _port = 0;

  constructor(private readonly opts: ServerOptions) {
    this.app = uws.App();
    this.router = new Router(this.app, { bodyLimit: opts.bodyLimit });
    buildInfo.set({ version: VERSION, uws_native: uwsNative ? '1' : '0' }, 1);
    // Raw uWS routes go through the same guard as the router's (src/guard.ts).
    this.app.get('/healthz', guardHttp('/healthz', (res, _req, state) => {
      sendReply(res, state, '/healthz', { status: 200, body: { status: 'ok' } });
    }));
    this.app.get('/readyz', guardHttp('/readyz', async (res, _req, state) => {
      const ok = this.opts.worker ? (await this.isReady()) && (await this.opts.worker.ready().catch(() => false)) : await this.isReady();
      sendReply(res, state, '/readyz', { status: ok ? 200 : 503, body: { status: ok ? 'ready' : this._state === 'ready' ? 'unavailable' : this._state } });
    }));
    this.app.get('/metrics', guardHttp('/metrics', async (res, _req, state) => {
      const text = this.opts.worker ? await this.opts.worker.metrics() : await registry.metrics();
      sendReply(res, state, '/metrics', { status: 200, headers: { 'content-type': registry.contentType }, body: text });
    }));
  }

  get state(): ServerState {
    return this._state;
  }

  get port(): number {
    return this._port;
  }

  use(component: Component): void {
    this.components.push(component);
  }

  async isReady(): Promise<boolean> {
    if (this._state !== 'ready') return false;
    for (const c of this.components) {
      if (!c.ready) continue;
      try {
        if (!(await c.ready())) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  async listen(): Promise<number> {
    for (const c of this.components) await c.start?.();
    this.router.fallback();
    const socket = await new Promise<us_listen_socket | false>((resolve) =>
      this.app.listen(this.opts.host, this.opts.port, (s) => resolve(s)),
    );
    if (!socket) throw new Error(`cannot listen on ${this.opts.host}:${this.opts.port} (PORT/HOST): address in use or not permitted`);
    this.listenSocket = socket;
    this._port = uws.us_socket_local_port(socket as never);
    this._state = 'ready';
    // A worker's line differs: 'listening' means the whole process listens (src/server/workers.ts logs it).
    if (this.opts.worker) log.info('worker listening', { worker: this.opts.worker.index, port: this._port });
    else log.info('listening', { host: this.opts.host, port: this._port, version: VERSION });
    return this._port;
  }

  /**
   * Graceful stop: readyz turns 503 at once, components drain (active calls
   * finish) for at most drainTimeoutS, then listeners and components close.
   */
  async shutdown(): Promise<void> {
    if (this._state === 'draining' || this._state === 'closed') return;
    this._state = 'draining';
    log.info('draining', { timeoutS: this.opts.drainTimeoutS });
    const drained = Promise.allSettled(this.components.map((c) => c.drain?.()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.drainTimeoutS * 1000);
    });
    const outcome = await Promise.race([drained.then(() => 'drained' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') log.warn('drain timeout reached; closing active work');
    this.closeListener();
    for (const c of [...this.components].reverse()) {
      try {
        await c.close?.();
      } catch (err) {
        log.error('component close failed', { component: c.name, err });
      }
    }
    this.closeSockets();
    this._state = 'closed';
    log.info(this.opts.worker ? 'worker stopped' : 'stopped', this.opts.worker ? { worker: this.opts.worker.index } : {});
  }

  private closeListener(): void {
    if (this.listenSocket) {
      uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  /**
   * Closes the listener and every remaining socket (keep-alive HTTP, stray
   * WebSockets) at once. A worker thread calls it on its way out whatever
   * the cause: a uWS handle left open when a thread ends aborts the process.
   */
  closeSockets(): void {
    this.closeListener();
    (this.app as unknown as { close?: () => void }).close?.();
  }
}
