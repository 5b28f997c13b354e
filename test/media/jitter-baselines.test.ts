// The bench's two fixed 60 ms baselines (bench/jitter-replay.ts): the ideal
// one plays frame k at exactly first arrival + 60 + 20k ms; the one on the
// receiver's 20 ms pop clock takes it at the first pop at or after that
// instant, so a packet arriving between the two is late only for the ideal one.
import { describe, expect, it } from 'vitest';
import { makeTrace, type TracePacket } from '../../bench/netsim.js';
import { POP_PHASE_MS, runFixed, runFixedOnClock } from '../../bench/jitter-replay.js';

/** 20 ms frames arriving at 100 + 20k + extra(k) ms; lost where extra is null. */
function trace(extra: (number | null)[]): TracePacket[] {
  return extra.map((e, k) => ({ seq: k, timestamp: 160 * k, arrivalMs: 100 + 20 * k + (e ?? 0), lost: e === null, frame: k, voiced: true }));
}

describe('fixed 60 ms on the 20 ms playout clock', () => {
  it('takes frame k at the first pop at or after first arrival + 60 + 20k ms', () => {
    // Pops at 107 + 20n; frame k is due at 160 + 20k and taken at 167 + 20k.
    const t = trace([0, 0, 65, 0, 68, null, 0]);
    const clock = runFixedOnClock(t);
    const ideal = runFixed(t);
    // Frame 2 arrives at 205 (slot 200, pop 207): late only for the ideal buffer.
    // Frame 4 arrives at 248 (slot 240, pop 247): late for both.
    expect(ideal.late).toBe(2);
    expect(clock.late).toBe(1);
    expect(clock.lost).toBeCloseTo((100 * 1) / 7, 9);
    expect(clock.concealed).toBeCloseTo((100 * 2) / 7, 9);
    // Played: frames 0, 1, 2, 3, 6 at 67 ms after their on-time arrival; frame 2 came 65 ms late.
    expect(clock.meanDelay).toBeCloseTo((4 * (60 + POP_PHASE_MS) + 2) / 5, 9);
  });

  it('plays a calm trace exactly the pop phase later than the ideal buffer', () => {
    const t = makeTrace('calm', 1);
    const ideal = runFixed(t);
    const clock = runFixedOnClock(t);
    expect(ideal.late).toBe(0);
    expect(clock.late).toBe(0);
    expect(clock.meanDelay - ideal.meanDelay).toBeCloseTo(POP_PHASE_MS, 6);
  });

  it('a shorter delay is rounded up to the same pop', () => {
    const t = trace([0, 10, 45, 0]);
    // 50 ms: due 150 + 20k, still taken at 167 + 20k.
    expect(runFixedOnClock(t, 50)).toEqual(runFixedOnClock(t, 60));
    expect(runFixedOnClock(t, 50).late).toBe(0);
    expect(runFixedOnClock(t, 70).meanDelay).toBeCloseTo(runFixedOnClock(t, 60).meanDelay + 20, 9);
  });
});
