// Retention: recordings older than their tenant's recordingRetentionDays are
// deleted (the file or the bucket's object) and their row marked deleted.
// Runs on one thread per node (the leader, like the webhook outbox); two
// nodes sweeping at once both delete the same object, which is harmless.
import type { Component } from '../server/server.js';
import { guard, reportInternalError } from '../guard.js';
import { log } from '../log.js';
import type { Recordings } from './recordings.js';

const BATCH = 100;

export class RecordingSweeper implements Component {
  readonly name = 'recording-sweeper';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(private readonly recordings: Recordings, private readonly everyMs = 3600_000) {}

  async start(): Promise<void> {
    this.timer = setInterval(guard('timer', () => void this.sweep().catch((err) => reportInternalError('store', err))), this.everyMs);
    this.timer.unref();
  }

  /** Deletes every expired recording now; returns how many. */
  sweep(): Promise<number> {
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  private async run(): Promise<number> {
    let deleted = 0;
    for (;;) {
      const batch = await this.recordings.rows.expired(BATCH);
      for (const r of batch) {
        // A recording never completed (a crash) is still the local file.
        const storage = r.readyAt && r.storage === this.recordings.storage.kind ? this.recordings.storage : this.recordings.local;
        await storage.delete(r.key);
        await this.recordings.rows.markDeleted(r.callId);
        deleted++;
      }
      if (batch.length < BATCH) break;
    }
    if (deleted) log.info('expired recordings deleted', { recordings: deleted });
    return deleted;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
