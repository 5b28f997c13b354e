// The consumer side of the webhook outbox: every node's main thread claims
// due deliveries from PostgreSQL and POSTs them, signed, through the same
// SSRF guard as HTTP tools (src/pipeline/tools.ts postChecked: every
// resolved address checked, the checked one connected to, no redirects,
// 64 KiB answer, time-boxed).
//
// Claiming is one statement: due rows are locked FOR UPDATE SKIP LOCKED (a
// row another node is claiming is skipped, not waited for) and leased: their
// next_attempt_at moves past the delivery timeout and a fresh claim_token is
// set. No transaction stays open during the HTTP request (the embedded
// database has one connection), and the lease outlasts the request, so two
// nodes never send one delivery at the same time; a node that dies mid-way
// leaves the row to be claimed again when the lease ends (at-least-once:
// receivers deduplicate on the event id). The result is written only under
// the claim_token that was sent, so a late answer cannot undo a newer claim.
import crypto from 'node:crypto';
import type { Component } from '../server/server.js';
import type { ControlPlane } from '../store/index.js';
import { secretContext } from '../store/agents.js';
import { postChecked, type ToolNetwork } from '../pipeline/tools.js';
import { AddressRefusedError, DEFAULT_NETWORK_POLICY } from '../pipeline/address-policy.js';
import { webhookDeliveries } from '../metrics/index.js';
import { guard } from '../guard.js';
import { ClaimLoop } from '../store/claim-loop.js';
import { log } from '../log.js';
import { VERSION } from '../version.js';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from './sign.js';
import { DEFAULT_RETRY_SCHEDULE, nextRetryDelay, type RetrySchedule } from './retry.js';

export interface OutboxOptions {
  /** TOOLS_ALLOW_PRIVATE_NETWORKS, and name resolution (tests inject it); default: public addresses only. */
  network?: ToolNetwork;
  schedule?: RetrySchedule;
  /** How often due deliveries are looked for (events enqueued on this node are sent at once). */
  pollMs?: number;
  /** Deliveries in flight at once on this node. */
  concurrency?: number;
  /** One attempt, DNS and answer included. */
  timeoutMs?: number;
  /** Attempts and delivered/given-up events older than this are deleted. */
  retentionDays?: number;
}

export const DEFAULT_DELIVERY_TIMEOUT_MS = 10_000;
/** The lease is the timeout plus this: the request has surely ended (aborted) before anyone else may claim the row. */
const LEASE_MARGIN_MS = 30_000;
const PRUNE_EVERY_MS = 3600_000;
const MAX_ERROR_CHARS = 300;

interface Claimed {
  webhook_id: string;
  event_id: string;
  attempts: number;
  type: string;
  body: string;
  tenant_id: string;
  url: string;
  secret: string;
}

type Outcome = 'delivered' | 'failed' | 'refused' | 'gave_up';

