// Webhook subscriptions per tenant and the producer side of the delivery
// outbox: an event becomes one stored body and one pending delivery per
// subscribed webhook, in one statement, and only when someone subscribes.
// The secret is the HMAC key of the signatures: generated unless given,
// shown once in the create answer, sealed at rest, masked everywhere else.
import crypto from 'node:crypto';
import type pg from 'pg';
import type { Database } from '../store/db.js';
import { isSealed, type Keyring } from '../store/secrets.js';
import { secretContext } from '../store/agents.js';
import { audit } from '../store/audit.js';
import { ConflictError, InvalidError, NotFoundError } from '../store/errors.js';
import { decodeCursor, encodeCursor, iso, isoOrNull, newId } from '../store/ids.js';
import { pageOf, tenantClause } from '../store/page.js';
import type { CallRecord, Page, Principal } from '../store/types.js';
import { reportInternalError } from '../guard.js';
import { log } from '../log.js';
import type { WebhookEventType } from './events.js';

/** Subscriptions per tenant: each one multiplies every event into a delivery. */
export const MAX_WEBHOOKS_PER_TENANT = 20;

export interface Webhook {
  id: string;
  tenantId: string;
  url: string;
  events: WebhookEventType[];
  /** Masked ("****" + last 4), except in the create answer. */
  secret: string;
  createdAt: string;
}

export interface NewWebhook {
  url: string;
  events: WebhookEventType[];
  secret?: string;
}

/** One delivery attempt, as GET /v1/webhooks/{id}/deliveries lists it. */
export interface DeliveryAttempt {
  eventId: string;
  type: string;
  attempt: number;
  /** delivered (2xx), failed (retried later), refused (address policy; retried later), gave_up (the last one). */
  outcome: 'delivered' | 'failed' | 'refused' | 'gave_up';
  httpStatus: number | null;
  error: string | null;
  durationMs: number;
  at: string;
  /** The delivery's state now: pending (with nextAttemptAt), delivered or failed. */
  deliveryStatus: 'pending' | 'delivered' | 'failed' | null;
  nextAttemptAt: string | null;
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** What call.started / call.ended carry: the call's own fields, never its transcript or media stats. */
export function callEventData(c: CallRecord): Record<string, unknown> {
  return {
    callId: c.id, agentId: c.agentId, agentVersion: c.agentVersion, transport: c.transport, direction: c.direction,
    from: c.from, to: c.to, status: c.status, startedAt: c.startedAt, answeredAt: c.answeredAt, endedAt: c.endedAt, endReason: c.endReason,
    ...(c.campaignId ? { campaignId: c.campaignId } : {}),
  };
}

/** The id of an event named by `key` (a call id …): the same event enqueued twice is stored once. */
function eventId(tenantId: string, type: string, key: string | undefined): string {
  if (key === undefined) return newId('evt');
  return `evt_${crypto.createHash('sha256').update(`${tenantId}\0${type}\0${key}`).digest('base64url').slice(0, 22)}`;
}

export class Webhooks {
  /** Told after an event was stored for at least one webhook (the local outbox delivers at once). */
  onEnqueued: (() => void) | null = null;
  private readonly emitting = new Set<Promise<unknown>>();

  constructor(private readonly db: Database, private readonly keys: Keyring) {}

  private toWebhook(r: Record<string, unknown>): Webhook {
    const tenantId = r.tenant_id as string;
    return {
      id: r.id as string, tenantId, url: r.url as string, events: r.events as WebhookEventType[],
      secret: this.keys.maskStored(r.secret as string, secretContext(tenantId)), createdAt: iso(r.created_at),
    };
  }

