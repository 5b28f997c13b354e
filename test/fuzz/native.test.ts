// The native-addon fuzzer (bench/fuzz/native.ts) in a child process, as
// `aybiza fuzz` runs it: random argument types and sizes into every export of
// src/media and of the raw addon; the child must finish (no abort) and every
// call must return or throw TypeError/RangeError. Plus what it found: the
// DtmfDetector wrapper's close() was not idempotent as the others' are.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DtmfDetector, JitterBuffer, MediaChannel, Vad } from '../../src/media/index.js';

const NATIVE_FUZZ = path.resolve(__dirname, '../../dist/bench/fuzz/native.js');

function run(args: string[]): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [NATIVE_FUZZ, ...args], { timeout: 60_000 }, (error, out, err) => {
      const e = error as (NodeJS.ErrnoException & { code?: number; signal?: string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, signal: e?.signal ?? null, out, err });
    });
  });
}

describe('native addon fuzzing', () => {
  it('never aborts and only throws TypeError/RangeError, over two seeds', async () => {
    for (const seed of [1, 2 + Math.floor(Math.random() * 1e6)]) {
      const r = await run(['--seed', String(seed), '--seconds', '4']);
      expect(r.signal, `seed ${seed}: ${r.err}`).toBeNull();
      expect(r.code, `seed ${seed}: ${r.err}`).toBe(0);
      const report = JSON.parse(r.out.trim()) as { calls: number; unexpected: unknown[] };
      expect(report.calls).toBeGreaterThan(1000);
      expect(report.unexpected, `seed ${seed}`).toEqual([]);
    }
  });

  it('replays a case by number (--until) for a crash report', async () => {
    const r = await run(['--seed', '7', '--until', '123']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^case #123: /);
  });

  it('close() is idempotent on every native wrapper (DtmfDetector was not)', () => {
    for (const make of [() => new DtmfDetector(), () => new Vad(), () => new JitterBuffer(), () => new MediaChannel()]) {
      const o = make();
      o.close();
      expect(() => o.close()).not.toThrow();
      expect(() => o.reset()).toThrow(TypeError);
    }
  });
});
