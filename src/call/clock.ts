// The one 20 ms pacing clock every call's outbound audio rides on (not a
// timer per call). Ticks are scheduled against an absolute timeline, so
// timer jitter does not accumulate into drift; after an event-loop stall the
// missed ticks are run back to back (up to a bound) so playout catches up.
//
// A timer only fires in the event loop's timers phase: when hundreds of
// sockets are readable at once, their handlers all run first and the step
// waits for the lot. The busy handlers (every inbound media message, provider
// audio) therefore call `poll()`, which runs a due step right there: a step
// is then late by at most one handler, not by a whole batch of them.
import { pacingLateTicks } from '../metrics/index.js';
import { setCheckpoint } from '../checkpoint.js';
import { reportInternalError } from '../guard.js';

export const FRAME_MS = 20;
const MAX_CATCH_UP = 5;

export interface Tickable {
  /** Called once per 20 ms frame slot. `lateMs` is how late this slot runs. */
  tick(slot: number, lateMs: number): void;
  /**
   * Its tick threw: it has been taken off the clock (counted as
   * aybiza_internal_errors_total{where="timer"}); end what it belongs to.
   * One member's failure never stops the clock for the others.
   */
  tickFailed?(err: unknown): void;
}

// Members are spread over PHASES groups ticked 5 ms apart: each member still
// ticks once per 20 ms, but no tick sends every call's frame at once (a
// 200-call tick would otherwise hold the event loop for milliseconds and
// delay everything behind it, including the next calls' frames).
const PHASES = 4;
const STEP_MS = FRAME_MS / PHASES;

export class PacingClock {
  private readonly groups: Set<Tickable>[] = Array.from({ length: PHASES }, () => new Set<Tickable>());
  private readonly phaseOf = new Map<Tickable, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly onTimer = () => this.run();
  /** When the next step is due (performance.now() time). */
  private nextDue = Infinity;
  private running = false;
  private origin = 0;
  /** Steps of STEP_MS run so far. */
  private step = 0;
  /** Slots that ran more than one frame late (event-loop stalls). */
  stalls = 0;

  add(t: Tickable): void {
    if (this.phaseOf.has(t)) return;
    let phase = 0;
    for (let p = 1; p < PHASES; p++) if (this.groups[p].size < this.groups[phase].size) phase = p;
    this.groups[phase].add(t);
    this.phaseOf.set(t, phase);
    if (!this.timer) this.start();
  }

  delete(t: Tickable): void {
    const phase = this.phaseOf.get(t);
    if (phase === undefined) return;
    this.groups[phase].delete(t);
    this.phaseOf.delete(t);
    if (this.phaseOf.size === 0) this.stop();
  }

  get size(): number {
    return this.phaseOf.size;
  }

  private start(): void {
    this.origin = performance.now();
    this.step = 0;
    this.schedule();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextDue = Infinity;
  }

  private schedule(): void {
    this.nextDue = this.origin + (this.step + 1) * STEP_MS;
    this.timer = setTimeout(this.onTimer, Math.max(0, this.nextDue - performance.now()));
  }

  /**
   * Runs the due step now if there is one (cheap when there is not: one
   * comparison). Called between units of other work; never re-entered.
   */
  poll(now = performance.now()): void {
    if (now < this.nextDue || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.run(now);
  }

  private run(now = performance.now()): void {
    this.running = true;
    try {
      this.steps(now);
    } finally {
      this.running = false;
    }
    if (this.phaseOf.size > 0) this.schedule();
    else this.stop();
  }

  private steps(now: number): void {
    let behind = Math.floor((now - this.origin) / STEP_MS) - this.step;
    if (behind > MAX_CATCH_UP * PHASES) {
      // A long stall: skip ahead rather than blast a burst of audio.
      this.stalls++;
      this.step += behind - MAX_CATCH_UP * PHASES;
      behind = MAX_CATCH_UP * PHASES;
    }
    for (let i = 0; i < Math.max(1, behind); i++) {
      this.step++;
      const late = now - (this.origin + this.step * STEP_MS);
      const group = this.groups[this.step % PHASES];
      if (group.size === 0) continue;
      if (late > 10) pacingLateTicks.inc();
      const slot = Math.floor(this.step / PHASES);
      for (const m of group) {
        try {
          m.tick(slot, late);
        } catch (err) {
          this.failed(m, err);
        }
      }
    }
  }

  private failed(m: Tickable, err: unknown): void {
    reportInternalError('timer', err);
    this.delete(m);
    try {
      m.tickFailed?.(err);
    } catch (err2) {
      reportInternalError('call', err2);
    }
  }
}

/** The process-wide clock. */
export const clock = new PacingClock();
setCheckpoint(() => clock.poll());
