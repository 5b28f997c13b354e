// WORKERS > 1: new connections go to the least-loaded media worker, not
// wherever the kernel's hash sends them. Each worker's uWebSockets.js app
// listens on the shared port (SO_REUSEPORT); native/reuseport.cc attaches a
// classic BPF program to that group that draws a random number per new
// connection and picks a socket with the weights given here (towards the
// less loaded), replaced whenever a call starts or ends somewhere. This
// build of uWS has no acceptor that could hand sockets to workers; the
// kernel does the handing here.
//
// Socket numbers are the kernel's order of the group: a socket joins at the
// end when it starts listening, and when one leaves the last one takes its
// place. The pool starts its workers' listeners one at a time, so each new
// listening socket found on the port belongs to the worker that just
// reported it listens. Anything unexpected (a socket that is not where this
// model puts it, the kernel refusing the program) turns steering off — the
// kernel's hash spreads connections as before — and says so once.
import { createRequire } from 'node:module';
import { log } from '../log.js';
import { builtAddon } from '../media/native.js';

interface ReuseportAddon {
  listenSockets(port: number): number[];
  steer(fd: number, port: number, weights: number[]): boolean;
  unsteer(fd: number, port: number): boolean;
  /** Connections in fd's accept queue, or -1 if fd is not a listening socket of the group on port. */
  backlog(fd: number, port: number): number;
}

let addon: ReuseportAddon | null | undefined;

/** How strongly a worker's extra calls turn new connections away from it (see steer()). */
const STEER_SHARPNESS = 2;

/** The addon, or null where it is not built (then the kernel's hash spreads connections). */
export function reuseportAddon(): ReuseportAddon | null {
  if (addon === undefined) {
    const file = builtAddon('aybiza_reuseport.node');
    addon = file ? (createRequire(import.meta.url)(file) as ReuseportAddon) : null;
  }
  return addon;
}

export class ConnectionSteering {
  /** Worker index per socket number, in the kernel's order of the group. */
  private readonly group: { worker: number; fd: number }[] = [];
  /** The weights of the program attached now ('' when none or the group changed). */
  private attached = '';
  private off = false;

  private constructor(private readonly port: number, private readonly native: ReuseportAddon) {}

  /** null when the addon is missing (logged). */
  static create(port: number): ConnectionSteering | null {
    const native = reuseportAddon();
    if (!native) {
      log.warn('build/Release/aybiza_reuseport.node missing (run `npx node-gyp build`): the kernel hash spreads connections between workers');
      return null;
    }
    return new ConnectionSteering(port, native);
  }

  get active(): boolean {
    return !this.off;
  }

  /** Worker `worker` has just started listening (no other listener started since the last call). */
  joined(worker: number): void {
    if (this.off) return;
    const known = new Set(this.group.map((g) => g.fd));
    const fresh = this.native.listenSockets(this.port).filter((fd) => !known.has(fd));
    if (fresh.length !== 1) return this.stop(`expected one new listening socket for worker ${worker}, found ${fresh.length}`);
    this.group.push({ worker, fd: fresh[0]! });
    this.attached = '';
  }

  /** Worker `worker`'s listening socket is closed (it exited): the group's last socket takes its place. */
  left(worker: number): void {
    const i = this.group.findIndex((g) => g.worker === worker);
    if (i < 0) return;
    const last = this.group.pop()!;
    if (i < this.group.length) this.group[i] = last;
    this.attached = '';
    if (!this.off && this.group.length > 0) {
      // Every socket the model still holds must be a listener on the port.
      const live = new Set(this.native.listenSockets(this.port));
      if (this.group.some((g) => !live.has(g.fd))) this.stop('a worker listening socket is gone');
    }
  }

  /**
   * Weights the next connections towards the less-loaded workers
   * (`load(worker)`, plus the connections waiting in its socket's accept
   * queue: the kernel has given them to that worker already, and a busy
   * worker accepts late — counted only once it reports them, it would look
   * less loaded the busier it is and draw still more): each socket's chance is proportional to
   * e^(−STEER_SHARPNESS × (its load − the lowest load)). Equal loads share
   * evenly, so a burst of connections that arrive before any of them is
   * counted spreads at random as before; a worker one call ahead gets about
   * one new connection in eight, two ahead one in fifty.
   */
  steer(load: (worker: number) => number, eligible: (worker: number) => boolean): void {
    if (this.off || this.group.length < 2) return;
    const loads = this.group.map((g) => (eligible(g.worker) ? load(g.worker) + Math.max(0, this.native.backlog(g.fd, this.port)) : Infinity));
    const least = Math.min(...loads);
    if (!Number.isFinite(least)) return;
    const weights = loads.map((l) => (Number.isFinite(l) ? Math.exp(-STEER_SHARPNESS * (l - least)) : 0));
    const key = weights.map((w) => w.toFixed(6)).join(',');
    if (key === this.attached) return;
    // The program belongs to the group: attached through any of its sockets.
    if (!this.native.steer(this.group[0]!.fd, this.port, weights)) {
      // A worker's socket can be gone before its exit is reported (left() then
      // takes it out of the group): skip this turn rather than give up.
      const live = new Set(this.native.listenSockets(this.port));
      if (this.group.some((g) => !live.has(g.fd))) return;
      return this.stop('the kernel refused the steering program');
    }
    this.attached = key;
  }

  /** Back to the kernel's hash (shutdown, or anything unexpected). */
  stop(why?: string): void {
    if (this.off) return;
    this.off = true;
    for (const g of this.group) if (this.native.unsteer(g.fd, this.port)) break;
    if (why) log.warn('connection steering off; the kernel hash spreads connections between workers', { reason: why });
  }

  /** Worker per socket number (tests). */
  order(): number[] {
    return this.group.map((g) => g.worker);
  }
}
