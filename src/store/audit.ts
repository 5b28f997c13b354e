// The append-only audit log: every change records who, what, when, before/after.
// Written in the same transaction as the change it describes. Being
// append-only, it must never receive a secret: callers pass masked objects,
// and scrubSecrets() masks anything under a secret-sounding key that slipped
// through (a rule for the future, not a substitute for masking).
import type pg from 'pg';
import type { Page, Principal } from './types.js';
import { decodeCursor, encodeCursor, iso } from './ids.js';
import { InvalidError } from './errors.js';
import { isMask, isSealed, mask, MASK } from './secrets.js';

const SECRET_KEY = /^(authHeader|authorization|apiKey|ha1\w*)$|password|secret|token$/i;

/** A copy with every string under a secret-sounding key masked ("****" + last 4; "****" for ciphertext). */
export function scrubSecrets(v: unknown, depth = 0): unknown {
  if (v === null || typeof v !== 'object' || depth > 64) return v;
  if (Array.isArray(v)) return v.map((x) => scrubSecrets(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string' && SECRET_KEY.test(k) && !isMask(x)) out[k] = isSealed(x) ? MASK : mask(x);
    else out[k] = scrubSecrets(x, depth + 1);
  }
  return out;
}

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  objectType: string;
  objectId: string;
  before?: unknown;
  after?: unknown;
}

export async function audit(
  c: pg.PoolClient,
  who: Principal,
  tenantId: string | null,
  action: string,
  objectType: string,
  objectId: string,
  before: unknown,
  after: unknown,
): Promise<void> {
  await c.query(
    'insert into audit_log (tenant_id, actor, action, object_type, object_id, before, after) values ($1,$2,$3,$4,$5,$6,$7)',
    [
      tenantId, actorName(who), action, objectType, objectId,
      before === undefined ? null : JSON.stringify(scrubSecrets(before)),
      after === undefined ? null : JSON.stringify(scrubSecrets(after)),
    ],
  );
}

export function actorName(who: Principal): string {
  return who.keyName ? `${who.keyId} (${who.keyName})` : who.keyId;
}

export async function listAudit(db: pg.Pool, tenantId: string | null, limit: number, cursor?: string): Promise<Page<AuditEntry>> {
  const params: unknown[] = [];
  const where: string[] = [];
  if (tenantId) {
    params.push(tenantId);
    where.push(`tenant_id = $${params.length}`);
  }
  if (cursor) {
    const c = decodeCursor(cursor);
    if (!c || !/^\d+$/.test(c[1])) throw new InvalidError('cursor', 'is not a cursor this API returned');
    params.push(c[1]);
    where.push(`id < $${params.length}`);
  }
  params.push(limit + 1);
  const rows = (
    await db.query(
      `select * from audit_log ${where.length ? 'where ' + where.join(' and ') : ''} order by id desc limit $${params.length}`,
      params,
    )
  ).rows;
  const more = rows.length > limit;
  const items = rows.slice(0, limit).map((r) => ({
    at: iso(r.at),
    actor: r.actor as string,
    action: r.action as string,
    objectType: r.object_type as string,
    objectId: r.object_id as string,
    ...(r.before !== null ? { before: r.before } : {}),
    ...(r.after !== null ? { after: r.after } : {}),
  }));
  const last = rows[limit - 1];
  return { items, nextCursor: more && last ? encodeCursor(iso(last.at), String(last.id)) : null };
}
