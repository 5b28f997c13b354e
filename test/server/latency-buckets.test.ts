// aybiza_turn_latency_seconds must resolve what we tune: 5 ms to 5 s, at most
// 50 ms between bounds from 100 ms to 1.5 s (issue 14, need 6).
import { describe, expect, it } from 'vitest';
import { TURN_LATENCY_BUCKETS, registry, turnLatency } from '../../src/metrics/index.js';

describe('turn latency buckets', () => {
  it('run from 5 ms to 5 s, increasing, with at most 50 ms spacing between 100 ms and 1.5 s', () => {
    const b = TURN_LATENCY_BUCKETS;
    for (let i = 1; i < b.length; i++) expect(b[i]).toBeGreaterThan(b[i - 1]);
    expect(b).toContain(0.005);
    expect(b).toContain(5);
    expect(b).toContain(0.1);
    expect(b).toContain(1.5);
    const mid = b.filter((x) => x >= 0.1 && x <= 1.5);
    for (let i = 1; i < mid.length; i++) expect(mid[i] - mid[i - 1]).toBeLessThanOrEqual(0.05 + 1e-9);
  });

  it('puts an 800 ms turn and a 1.4 s turn in different buckets on /metrics', async () => {
    turnLatency.observe({ stage: 'e2e' }, 0.8);
    turnLatency.observe({ stage: 'e2e' }, 1.4);
    const text = await registry.metrics();
    const count = (le: string) => Number(new RegExp(`aybiza_turn_latency_seconds_bucket\\{le="${le}",stage="e2e"\\} (\\d+)`).exec(text)?.[1]);
    expect(count('0.8')).toBe(1);
    expect(count('1.35')).toBe(1);
    expect(count('1.4')).toBe(2);
  });
});
