// Number → live agent version on the call path: the cached resolver against
// the uncached database lookup it replaces (embedded PostgreSQL), same run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ControlPlane } from '../src/store/index.js';
import type { Principal } from '../src/store/types.js';
import { printMarkdown } from './table.js';
import { setLogLevel } from '../src/log.js';

function percentiles(samplesNs: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samplesNs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5) / 1000, p99: at(0.99) / 1000, mean: s.reduce((a, b) => a + b, 0) / s.length / 1000 };
}

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0));
  }
  return out;
}

export default async function run(): Promise<void> {
  setLogLevel('warn');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-bench-'));
  const cp = await ControlPlane.open({ dataDir: dir, sipRealm: 'aybiza' });
  const who: Principal = { keyId: 'bench', keyName: 'bench', tenantId: null, platformAdmin: true, scopes: [] };
  try {
    const t = await cp.tenants.create(who, 'Bench', null);
    const numbers: string[] = [];
    for (let i = 0; i < 50; i++) {
      const a = await cp.agents.create(who, t.id, { name: `a${i}`, prompt: 'p'.repeat(2000), greeting: 'Hello' });
      const n = `+1415555${String(1000 + i)}`;
      await cp.agents.addNumber(who, t.id, n, a.id);
      numbers.push(n);
    }
    let i = 0;
    const next = () => numbers[i++ % numbers.length];
    await time(2000, () => cp.resolver.resolveNumber(next())); // warm
    const cached = percentiles(await time(50_000, () => cp.resolver.resolveNumber(next())));
    const uncached = percentiles(await time(500, () => cp.resolver.load(next())));
    printMarkdown('number → live agent version (µs per lookup, 50 numbers)', ['path', 'p50 µs', 'p99 µs', 'mean µs', 'vs uncached (p50)'], [
      ['uncached: SQL on embedded PostgreSQL (baseline)', uncached.p50, uncached.p99, uncached.mean, 'baseline'],
      ['cached resolver (call path)', cached.p50, cached.p99, cached.mean, `${(uncached.p50 / cached.p50).toFixed(0)}× faster`],
    ]);
  } finally {
    await cp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
