// The consumer side of the post-call analysis queue, on the main thread of
// every node: due jobs are claimed from PostgreSQL (FOR UPDATE SKIP LOCKED:
// a row another node is claiming is skipped, not waited for) with a lease
// (next_attempt_at moved past the request timeout, a fresh claim_token), the
// call is analysed with Bedrock Converse (src/postcall/analyzer.ts) off the
// call path, and the result is written under the claim_token that was
// handed out, so a node whose lease ran out cannot overwrite a newer claim.
// No transaction is open during the model request. A service error is
// retried with backoff (30 s, then ×4, for up to 6 h); a node that dies
// mid-way leaves its job to be claimed again when the lease ends; a restart
// finds the pending rows where it left them. After the analysis: the call's
// `analysis` column, the summary into memory (agents with memory on), and
// the call.analyzed webhook event.
import crypto from 'node:crypto';
import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { Component } from '../server/server.js';
import type { ControlPlane } from '../store/index.js';
import type { AgentConfig, CallAnalysis, CallRecord } from '../store/types.js';
import { analysisResults } from '../metrics/index.js';
import { guard } from '../guard.js';
import { ClaimLoop } from '../store/claim-loop.js';
import { log } from '../log.js';
import { nextRetryDelay, type RetrySchedule } from '../webhooks/retry.js';
import { analyze, type TranscriptLine } from './analyzer.js';
import { DEFAULT_MEMORY_RETENTION_DAYS } from './memory.js';

export interface AnalysisQueueOptions {
  client: BedrockRuntimeClient;
  /** BEDROCK_MODEL_ID: the model when neither analysis.model nor llm.model is set. */
  defaultModel: string;
  schedule?: RetrySchedule;
  pollMs?: number;
  /** Analyses in flight at once on this node. */
  concurrency?: number;
  /** One analysis (both attempts). */
  timeoutMs?: number;
  /** Finished jobs are deleted after this long (the analysis stays on the call). */
  retentionDays?: number;
}

export const DEFAULT_ANALYSIS_SCHEDULE: RetrySchedule = { firstRetryMs: 30_000, factor: 4, maxDelayMs: 3600_000, giveUpAfterMs: 6 * 3600_000 };
const LEASE_MARGIN_MS = 30_000;
const SWEEP_EVERY_MS = 3600_000;
const MAX_ERROR_CHARS = 500;

type Result = 'analyzed' | 'invalid' | 'failed' | 'gave_up';

interface Claimed {
  call_id: string;
  attempts: number;
  token: string;
}

