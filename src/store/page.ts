// Keyset pagination shared by every list: newest first by (timestamp, id),
// an opaque cursor, one extra row fetched to know whether there is more.
import type pg from 'pg';
import { decodeCursor, encodeCursor, iso } from './ids.js';
import { InvalidError } from './errors.js';
import type { Page } from './types.js';

export function tenantClause(tenantId: string | null, params: unknown[], column = 'tenant_id'): string {
  if (tenantId === null) return 'true';
  params.push(tenantId);
  return `${column} = $${params.length}`;
}

export async function pageOf<T>(
  pool: pg.Pool,
  table: string,
  timeColumn: string,
  tenantId: string | null,
  limit: number,
  cursor: string | undefined,
  map: (row: Record<string, unknown>) => T | Promise<T>,
  /** One more equality condition (a column name of ours, never from input). */
  filter?: { column: string; value: unknown },
): Promise<Page<T>> {
  const params: unknown[] = [];
  const where = [tenantClause(tenantId, params)];
  if (filter) where.push(`${filter.column} = $${params.push(filter.value)}`);
  if (cursor) {
    const c = decodeCursor(cursor);
    if (!c) throw new InvalidError('cursor', 'is not a cursor this API returned');
    params.push(c[0], c[1]);
    where.push(`(${timeColumn}, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
  }
  params.push(limit + 1);
  const rows = (await pool.query(`select * from ${table} where ${where.join(' and ')} order by ${timeColumn} desc, id desc limit $${params.length}`, params)).rows;
  const items = await Promise.all(rows.slice(0, limit).map(map));
  const last = rows[limit - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(iso(last[timeColumn]), last.id as string) : null };
}
