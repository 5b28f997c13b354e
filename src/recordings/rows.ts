// The recordings table (migration 12): one row per recorded call, made when
// recording starts and completed at hang-up; the API and the sweeper read it.
import type pg from 'pg';
import type { Calls } from '../store/calls.js';
import type { RecordingChannels } from './recorder.js';
import type { StorageKind } from './storage.js';

export interface RecordingRow {
  callId: string;
  tenantId: string;
  storage: StorageKind;
  key: string;
  channels: RecordingChannels;
  bytes: number;
  durationMs: number;
  readyAt: Date | null;
}

/** GET /v1/calls/{id} shows this when the call has a recording. */
export interface RecordingSummary {
  channels: RecordingChannels;
  durationMs: number;
  bytes: number;
  url: string;
}

function toRow(r: Record<string, unknown>): RecordingRow {
  return {
    callId: r.call_id as string, tenantId: r.tenant_id as string, storage: r.storage as StorageKind, key: r.key as string,
    channels: r.channels as RecordingChannels, bytes: Number(r.bytes), durationMs: r.duration_ms as number,
    readyAt: (r.ready_at as Date | null) ?? null,
  };
}

export class RecordingRows {
  constructor(
    private readonly pool: pg.Pool,
    private readonly calls: Pick<Calls, 'beginRecording'>,
  ) {}

  /** Makes the row (batched with the calls' turns: src/store/write-behind.ts); resolves once it is stored. */
  begin(r: Pick<RecordingRow, 'callId' | 'tenantId' | 'storage' | 'key' | 'channels'>): Promise<void> {
    return this.calls.beginRecording(r);
  }

  async complete(callId: string, storage: StorageKind, bytes: number, durationMs: number): Promise<void> {
    await this.pool.query('update recordings set storage = $2, bytes = $3, duration_ms = $4, ready_at = now() where call_id = $1', [callId, storage, bytes, durationMs]);
  }

  /** The call's recording if the tenant may see it (null tenant: platform admin) and it was not deleted. */
  async find(tenantId: string | null, callId: string): Promise<RecordingRow | null> {
    const r = (
      await this.pool.query('select * from recordings where call_id = $1 and ($2::text is null or tenant_id = $2) and deleted_at is null', [callId, tenantId])
    ).rows[0];
    return r ? toRow(r) : null;
  }

  /** Recordings past their tenant's retention, oldest first. */
  async expired(limit: number): Promise<RecordingRow[]> {
    const r = await this.pool.query(
      `select r.* from recordings r join tenants t on t.id = r.tenant_id
        where r.deleted_at is null and t.recording_retention_days is not null
          and r.created_at < now() - make_interval(days => t.recording_retention_days)
        order by r.created_at limit $1`,
      [limit],
    );
    return r.rows.map(toRow);
  }

  async markDeleted(callId: string): Promise<void> {
    await this.pool.query('update recordings set deleted_at = now() where call_id = $1', [callId]);
  }
}

export function summaryOf(r: RecordingRow): RecordingSummary {
  return { channels: r.channels, durationMs: r.durationMs, bytes: r.bytes, url: `/v1/calls/${r.callId}/recording` };
}