  async create(who: Principal, tenantId: string, w: NewWebhook): Promise<Webhook> {
    const secret = w.secret ?? `whsec_${crypto.randomBytes(32).toString('base64url')}`;
    const events = [...new Set(w.events)];
    const out = await this.db.tx(async (c) => {
      // The tenant row is locked so two creates cannot both pass the count.
      if (!(await c.query('select 1 from tenants where id = $1 for update', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const n = (await c.query<{ n: number }>('select count(*)::int as n from webhooks where tenant_id = $1', [tenantId])).rows[0].n;
      if (n >= MAX_WEBHOOKS_PER_TENANT) throw new ConflictError(`a tenant has at most ${MAX_WEBHOOKS_PER_TENANT} webhooks`);
      const r = (
        await c.query('insert into webhooks (id, tenant_id, url, events, secret) values ($1,$2,$3,$4,$5) returning *', [
          newId('whk'), tenantId, w.url, events, this.keys.seal(secret, secretContext(tenantId)),
        ])
      ).rows[0];
      const masked = this.toWebhook(r);
      await audit(c, who, tenantId, 'webhook.create', 'webhook', masked.id, undefined, masked);
      return masked;
    });
    return { ...out, secret };
  }

  list(tenantId: string | null, limit: number, cursor?: string): Promise<Page<Webhook>> {
    return pageOf(this.db.pool, 'webhooks', 'created_at', tenantId, limit, cursor, (r) => this.toWebhook(r));
  }

  async get(tenantId: string | null, id: string): Promise<Webhook> {
    const params: unknown[] = [id];
    const r = (await this.db.pool.query(`select * from webhooks where id = $1 and ${tenantClause(tenantId, params)}`, params)).rows[0];
    if (!r) throw new NotFoundError('webhook');
    return this.toWebhook(r);
  }

  /** Deletes the subscription and its pending deliveries (nothing more is sent to it). */
  async delete(who: Principal, tenantId: string | null, id: string): Promise<void> {
    await this.db.tx(async (c) => {
      const params: unknown[] = [id];
      const r = (await c.query(`delete from webhooks where id = $1 and ${tenantClause(tenantId, params)} returning *`, params)).rows[0];
      if (!r) throw new NotFoundError('webhook');
      await audit(c, who, r.tenant_id, 'webhook.delete', 'webhook', id, this.toWebhook(r), undefined);
    });
  }

  /** The webhook's delivery attempts, newest first. */
  async attempts(tenantId: string | null, webhookId: string, limit: number, cursor?: string): Promise<Page<DeliveryAttempt>> {
    await this.get(tenantId, webhookId); // 404 for another tenant's webhook
    const params: unknown[] = [webhookId];
    let after = '';
    if (cursor) {
      const c = decodeCursor(cursor);
      if (!c || !/^\d{1,18}$/.test(c[1])) throw new InvalidError('cursor', 'is not a cursor this API returned');
      params.push(c[1]);
      after = `and a.id < $${params.length}`;
    }
    params.push(limit + 1);
    const rows = (
      await this.db.pool.query(
        `select a.*, d.status as delivery_status, d.next_attempt_at
           from webhook_attempts a left join webhook_deliveries d on d.webhook_id = a.webhook_id and d.event_id = a.event_id
          where a.webhook_id = $1 ${after} order by a.id desc limit $${params.length}`,
        params,
      )
    ).rows;
    const items = rows.slice(0, limit).map((r) => ({
      eventId: r.event_id, type: r.event_type, attempt: r.attempt, outcome: r.outcome, httpStatus: r.http_status, error: r.error,
      durationMs: r.duration_ms, at: iso(r.at), deliveryStatus: r.delivery_status ?? null,
      nextAttemptAt: r.delivery_status === 'pending' ? isoOrNull(r.next_attempt_at) : null,
    }));
    const last = rows[limit - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(iso(last.at), String(last.id)) : null };
  }

  /**
   * Stores an event for every webhook of the tenant subscribed to its type
   * and returns its id (null when none is). `key` makes it idempotent: the
   * same (type, key) is stored once however often it is enqueued. `db` lets
   * a caller write the event in its own transaction (the outbox pattern:
   * the event exists if and only if the change it reports was committed).
   */
  async enqueueEvent(
    tenantId: string, type: WebhookEventType, data: Record<string, unknown>, opts: { key?: string; db?: Queryable } = {},
  ): Promise<string | null> {
    const id = eventId(tenantId, type, opts.key);
    const body = JSON.stringify({ id, type, createdAt: new Date().toISOString(), data });
    const r = await (opts.db ?? this.db.pool).query(
      `with hooks as (select id from webhooks where tenant_id = $2 and $3 = any(events)),
            ev as (insert into webhook_events (id, tenant_id, type, body)
                   select $1, $2, $3, $4 where exists (select 1 from hooks) on conflict (id) do nothing returning id)
       insert into webhook_deliveries (webhook_id, event_id) select hooks.id, ev.id from hooks, ev`,
      [id, tenantId, type, body],
    );
    if (!r.rowCount) return null;
    if (!opts.db) this.onEnqueued?.();
    return id;
  }

  /**
   * Fire and forget, for the call path: never throws, never awaited there. A
   * failure (database unreachable) loses this event, counted in
   * aybiza_internal_errors_total{where="store"}, and the call goes on.
   */
  emit(tenantId: string, type: WebhookEventType, data: Record<string, unknown>, key?: string): void {
    const p = this.enqueueEvent(tenantId, type, data, { key })
      .catch((err) => reportInternalError('store', err, { event: type }))
      .finally(() => this.emitting.delete(p));
    this.emitting.add(p);
  }

  /** The call store's lifecycle sink (src/store/calls.ts): one event per call and type. */
  readonly callLifecycle = (type: 'call.started' | 'call.ended', call: CallRecord): void => {
    this.emit(call.tenantId, type, callEventData(call), call.id);
  };

  /** Waits for events being written (shutdown, before the database closes). */
  async drain(): Promise<void> {
    while (this.emitting.size) await Promise.allSettled([...this.emitting]);
  }

  /** Secrets sealed under an old key are sealed again under the current one (startup, after a key rotation). */
  async resealSecrets(): Promise<void> {
    const rows = (await this.db.pool.query('select id, tenant_id, secret from webhooks')).rows;
    let n = 0;
    for (const r of rows) {
      // A secret no configured key opens stays as it is (its deliveries fail, logged, until the key is added).
      if (!this.keys.needsReseal(r.secret) || (isSealed(r.secret) && !this.keys.canOpen(r.secret))) continue;
      const ctx = secretContext(r.tenant_id);
      await this.db.pool.query('update webhooks set secret = $2 where id = $1', [r.id, this.keys.seal(this.keys.reveal(r.secret, ctx), ctx)]);
      n++;
    }
    if (n) log.info('webhook secrets resealed under the current key', { webhooks: n });
  }
}
