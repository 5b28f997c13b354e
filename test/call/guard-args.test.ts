// The guard's wrapper passes its callback's arguments through (up to the four
// it takes as plain parameters), hands them to onError when the callback
// throws or its promise rejects, and counts both failures.
import { describe, expect, it } from 'vitest';
import { guard, guarded } from '../../src/guard.js';
import { internalErrors } from '../../src/metrics/index.js';

async function internal(where: string): Promise<number> {
  return (await internalErrors.get()).values.find((v) => v.labels.where === where)?.value ?? 0;
}

describe('guard', () => {
  it('passes up to four arguments and returns nothing', () => {
    const seen: unknown[][] = [];
    const g = guard('ws', (a: number, b: string, c: boolean, d: null) => void seen.push([a, b, c, d]));
    expect(g(1, 'x', true, null)).toBeUndefined();
    expect(seen).toEqual([[1, 'x', true, null]]);
  });

  it('counts a throw and gives onError the error and the arguments', async () => {
    const before = await internal('rtp');
    const got: unknown[] = [];
    const g = guard('rtp', (_a: number, _b: string) => { throw new Error('boom'); }, (err, a, b) => got.push((err as Error).message, a, b));
    g(7, 'y');
    expect(got).toEqual(['boom', 7, 'y']);
    expect(await internal('rtp')).toBe(before + 1);
  });

  it('counts a rejected promise and gives onError the arguments', async () => {
    const before = await internal('timer');
    const got: unknown[] = [];
    const g = guard('timer', async (_a: string) => { throw new Error('later'); }, (err, a) => got.push((err as Error).message, a));
    g('z');
    await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['later', 'z']);
    expect(await internal('timer')).toBe(before + 1);
  });

  it('guarded() runs at once and survives a throwing onError', async () => {
    const before = await internal('store');
    guarded('store', () => { throw new Error('first'); }, () => { throw new Error('second'); });
    expect(await internal('store')).toBe(before + 2);
  });
});
