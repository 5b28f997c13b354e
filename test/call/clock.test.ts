// The shared pacing clock: each member ticks once per 20 ms slot, and a due
// step runs from poll() inside busy work instead of waiting for the event
// loop's timers phase.
import { describe, expect, it } from 'vitest';
import { PacingClock } from '../../src/call/clock.js';

describe('PacingClock', () => {
  it('poll() runs due steps while the event loop never reaches its timers', () => {
    const clock = new PacingClock();
    const slots: number[][] = [[], [], [], []];
    const members = slots.map((s) => ({ tick: (slot: number) => void s.push(slot) }));
    for (const m of members) clock.add(m);
    // 200 ms of synchronous work, polling between units of it (as the
    // message handlers do): no timer can fire in here.
    const until = performance.now() + 200;
    while (performance.now() < until) clock.poll();
    for (const s of slots) {
      // About 10 slots each (the last may not be due yet), in order, none twice.
      expect(s.length).toBeGreaterThanOrEqual(9);
      expect(s.length).toBeLessThanOrEqual(11);
      for (let i = 1; i < s.length; i++) expect(s[i]).toBe(s[i - 1] + 1);
    }
    for (const m of members) clock.delete(m);
    expect(clock.size).toBe(0);
  });

  it('poll() is not re-entered from a tick, and the timer still drives it when nobody polls', async () => {
    const clock = new PacingClock();
    let ticks = 0;
    let nested = 0;
    const m = {
      tick: () => {
        ticks++;
        const before = ticks;
        clock.poll(performance.now() + 1000); // would be due, but we are inside a step
        if (ticks !== before) nested++;
      },
    };
    clock.add(m);
    await new Promise((r) => setTimeout(r, 120));
    clock.delete(m);
    expect(nested).toBe(0);
    expect(ticks).toBeGreaterThanOrEqual(3);
  });
});
