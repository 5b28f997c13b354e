// The loop shared by the queues kept in PostgreSQL (the webhook outbox, the
// post-call analysis queue): poll for due rows every pollMs, or at once when
// kicked (something was enqueued on this node); one claim at a time per
// node (a kick during a claim asks for one more afterwards); at most
// `concurrency` rows worked on at once; a freed slot looks again rather
// than wait for the poll; drain() stops claiming and waits for the work in
// flight. What a claim is and what is done with a row are the queue's.
import { guard } from '../guard.js';
import { log } from '../log.js';

export interface ClaimLoopOptions<R> {
  /** For log lines ("webhook outbox claim failed"). */
  name: string;
  pollMs: number;
  concurrency: number;
  /** Claims at most `limit` due rows (leased to this node). */
  claim(limit: number): Promise<R[]>;
  /** Works on one claimed row; a rejection is logged. */
  work(row: R): Promise<void>;
  /** What to log with a failed row. */
  describe(row: R): Record<string, unknown>;
}

export class ClaimLoop<R> {
  private readonly inflight = new Set<Promise<void>>();
  private poller: NodeJS.Timeout | null = null;
  private running = false;
  private ticking = false;
  private again = false;

  constructor(private readonly o: ClaimLoopOptions<R>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.poller = setInterval(guard('timer', () => this.kick()), this.o.pollMs);
    this.poller.unref();
    this.kick();
  }

  /** Stops claiming; resolves when the rows in flight are done. */
  async drain(): Promise<void> {
    this.running = false;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  /** Looks for due rows now (coalesced: one claim at a time per node). */
  kick(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    void this.tick()
      .catch((err) => log.warn(`${this.o.name} claim failed`, { err: (err as Error).message }))
      .finally(() => {
        this.ticking = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async tick(): Promise<void> {
    const free = this.o.concurrency - this.inflight.size;
    if (free <= 0) return;
    const rows = await this.o.claim(free);
    for (const row of rows) {
      const p: Promise<void> = this.o.work(row)
        .catch((err) => log.warn(`${this.o.name}: a claimed row was not recorded`, { ...this.o.describe(row), err: (err as Error).message }))
        .finally(() => {
          this.inflight.delete(p);
          // A slot freed while more may be due: look again rather than wait for the poll.
          if (rows.length === free) this.kick();
        });
      this.inflight.add(p);
    }
  }
}