export class WebhookOutbox implements Component {
  readonly name = 'webhook-outbox';
  /** Attempts this node made, by outcome (the metric sums every node's). */
  readonly stats: Record<Outcome, number> = { delivered: 0, failed: 0, refused: 0, gave_up: 0 };
  private readonly o: Required<OutboxOptions>;
  private readonly loop: ClaimLoop<Claimed & { token: string }>;
  private pruner: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly cp: ControlPlane, opts: OutboxOptions = {}) {
    this.o = {
      network: opts.network ?? DEFAULT_NETWORK_POLICY,
      schedule: opts.schedule ?? DEFAULT_RETRY_SCHEDULE,
      pollMs: opts.pollMs ?? 1000,
      concurrency: opts.concurrency ?? 8,
      timeoutMs: opts.timeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS,
      retentionDays: opts.retentionDays ?? 30,
    };
    this.loop = new ClaimLoop({
      name: 'webhook outbox', pollMs: this.o.pollMs, concurrency: this.o.concurrency,
      claim: (n) => this.claim(n), work: (row) => this.deliver(row), describe: (row) => ({ webhookId: row.webhook_id, eventId: row.event_id }),
    });
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.cp.webhooks.onEnqueued = () => this.kick();
    const prune = guard('timer', () => this.prune().catch((err) => log.warn('webhook outbox prune failed', { err: (err as Error).message })));
    this.pruner = setInterval(prune, PRUNE_EVERY_MS);
    this.pruner.unref();
    prune();
    this.loop.start();
  }

  /** Stops claiming; resolves when the attempts in flight have ended (each is time-boxed). */
  async drain(): Promise<void> {
    this.running = false;
    if (this.pruner) clearInterval(this.pruner);
    this.pruner = null;
    if (this.cp.webhooks.onEnqueued) this.cp.webhooks.onEnqueued = null;
    await this.loop.drain();
  }

  close(): Promise<void> {
    return this.drain();
  }

  /** Looks for due deliveries now (coalesced: one claim at a time per node). */
  kick(): void {
    this.loop.kick();
  }

  private async claim(limit: number): Promise<(Claimed & { token: string })[]> {
    const token = crypto.randomBytes(12).toString('base64url');
    const r = await this.cp.db.pool.query<Claimed>(
      `with due as (
         select webhook_id, event_id from webhook_deliveries
          where status = 'pending' and next_attempt_at <= now()
          order by next_attempt_at limit $1
          for update skip locked)
       update webhook_deliveries d
          set attempts = d.attempts + 1, claim_token = $2, next_attempt_at = now() + $3 * interval '1 millisecond'
         from due, webhook_events e, webhooks w
        where d.webhook_id = due.webhook_id and d.event_id = due.event_id and e.id = d.event_id and w.id = d.webhook_id
       returning d.webhook_id, d.event_id, d.attempts, e.type, e.body, w.tenant_id, w.url, w.secret`,
      [limit, token, this.o.timeoutMs + LEASE_MARGIN_MS],
    );
    return r.rows.map((row) => ({ ...row, token }));
  }

  private async deliver(row: Claimed & { token: string }): Promise<void> {
    const t0 = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let refused = false;
    const ac = new AbortController();
    const timer = setTimeout(guard('timer', () => ac.abort(new Error(`timed out after ${this.o.timeoutMs} ms`))), this.o.timeoutMs);
    try {
      const secret = this.cp.keys.reveal(row.secret, secretContext(row.tenant_id));
      const body = Buffer.from(row.body, 'utf8');
      const headers = {
        'content-type': 'application/json',
        'user-agent': `Aybiza-Webhooks/${VERSION}`,
        [SIGNATURE_HEADER]: signatureHeader(secret, body),
        [EVENT_ID_HEADER]: row.event_id,
      };
      status = (await postChecked(row.url, this.o.network, headers, body, ac.signal)).status;
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      refused = err instanceof AddressRefusedError;
      error = refused ? `refused: the webhook URL ${(err as Error).message}` : (err as Error).message || String(err);
    } finally {
      clearTimeout(timer);
    }
    const retryMs = error === null ? null : nextRetryDelay(this.o.schedule, row.attempts);
    const outcome: Outcome = error === null ? 'delivered' : retryMs === null ? 'gave_up' : refused ? 'refused' : 'failed';
    webhookDeliveries.inc({ result: outcome });
    this.stats[outcome]++;
    if (outcome === 'gave_up') log.warn('webhook delivery given up', { webhookId: row.webhook_id, eventId: row.event_id, attempts: row.attempts, error });
    await this.record(row, outcome, status, error, retryMs, Math.round(performance.now() - t0));
  }

  /** The attempt, and the delivery's next state if this node still holds its claim. */
  private async record(row: Claimed & { token: string }, outcome: Outcome, status: number | null, error: string | null, retryMs: number | null, ms: number): Promise<void> {
    const state = outcome === 'delivered' ? 'delivered' : outcome === 'gave_up' ? 'failed' : 'pending';
    await this.cp.db.pool.query(
      `with d as (
         update webhook_deliveries
            set status = $4, claim_token = null,
                next_attempt_at = case when $4 = 'pending' then now() + $5 * interval '1 millisecond' else next_attempt_at end
          where webhook_id = $1 and event_id = $2 and claim_token = $3)
       insert into webhook_attempts (webhook_id, event_id, event_type, attempt, outcome, http_status, error, duration_ms)
       select $1, $2, $6, $7, $8, $9, $10, $11 where exists (select 1 from webhooks where id = $1)`,
      [row.webhook_id, row.event_id, row.token, state, retryMs ?? 0, row.type, row.attempts, outcome, status, error?.slice(0, MAX_ERROR_CHARS) ?? null, ms],
    );
  }

  /** Bounded tables: attempts and finished events older than the retention go. */
  private async prune(): Promise<void> {
    const days = this.o.retentionDays;
    await this.cp.db.pool.query(`delete from webhook_attempts where at < now() - $1 * interval '1 day'`, [days]);
    await this.cp.db.pool.query(
      `delete from webhook_events e where created_at < now() - $1 * interval '1 day'
          and not exists (select 1 from webhook_deliveries d where d.event_id = e.id and d.status = 'pending')`,
      [days],
    );
  }
}
