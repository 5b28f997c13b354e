// The one 20 ms pacing clock every call's outbound audio rides on (not a
// timer per call). Ticks are scheduled against an absolute timeline, so
// timer jitter does not accumulate into drift; after an event-loop stall the
// missed ticks are run back to back (up to a bound) so playout catches up.
import { pacingLateTicks } from '../metrics/index.js';

export const FRAME_MS = 20;
const MAX_CATCH_UP = 5;

export interface Tickable {
  /** Called once per 20 ms frame slot. `lateMs` is how late this slot runs. */
  tick(slot: number, lateMs: number): void;
}

export class PacingClock {
  private readonly members = new Set<Tickable>();
  private timer: NodeJS.Timeout | null = null;
  private origin = 0;
  private slot = 0;
  /** Slots that ran more than one frame late (event-loop stalls). */
  stalls = 0;

  add(t: Tickable): void {
    this.members.add(t);
    if (!this.timer) this.start();
  }

  delete(t: Tickable): void {
    this.members.delete(t);
    if (this.members.size === 0) this.stop();
  }

  get size(): number {
    return this.members.size;
  }

  private start(): void {
    this.origin = performance.now();
    this.slot = 0;
    this.schedule();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    const due = this.origin + (this.slot + 1) * FRAME_MS;
    this.timer = setTimeout(() => this.run(), Math.max(0, due - performance.now()));
  }

  private run(): void {
    const now = performance.now();
    let behind = Math.floor((now - this.origin) / FRAME_MS) - this.slot;
    if (behind > MAX_CATCH_UP) {
      // A long stall: skip ahead rather than blast a burst of audio.
      this.stalls++;
      this.slot += behind - MAX_CATCH_UP;
      behind = MAX_CATCH_UP;
    }
    for (let i = 0; i < Math.max(1, behind); i++) {
      this.slot++;
      const late = now - (this.origin + this.slot * FRAME_MS);
      if (late > 10) pacingLateTicks.inc();
      for (const m of this.members) m.tick(this.slot, late);
    }
    if (this.members.size > 0) this.schedule();
    else this.timer = null;
  }
}

/** The process-wide clock. */
export const clock = new PacingClock();
