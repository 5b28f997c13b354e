// The producer side of the post-call analysis queue: when a call ends (the
// call store's lifecycle sink, whichever node, thread or path ended it), one
// statement adds a job if the call has at least one turn and its agent
// version has `analysis` or `memory.enabled`. The job row is the queue
// (src/postcall/queue.ts claims it); a call is queued once however often
// its end is reported.
import type { Database } from '../store/db.js';
import type { CallRecord } from '../store/types.js';
import { reportInternalError } from '../guard.js';

export class AnalysisJobs {
  /** Told after a job was added (the local queue looks at once rather than at its next poll). */
  onEnqueued: (() => void) | null = null;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly db: Database) {}

  /** Adds the call's job when it qualifies; true when one was added. */
  async enqueue(callId: string): Promise<boolean> {
    const r = await this.db.pool.query(
      `insert into analysis_jobs (call_id, tenant_id)
       select c.id, c.tenant_id from calls c
         join agent_versions v on v.agent_id = c.agent_id and v.version = c.agent_version
        where c.id = $1
          and (v.config->'analysis' is not null or coalesce(v.config->'memory'->>'enabled', 'false') = 'true')
          and exists (select 1 from turns t where t.call_id = c.id)
       on conflict (call_id) do nothing`,
      [callId],
    );
    const added = (r.rowCount ?? 0) > 0;
    if (added) this.onEnqueued?.();
    return added;
  }

  /** For the call path: never throws, never awaited; a failure is counted and logged (the call has ended anyway). */
  readonly callEnded = (call: CallRecord): void => {
    const p = this.enqueue(call.id)
      .catch((err) => reportInternalError('store', err, { what: 'analysis enqueue', callId: call.id }))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  };

  /** Waits for jobs being written (shutdown, before the database closes). */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
