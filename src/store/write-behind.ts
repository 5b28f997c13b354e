// Turns, transcript segments and recording rows of every live call, written in batches.
// Each write was one statement — one round trip and one commit — and at a
// few hundred calls those were about a sixth of the server's CPU (the `pg`
// client's socket writes plus, on the embedded database, its thread). Rows
// queued within one window go in one statement per table (`unnest` of
// arrays, so the SQL text never changes). Every write still returns a
// promise that settles when its row is committed (or the batch fails), so a
// caller that retries keeps doing so; the time a segment was said is taken
// when it is queued, not when the batch runs. `drain()` writes what is
// queued now (a call's end does it before its status, so an ended call has
// its turns and transcript; shutdown does it last).
import type pg from 'pg';
import { guarded } from '../guard.js';

/**
 * How long rows wait for company. Each statement costs the embedded database
 * ~0.5 ms of CPU whatever its size (a 20-row insert costs about what a 1-row
 * one does), so at 200 calls a 100 ms window still made ~24 statements a
 * second; at 1 s it is two. A reader of a live call sees its turns at most a
 * second late; an ended call's are drained before its status (see drain()).
 */
const WINDOW_MS = 1000;
/** A batch this big goes at once. */
const MAX_ROWS = 500;

interface Pending<T> {
  row: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface TranscriptRow {
  callId: string;
  speaker: 'caller' | 'agent';
  text: string;
  at: Date;
}

export interface TurnRow {
  callId: string;
  seq: number;
  userText: string;
  assistantText: string;
  interrupted: boolean;
  latencies: string;
}

const INSERT_TRANSCRIPTS = `insert into transcript_segments (call_id, speaker, text, at)
  select * from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])`;

/** A recording's row as recording starts (src/recordings/rows.ts completes it at hang-up). */
export interface RecordingBeginRow {
  callId: string;
  tenantId: string;
  storage: string;
  key: string;
  channels: string;
}

const INSERT_RECORDINGS = `insert into recordings (call_id, tenant_id, storage, key, channels)
  select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) on conflict (call_id) do nothing`;

const UPSERT_TURNS = `insert into turns (call_id, seq, user_text, assistant_text, interrupted, latencies)
  select c, s, u, a, i, l::jsonb from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bool[], $6::text[]) as t(c, s, u, a, i, l)
  on conflict (call_id, seq) do update set user_text = excluded.user_text, assistant_text = excluded.assistant_text,
    interrupted = excluded.interrupted, latencies = excluded.latencies`;

export class WriteBehind {
  private transcripts: Pending<TranscriptRow>[] = [];
  private turns: Pending<TurnRow>[] = [];
  private recordings: Pending<RecordingBeginRow>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly pool: pg.Pool) {}

  addTranscript(row: TranscriptRow): Promise<void> {
    return this.enqueue(this.transcripts, row);
  }

  addTurn(row: TurnRow): Promise<void> {
    return this.enqueue(this.turns, row);
  }

  /** Recording rows start in bursts with the calls; one statement each put up to +0.16 s on the embedded database thread in a 40 s window at 100 calls. */
  addRecording(row: RecordingBeginRow): Promise<void> {
    return this.enqueue(this.recordings, row);
  }

  private enqueue<T>(queue: Pending<T>[], row: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      queue.push({ row, resolve, reject });
      if (this.transcripts.length + this.turns.length + this.recordings.length >= MAX_ROWS) void this.drain();
      else if (!this.timer) this.timer = setTimeout(() => guarded('store', () => void this.drain()), WINDOW_MS);
    });
  }

  /** Writes everything queued so far; resolves when it is committed (or has failed). */
  drain(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const transcripts = this.transcripts;
    const turns = this.turns;
    const recordings = this.recordings;
    this.transcripts = [];
    this.turns = [];
    this.recordings = [];
    // Batches go in order: a later one never overtakes an earlier one.
    const run = this.running.then(() => this.write(transcripts, turns, recordings));
    this.running = run;
    return run;
  }

  private async write(transcripts: Pending<TranscriptRow>[], turns: Pending<TurnRow>[], recordings: Pending<RecordingBeginRow>[]): Promise<void> {
    await Promise.all([
      settle(recordings, (rows) => this.pool.query(INSERT_RECORDINGS, columns(rows, ['callId', 'tenantId', 'storage', 'key', 'channels']))),
      settle(transcripts, (rows) => this.pool.query(INSERT_TRANSCRIPTS, columns(rows, ['callId', 'speaker', 'text', 'at']))),
      settle(turns, (rows) => this.pool.query(UPSERT_TURNS, columns(lastPerKey(rows), ['callId', 'seq', 'userText', 'assistantText', 'interrupted', 'latencies']))),
    ]);
  }
}

/**
 * Runs the statement for the rows and settles each row's promise (never
 * throws). When a batch fails, its rows are tried one by one, so one bad row
 * (say, of a call whose record is gone) fails alone and the others are stored.
 */
async function settle<T>(rows: Pending<T>[], query: (rows: Pending<T>[]) => Promise<unknown>): Promise<void> {
  if (rows.length === 0) return;
  try {
    await query(rows);
    for (const r of rows) r.resolve();
  } catch (err) {
    if (rows.length === 1) rows[0].reject(err);
    else for (const r of rows) await settle([r], query);
  }
}

/** One array per column, in row order. */
function columns<T>(rows: Pending<T>[], keys: (keyof T)[]): unknown[][] {
  return keys.map((k) => rows.map((r) => r.row[k]));
}

/** An upsert may touch a row once per statement: the latest write of (call, seq) wins, as it would one by one. */
function lastPerKey(rows: Pending<TurnRow>[]): Pending<TurnRow>[] {
  const last = new Map<string, Pending<TurnRow>>();
  for (const r of rows) {
    const key = `${r.row.callId}\u0000${r.row.seq}`;
    last.delete(key);
    last.set(key, r);
  }
  return last.size === rows.length ? rows : [...last.values()];
}
