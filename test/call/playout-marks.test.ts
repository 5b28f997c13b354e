// The mark that closes a spoken segment says so (`….end`), so the far end can
// tell a pause between segments from a hole inside one (issue 14, need 1:
// `npm run load` splits the callers' gaps with it).
import { describe, expect, it } from 'vitest';
import { Playout } from '../../src/call/playout.js';
import type { CallTransport } from '../../src/call/transport.js';

function recorder(): { transport: CallTransport; log: string[] } {
  const log: string[] = [];
  const transport: CallTransport = {
    kind: 'twilio',
    leadMs: 10_000, // never hold frames back for the lead in this test
    sendFrame: () => {
      log.push('frame');
      return true;
    },
    sendMark: (name) => log.push(`mark ${name}`),
    clearPlayout: () => log.push('clear'),
    hangup: () => undefined,
  };
  return { transport, log };
}

describe('playout marks', () => {
  it('ends each segment with a .end mark right after its last frame, even where a periodic mark stands', () => {
    const { transport, log } = recorder();
    const p = new Playout(transport, () => 0);
    const a = p.beginSegment('first');
    p.push(a, new Uint8Array(160 * 5).fill(0x7f)); // 100 ms: a periodic mark falls on its last frame too
    p.endSegment(a);
    const b = p.beginSegment('second');
    p.push(b, new Uint8Array(160 * 3).fill(0x7f));
    p.endSegment(b);
    p.tick(false);
    // At most two frames a slot: the eight frames take four slots.
    for (let i = 0; i < 4; i++) p.tick();
    const marks = log.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('mark'));
    const ends = marks.filter(([l]) => l.endsWith('.end'));
    expect(ends).toHaveLength(2);
    // The first .end comes after frame 5 and before frame 6; the second after the last frame.
    expect(log.slice(0, ends[0][1]).filter((l) => l === 'frame')).toHaveLength(5);
    expect(log.slice(ends[0][1]).filter((l) => l === 'frame')).toHaveLength(3);
    expect(ends[1][1]).toBe(log.length - 1);
    // Periodic marks keep their plain names, and an echoed .end mark is recognised.
    expect(marks.filter(([l]) => !l.endsWith('.end')).every(([l]) => /^mark \d+\.\d+$/.test(l))).toBe(true);
    expect(p.onMarkPlayed(ends[1][0].slice('mark '.length))).toBe(true);
  });

  it("builds the lead at two frames a slot: a reply's first 100 ms chunk leaves over three slots, and the far end runs dry when it would after a burst", () => {
    const { transport, log } = recorder();
    const p = new Playout({ ...transport, leadMs: 100 }, () => 0);
    const a = p.beginSegment('hello');
    p.push(a, new Uint8Array(160 * 5).fill(0x7f));
    const frames = () => log.filter((l) => l === 'frame').length;
    p.tick(false); // the chunk arrives between slots
    expect(frames()).toBe(2);
    p.tick();
    expect(frames()).toBe(4);
    p.tick();
    expect(frames()).toBe(5);
    // The far end plays the five frames out at the fifth slot, as after five sent at once.
    p.tick();
    p.tick();
    expect(p.idleSinceMs()).toBe(-1);
    p.tick();
    expect(p.idleSinceMs()).toBe(100);
    // More audio: two a slot until the far end is 100 ms ahead, then one a slot.
    p.push(a, new Uint8Array(160 * 30).fill(0x7f));
    for (let i = 0; i < 4; i++) p.tick();
    expect(frames()).toBe(13);
    for (let i = 0; i < 5; i++) p.tick();
    expect(frames()).toBe(18);
  });
});
