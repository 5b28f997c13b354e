// A tenant's do-not-call list: numbers the dialer refuses (422 dnc) before
// any carrier is asked, for single calls, campaign contacts and transfers.
// Changes are audited like every other change.
import type { ControlPlane } from '../store/index.js';
import type { Page, Principal } from '../store/types.js';
import { audit } from '../store/audit.js';
import { decodeCursor, encodeCursor, iso } from '../store/ids.js';
import { InvalidError, NotFoundError } from '../store/errors.js';

export interface DncEntry {
  number: string;
  createdAt: string;
}

export class DncList {
  constructor(private readonly cp: ControlPlane) {}

  /** Adds numbers (already listed ones stay as they are); answers how many were new. */
  async add(who: Principal, tenantId: string, numbers: string[]): Promise<{ added: number; numbers: string[] }> {
    const unique = [...new Set(numbers)];
    return this.cp.db.tx(async (c) => {
      if (!(await c.query('select 1 from tenants where id = $1', [tenantId])).rowCount) throw new NotFoundError('tenant');
      const r = await c.query(
        // Milliseconds, as list cursors carry them (a cursor must compare equal to its row).
        `insert into dnc_numbers (tenant_id, number, created_at) select $1, n, date_trunc('milliseconds', now()) from unnest($2::text[]) as n
         on conflict do nothing returning number`,
        [tenantId, unique],
      );
      const added = r.rows.map((x) => x.number as string);
      if (added.length) await audit(c, who, tenantId, 'dnc.add', 'dnc', tenantId, undefined, { numbers: added });
      return { added: added.length, numbers: unique };
    });
  }

  async remove(who: Principal, tenantId: string | null, number: string): Promise<void> {
    await this.cp.db.tx(async (c) => {
      const r = await c.query('delete from dnc_numbers where number = $1 and ($2::text is null or tenant_id = $2) returning tenant_id', [number, tenantId]);
      if (!r.rowCount) throw new NotFoundError('number on the do-not-call list');
      for (const row of r.rows) await audit(c, who, row.tenant_id, 'dnc.remove', 'dnc', row.tenant_id, { numbers: [number] }, undefined);
    });
  }

  /** Newest first; `tenantId` null lists every tenant's (platform admin). */
  async list(tenantId: string | null, limit: number, cursor?: string): Promise<Page<DncEntry & { tenantId: string }>> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (tenantId !== null) where.push(`tenant_id = $${params.push(tenantId)}`);
    if (cursor) {
      const c = decodeCursor(cursor);
      if (!c) throw new InvalidError('cursor', 'is not a cursor this API returned');
      where.push(`(created_at, number) < ($${params.push(c[0])}::timestamptz, $${params.push(c[1])})`);
    }
    const rows = (
      await this.cp.db.pool.query(
        `select tenant_id, number, created_at from dnc_numbers ${where.length ? 'where ' + where.join(' and ') : ''}
          order by created_at desc, number desc limit $${params.push(limit + 1)}`,
        params,
      )
    ).rows;
    const last = rows[limit - 1];
    return {
      items: rows.slice(0, limit).map((r) => ({ tenantId: r.tenant_id as string, number: r.number as string, createdAt: iso(r.created_at) })),
      nextCursor: rows.length > limit && last ? encodeCursor(iso(last.created_at), last.number as string) : null,
    };
  }
}
