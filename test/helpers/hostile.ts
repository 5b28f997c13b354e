// Shared pieces of the hostile-input tests: buffers no native function may
// read (detached, shared, oversize), seeded noise, and the one rule every
// call must obey: a result, or a TypeError/RangeError with a real message.
import { expect } from 'vitest';
import { rng } from '../../bench/signals.js';

export { rng };

/** A view whose ArrayBuffer has been transferred away (reads as empty). */
export function detached(n = 160): Uint8Array {
  const view = new Uint8Array(n);
  structuredClone(view.buffer, { transfer: [view.buffer] });
  return view;
}

export function detachedView16(n = 160): Int16Array {
  const i16 = new Int16Array(n);
  structuredClone(i16.buffer, { transfer: [i16.buffer] });
  return i16;
}

/** n seeded random bytes. */
export function noisy(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

/** Over the native per-call size limit (native/args.h). */
export const HUGE = new Uint8Array((1 << 25) + 2);

/** Runs fn: 'ok', or 'rejected' for a TypeError/RangeError; anything else fails the test. */
export function outcome(fn: () => unknown): 'ok' | 'rejected' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) {
      expect((err as Error).message.length).toBeGreaterThan(5);
      return 'rejected';
    }
    throw err;
  }
}