export class AnalysisQueue implements Component {
  readonly name = 'analysis-queue';
  /** Jobs this node finished, by result (the metric sums every node's). */
  readonly stats: Record<Result, number> = { analyzed: 0, invalid: 0, failed: 0, gave_up: 0 };
  private readonly o: Required<AnalysisQueueOptions>;
  private readonly loop: ClaimLoop<Claimed>;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly cp: ControlPlane, opts: AnalysisQueueOptions) {
    this.o = {
      schedule: DEFAULT_ANALYSIS_SCHEDULE, pollMs: 2000, concurrency: 4, timeoutMs: 120_000, retentionDays: 7, ...opts,
    };
    this.loop = new ClaimLoop({
      name: 'analysis queue', pollMs: this.o.pollMs, concurrency: this.o.concurrency,
      claim: (n) => this.claim(n), work: (job) => this.run(job), describe: (job) => ({ callId: job.call_id }),
    });
  }

  async start(): Promise<void> {
    if (this.sweeper) return;
    this.cp.analysisJobs.onEnqueued = () => this.loop.kick();
    const sweep = guard('timer', () => this.sweep().catch((err) => log.warn('analysis sweep failed', { err: (err as Error).message })));
    this.sweeper = setInterval(sweep, SWEEP_EVERY_MS);
    this.sweeper.unref();
    sweep();
    this.loop.start();
  }

  /** Stops claiming; resolves when the analyses in flight have ended (each is time-boxed). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.cp.analysisJobs.onEnqueued = null;
    await this.loop.drain();
  }

  private async claim(limit: number): Promise<Claimed[]> {
    const token = crypto.randomBytes(12).toString('base64url');
    const r = await this.cp.db.pool.query<{ call_id: string; attempts: number }>(
      `with due as (
         select call_id from analysis_jobs
          where status = 'pending' and next_attempt_at <= now()
          order by next_attempt_at limit $1
          for update skip locked)
       update analysis_jobs j
          set attempts = j.attempts + 1, claim_token = $2, next_attempt_at = now() + $3 * interval '1 millisecond'
         from due where j.call_id = due.call_id
       returning j.call_id, j.attempts`,
      [limit, token, this.o.timeoutMs + LEASE_MARGIN_MS],
    );
    return r.rows.map((row) => ({ ...row, token }));
  }

  private async run(job: Claimed): Promise<void> {
    const loaded = await this.load(job.call_id);
    if (!loaded) {
      // The call or its agent version is gone: nothing to analyse.
      await this.finish(job, 'failed', 'the call or its agent version no longer exists');
      return;
    }
    const { call, config, transcript } = loaded;
    const model = config.analysis?.model ?? config.llm?.model ?? this.o.defaultModel;
    const ac = new AbortController();
    const timer = setTimeout(guard('timer', () => ac.abort(new Error(`timed out after ${this.o.timeoutMs} ms`))), this.o.timeoutMs);
    let analysis: CallAnalysis;
    try {
      analysis = await analyze(this.o.client, { model, config, transcript }, ac.signal);
    } catch (err) {
      const message = `${(err as Error).name}: ${(err as Error).message}`.slice(0, MAX_ERROR_CHARS);
      const retryMs = nextRetryDelay(this.o.schedule, job.attempts);
      if (retryMs !== null) {
        this.count('failed');
        await this.retryLater(job, retryMs, message);
        return;
      }
      this.count('gave_up');
      log.warn('call analysis given up', { callId: job.call_id, attempts: job.attempts, error: message });
      analysis = {
        summary: null, sentiment: null, outcome: null, qualityScore: null, data: null, error: `the analysis failed ${job.attempts} times: ${message}`,
        usage: { model, inputTokens: 0, outputTokens: 0, requests: 0 }, analyzedAt: new Date().toISOString(),
      };
    } finally {
      clearTimeout(timer);
    }
    if (!(await this.store(job, call, config, analysis))) return; // the lease ran out and another node took the job
    if (analysis.error === undefined) this.count('analyzed');
    else if (analysis.usage.requests > 0) this.count('invalid');
  }

  private count(result: Result): void {
    this.stats[result]++;
    analysisResults.inc({ result });
  }

  /** The call, the agent version it ran and its transcript (turns in order, the greeting first). */
  private async load(callId: string): Promise<{ call: CallRecord; config: AgentConfig; transcript: TranscriptLine[] } | null> {
    const call = await this.cp.calls.byId(callId);
    if (!call?.agentId || call.agentVersion === null) return null;
    const v = (await this.cp.db.pool.query<{ config: AgentConfig }>('select config from agent_versions where agent_id = $1 and version = $2', [call.agentId, call.agentVersion])).rows[0];
    if (!v) return null;
    const turns = (await this.cp.db.pool.query<{ user_text: string; assistant_text: string }>('select user_text, assistant_text from turns where call_id = $1 order by seq', [callId])).rows;
    const transcript: TranscriptLine[] = v.config.greeting ? [{ speaker: 'agent', text: v.config.greeting }] : [];
    for (const t of turns) {
      if (t.user_text) transcript.push({ speaker: 'caller', text: t.user_text });
      if (t.assistant_text) transcript.push({ speaker: 'agent', text: t.assistant_text });
    }
    return { call, config: v.config, transcript };
  }

  /**
   * The analysis on the call, the job done (only under this node's claim; an
   * earlier attempt's error stays for the record), the summary kept in
   * memory (agents with memory on) and the call.analyzed event, in one
   * transaction: the event and the memory exist if and only if the analysis
   * was stored (the webhook outbox sends the event), once per call.
   */
  private async store(job: Claimed, call: CallRecord, config: AgentConfig, analysis: CallAnalysis): Promise<boolean> {
    if (config.memory?.enabled) await this.cp.memory.ready();
    const stored = await this.cp.db.tx(async (c) => {
      const r = await c.query(
        `with j as (
           update analysis_jobs set status = $3, claim_token = null, finished_at = now(), last_error = coalesce($4, last_error)
            where call_id = $1 and claim_token = $2 returning call_id)
         update calls set analysis = $5 from j where calls.id = j.call_id`,
        [job.call_id, job.token, analysis.error === undefined ? 'done' : 'failed', analysis.error?.slice(0, MAX_ERROR_CHARS) ?? null, JSON.stringify(analysis)],
      );
      if (!r.rowCount) return false;
      if (config.memory?.enabled && analysis.summary) {
        await this.cp.memory.remember(call, analysis.summary, config.memory.retentionDays ?? DEFAULT_MEMORY_RETENTION_DAYS, c);
      }
      await this.cp.webhooks.enqueueEvent(call.tenantId, 'call.analyzed', { callId: call.id, agentId: call.agentId, analysis }, { key: call.id, db: c });
      // The analysis's tokens join the call's LLM cost (src/usage), once, with the analysis.
      await this.cp.calls.recordAnalysisUsage(call.id, analysis.usage, c);
      return true;
    });
    if (stored) this.cp.webhooks.onEnqueued?.();
    return stored;
  }

  private async retryLater(job: Claimed, retryMs: number, error: string): Promise<void> {
    await this.cp.db.pool.query(
      `update analysis_jobs set claim_token = null, next_attempt_at = now() + $3 * interval '1 millisecond', last_error = $4
        where call_id = $1 and claim_token = $2`,
      [job.call_id, job.token, retryMs, error],
    );
  }

  private async finish(job: Claimed, status: 'failed', error: string): Promise<void> {
    await this.cp.db.pool.query(
      `update analysis_jobs set status = $3, claim_token = null, finished_at = now(), last_error = $4 where call_id = $1 and claim_token = $2`,
      [job.call_id, job.token, status, error],
    );
  }

  /** Expired memories and old finished jobs go (bounded tables). */
  private async sweep(): Promise<void> {
    const forgotten = await this.cp.memory.sweep();
    if (forgotten) log.info('expired call memories deleted', { summaries: forgotten });
    await this.cp.db.pool.query(`delete from analysis_jobs where status <> 'pending' and finished_at < now() - $1 * interval '1 day'`, [this.o.retentionDays]);
  }
}
