// `npm run load`'s two measurements at the same time (--baseline beside and
// unrecorded): when one fails before the window, the other must not wait at
// the barrier with its processes running (they kept using the machine after
// the load had exited): it is released with the failure, and both settle
// before the first error is thrown.
import { describe, expect, it } from 'vitest';
import { together } from '../../src/commands/load.js';

describe('load: two measurements together', () => {
  it('meets at the barrier and returns both results', async () => {
    const order: string[] = [];
    const side = (name: string, delay: number) => async (sync: () => Promise<void>) => {
      await new Promise((r) => setTimeout(r, delay));
      await sync();
      order.push(name);
      return name;
    };
    expect(await together(side('a', 30), side('b', 1))).toEqual(['a', 'b']);
    // b reached the barrier first but waited for a.
    expect(order.sort()).toEqual(['a', 'b']);
  });

  it('releases the other side when one fails before the window, and throws after both settled', async () => {
    let cleanedUp = false;
    const waiting = async (sync: () => Promise<void>) => {
      try {
        await sync();
        return 'measured';
      } finally {
        cleanedUp = true; // its processes stopped
      }
    };
    const failing = async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('server exited with 1');
    };
    await expect(together(waiting, failing)).rejects.toThrow('server exited with 1');
    expect(cleanedUp).toBe(true);
  });
});
