// Shared helpers for benchmark output: tinybench results to a Markdown table
// with a ratio column against a named baseline row.
import type { Bench } from 'tinybench';

export interface Row {
  name: string;
  nsPerOp: number;
  opsPerSec: number;
  p99Ns?: number;
}

export function rowsOf(bench: Bench): Row[] {
  return bench.tasks.map((t) => {
    const r = t.result as unknown as { latency?: { mean: number; p99?: number }; throughput?: { mean: number } } | undefined;
    const meanMs = r?.latency?.mean ?? NaN;
    return {
      name: t.name,
      nsPerOp: meanMs * 1e6,
      opsPerSec: meanMs > 0 ? 1000 / meanMs : NaN,
      p99Ns: r?.latency?.p99 !== undefined ? r.latency.p99 * 1e6 : undefined,
    };
  });
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Prints a Markdown table; `pairs` maps each row to its baseline row name. */
export function printTable(title: string, rows: Row[], baselineOf: (name: string) => string | undefined): void {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const lines = [`### ${title}`, '', '| case | ns/op | ops/s | vs baseline |', '|---|---:|---:|---:|'];
  for (const r of rows) {
    const base = baselineOf(r.name);
    const b = base ? byName.get(base) : undefined;
    const ratio = b && b !== r ? `${fmt(b.nsPerOp / r.nsPerOp, 1)}× faster` : 'baseline';
    lines.push(`| ${r.name} | ${fmt(r.nsPerOp, 1)} | ${fmt(r.opsPerSec)} | ${ratio} |`);
  }
  process.stdout.write(lines.join('\n') + '\n\n');
}

/** Prints any Markdown table. */
export function printMarkdown(title: string, header: string[], rows: (string | number)[][]): void {
  const lines = [`### ${title}`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map((c) => (typeof c === 'number' ? fmt(c, 2) : c)).join(' | ')} |`);
  process.stdout.write(lines.join('\n') + '\n\n');
}
