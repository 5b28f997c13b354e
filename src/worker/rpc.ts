// One narrow channel between the main thread and a media worker (WORKERS):
// requests with replies, and one-way notes. Both ends use this class; what
// crosses is plain structured-clone data, nothing else (mediasoup's channel).
import type { MessagePort, Worker } from 'node:worker_threads';
import { guard } from '../guard.js';

type Port = Pick<MessagePort | Worker, 'postMessage' | 'on'>;

interface Request { t: 'req'; id: number; op: string; args: unknown[] }
interface Reply { t: 'rep'; id: number; ok: boolean; value?: unknown; error?: string }
interface Note { t: 'note'; op: string; args: unknown[] }
type Message = Request | Reply | Note;

export class RpcError extends Error {
  readonly code = 'AYB_ERR_WORKER_RPC';
}

export class Rpc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private readonly handlers = new Map<string, (...args: never[]) => unknown>();
  private closed = false;

  constructor(private readonly port: Port, private readonly timeoutMs = 15_000) {
    port.on('message', guard('worker', (m: Message) => this.receive(m)));
  }

  /** Answers `op` requests and notes from the other side. */
  handle<A extends unknown[]>(op: string, fn: (...args: A) => unknown): void {
    this.handlers.set(op, fn as (...args: never[]) => unknown);
  }

  call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    return this.callWithin<T>(this.timeoutMs, op, ...args);
  }

  callWithin<T = unknown>(timeoutMs: number, op: string, ...args: unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new RpcError(`${op}: channel closed`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(`${op}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.port.postMessage({ t: 'req', id, op, args } satisfies Request);
    });
  }

  notify(op: string, ...args: unknown[]): void {
    if (!this.closed) this.port.postMessage({ t: 'note', op, args } satisfies Note);
  }

  /** The other side is gone: every waiting call fails now. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RpcError('channel closed'));
    }
    this.pending.clear();
  }

  private receive(m: Message): void {
    if (m.t === 'rep') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.value);
      else p.reject(new RpcError(m.error ?? 'failed'));
      return;
    }
    const fn = this.handlers.get(m.op);
    if (m.t === 'note') {
      fn?.(...(m.args as never[]));
      return;
    }
    const reply = (r: Omit<Reply, 't' | 'id'>) => {
      if (!this.closed) this.port.postMessage({ t: 'rep', id: m.id, ...r } satisfies Reply);
    };
    if (!fn) return reply({ ok: false, error: `unknown request ${m.op}` });
    Promise.resolve()
      .then(() => fn(...(m.args as never[])))
      .then((value) => reply({ ok: true, value }), (err: unknown) => reply({ ok: false, error: (err as Error)?.message ?? String(err) }));
  }
}
