// JitterBuffer on crafted packet sequences, replayed in real time: packets
// arrive at their send time plus a transit delay, pop() runs every 20 ms.
import { describe, expect, it } from 'vitest';
import { JitterBuffer, type JitterBufferOptions } from '../../src/media/jitter-buffer.js';
import { alawDecode, ulawDecode, ulawEncode } from '../../src/media/g711.js';

const TAG = 0xf5;
const SINE_HZ = 160; // 50-sample pitch period, inside the 5-15 ms search range

/** A 20 ms μ-law frame of a continuous sine (or silence) tagged with its frame number. */
function frame(k: number, voiced = true): Uint8Array {
  const pcm = new Int16Array(160);
  if (voiced) for (let i = 0; i < 160; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * SINE_HZ * (k * 160 + i)) / 8000));
  const out = Uint8Array.from(ulawEncode(pcm));
  out[155] = TAG;
  for (let n = 0; n < 4; n++) out[156 + n] = 0xf0 | ((k >> (4 * n)) & 0xf);
  return out;
}
function tagOf(payload: Uint8Array): number {
  if (payload[155] !== TAG) return -1;
  let k = 0;
  for (let n = 0; n < 4; n++) k |= (payload[156 + n] & 0xf) << (4 * n);
  return k;
}
function rms(payload: Uint8Array, decode = ulawDecode): number {
  const pcm = decode(payload.subarray(0, 150));
  return Math.sqrt(pcm.reduce((a, v) => a + v * v, 0) / pcm.length);
}

interface Pkt { seq: number; timestamp: number; arrivalMs: number; payload: Uint8Array; ssrc?: number }
interface Out { t: number; tag: number; concealed: boolean; silent: boolean; rms: number; payload: Uint8Array }

/** Packets for frames [from, to) on a 20 ms grid; `transit(k)` gives each one's network delay. */
function stream(from: number, to: number, o: { seq0?: number; ts0?: number; transit?: (k: number) => number; voiced?: (k: number) => boolean; ssrc?: number } = {}): Pkt[] {
  const out: Pkt[] = [];
  for (let k = from; k < to; k++) {
    out.push({
      seq: ((o.seq0 ?? 1000) + k) & 0xffff,
      timestamp: ((o.ts0 ?? 123_456) + k * 160) >>> 0,
      arrivalMs: k * 20 + (o.transit ? o.transit(k) : 30),
      payload: frame(k, o.voiced ? o.voiced(k) : true),
      ssrc: o.ssrc,
    });
  }
  return out;
}

/** Pushes packets as their arrival time passes and pops every 20 ms until `untilMs`. */
function replay(jb: JitterBuffer, packets: Pkt[], untilMs: number, silence = 0xff): Out[] {
  const queue = [...packets].sort((a, b) => a.arrivalMs - b.arrivalMs);
  const outs: Out[] = [];
  let i = 0;
  for (let t = 7; t < untilMs; t += 20) {
    while (i < queue.length && queue[i].arrivalMs <= t) jb.push(queue[i++]);
    const f = jb.pop(t);
    if (!f) continue;
    expect(f.payload.length).toBe(160);
    outs.push({ t, tag: tagOf(f.payload), concealed: f.concealed, silent: f.payload.every((b) => b === silence), rms: rms(f.payload), payload: f.payload });
  }
  return outs;
}
/** Concealed frames up to the last real one (after the stream ends everything is concealment). */
const concealedInStream = (outs: Out[]) => {
  const last = outs.map((o) => o.tag >= 0).lastIndexOf(true);
  return outs.slice(0, last).filter((o) => o.concealed).length;
};
const tags = (outs: Out[]) => outs.map((o) => o.tag).filter((t) => t >= 0);
const consecutive = (xs: number[]) => xs.every((x, i) => i === 0 || x === xs[i - 1] + 1);

function make(opts?: JitterBufferOptions): JitterBuffer {
  return new JitterBuffer(opts);
}

describe('JitterBuffer', () => {
  it('plays a steady stream in order, byte for byte, after building up its delay', () => {
    const jb = make();
    const packets = stream(0, 100);
    const outs = replay(jb, packets, 2200);
    expect(tags(outs)).toEqual(Array.from({ length: 100 }, (_, k) => k));
    const first = outs.find((o) => o.tag === 0)!;
    expect(first.payload).toEqual(packets[0].payload);
    expect(jb.stats()).toMatchObject({ received: 100, played: 100, late: 0, lost: 0, duplicate: 0, reordered: 0 });
  });

  it('crosses the 16-bit sequence and 32-bit timestamp wrap without loss', () => {
    const jb = make();
    const outs = replay(jb, stream(0, 100, { seq0: 65_500, ts0: 2 ** 32 - 160 * 50 }), 2200);
    expect(tags(outs)).toEqual(Array.from({ length: 100 }, (_, k) => k));
    expect(concealedInStream(outs)).toBe(0);
    expect(jb.stats()).toMatchObject({ played: 100, late: 0, lost: 0 });
  });

  it('puts reordered packets back in order', () => {
    // A floor above what the path needs keeps the delay still (no time-scale
    // step moves the frames), so every output frame is one packet, its tag readable.
    const jb = make({ minDelayMs: 60 });
    // Every 10th packet arrives 15 ms after its successor.
    const outs = replay(jb, stream(0, 200, { transit: (k) => (k % 10 === 5 ? 55 : 30) }), 4200);
    expect(tags(outs)).toEqual(Array.from({ length: 200 }, (_, k) => k));
    const s = jb.stats();
    expect(s.reordered).toBeGreaterThanOrEqual(15);
    expect(s).toMatchObject({ late: 0, lost: 0 });
  });

  it('waits for reordered packets instead of losing them, and wins the wait back in pauses', () => {
    const jb = make();
    // 60 s of talkspurts (1.4 s) and quiet pauses (0.6 s); one packet in 29
    // trails its successor by 25 ms, and every 10 s one by 50 ms: deeper than
    // anything the last few seconds showed, so the target cannot cover it.
    const transit = (k: number) => 30 + ((k * 13) % 5) + (k % 29 === 7 ? 25 : 0) + (k % 500 === 250 ? 50 : 0);
    const packets = stream(0, 3000, { transit, voiced: (k) => k % 100 < 70 });
    // Sampled before the stream ends (after it, underrun holds grow the delay).
    const outs = replay(jb, packets, 59_000);
    // Every packet the target covers plays, in order; the 50 ms ones arrive
    // after their frame began to play as concealment: late (their remaining
    // samples are merged in), never lost. Time-scale steps in speech shift
    // the frames, so only some output frames still carry a readable tag.
    const played = tags(outs);
    expect(played.length).toBeGreaterThan(2800);
    expect(played.every((t, i) => i === 0 || t > played[i - 1])).toBe(true);
    const s = jb.stats();
    expect(s.reordered).toBeGreaterThan(90);
    const deep = packets.filter((p, k) => k % 500 === 250 && p.arrivalMs <= 59_000).length;
    expect(s).toMatchObject({ lost: 0 });
    expect(s.late).toBeLessThanOrEqual(deep);
    expect(s.played + s.late).toBeGreaterThanOrEqual(s.received - 3);
    // The waits (one concealed frame each) do not ratchet the delay up: it
    // stays in the band the target sets.
    expect(s.currentDelayMs).toBeLessThan(s.targetDelayMs + 20);
    expect(s.currentDelayMs).toBeLessThan(90);
  });

  it('does not wait for a missing packet on a path that never reorders', () => {
    const jb = make({ minDelayMs: 60 }); // the delay kept still: tags readable
    // Isolated losses on a steady path: each gap is concealed in place, and
    // the stream keeps its timing (no held frames to win back).
    const packets = stream(0, 500).filter((_, k) => k % 50 !== 25);
    const outs = replay(jb, packets, 10_300);
    // 490 minus at most one frame shed while the start-up target settles.
    expect(tags(outs).length).toBeGreaterThanOrEqual(489);
    for (let k = 25; k < 500; k += 50) {
      const at = outs.findIndex((o) => o.tag === k + 1);
      expect(outs[at - 1].concealed).toBe(true);
      expect(outs[at - 2].tag).toBe(k - 1);
    }
    expect(jb.stats()).toMatchObject({ lost: 10, late: 0, reordered: 0 });
  });

  it('drops and counts duplicates', () => {
    const jb = make();
    const packets = stream(0, 100);
    const dups = packets.filter((_, k) => k % 5 === 0).map((p) => ({ ...p, arrivalMs: p.arrivalMs + 3 }));
    const outs = replay(jb, [...packets, ...dups], 2200);
    expect(tags(outs)).toEqual(Array.from({ length: 100 }, (_, k) => k));
    expect(jb.stats()).toMatchObject({ received: 120, duplicate: 20, played: 100, lost: 0 });
    expect(jb.push(packets[99])).toBe('duplicate');
  });

  it('drops a packet behind the playout point as late, conceals its slot, and does not count it lost', () => {
    const jb = make();
    const outs = replay(jb, stream(0, 100, { transit: (k) => (k === 50 ? 600 : 30) }), 2600);
    expect(tags(outs)).not.toContain(50);
    expect(tags(outs)).toContain(51);
    const gapAt = outs.findIndex((o) => o.tag === 51) - 1;
    expect(outs[gapAt].concealed).toBe(true);
    expect(jb.stats()).toMatchObject({ late: 1, lost: 0, played: 99 });
  });

  it('treats a timestamp jump without a sequence gap (DTX) as silence, not loss', () => {
    const jb = make();
    // Talkspurt, two quiet hangover frames, then 1 s with nothing sent: the next
    // packet has the next sequence number but a timestamp 50 frames later.
    const voiced = (k: number) => k < 48 || k >= 100;
    const before = stream(0, 50, { voiced });
    const after = stream(100, 150, { voiced }).map((p) => ({ ...p, seq: (p.seq - 50) & 0xffff }));
    const outs = replay(jb, [...before, ...after], 3200);
    expect(tags(outs)).toEqual([...Array.from({ length: 50 }, (_, k) => k), ...Array.from({ length: 50 }, (_, k) => k + 100)]);
    const gap = outs.slice(outs.findIndex((o) => o.tag === 49) + 1, outs.findIndex((o) => o.tag === 100));
    expect(gap.length).toBeGreaterThanOrEqual(45);
    expect(gap.every((o) => o.silent && !o.concealed)).toBe(true);
    expect(concealedInStream(outs)).toBe(0);
    expect(jb.stats()).toMatchObject({ lost: 0, late: 0 });
  });

  it('does not count sequence numbers taken by RFC 4733 events as lost: their gap plays as silence', () => {
    const jb = make({ minDelayMs: 60 }); // the delay kept still: tags readable
    // Frames 40-44: the sender sends telephone-events instead of audio (same
    // SSRC and sequence space, another payload type): the receiver skips them.
    const packets = stream(0, 100, { voiced: (k) => k < 38 || k >= 45 });
    const events = new Set([40, 41, 42, 43, 44]);
    const outs: Out[] = [];
    let i = 0;
    for (let t = 7; t < 2400; t += 20) {
      for (; i < packets.length && packets[i].arrivalMs <= t; i++) {
        if (events.has(i)) jb.skip(packets[i].seq);
        else jb.push(packets[i]);
      }
      const f = jb.pop(t);
      if (f) outs.push({ t, tag: tagOf(f.payload), concealed: f.concealed, silent: f.payload.every((b) => b === 0xff), rms: 0, payload: f.payload });
    }
    expect(tags(outs)).toEqual(Array.from({ length: 100 }, (_, k) => k).filter((k) => !events.has(k)));
    const gap = outs.slice(outs.findIndex((o) => o.tag === 39) + 1, outs.findIndex((o) => o.tag === 45));
    expect(gap).toHaveLength(5);
    expect(gap.every((o) => o.silent && !o.concealed)).toBe(true);
    expect(concealedInStream(outs)).toBe(0);
    expect(jb.stats()).toMatchObject({ lost: 0, late: 0, played: 95 });
    // Without the skips the same gap is loss, concealed.
    const plain = make({ minDelayMs: 60 });
    replay(plain, packets.filter((_, k) => !events.has(k)), 2400);
    expect(plain.stats().lost).toBe(5);
    expect(() => jb.skip(70_000)).toThrow(RangeError);
    jb.close();
    expect(() => jb.skip(1)).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    plain.close();
  });

  it('drops its cautious start-up delay after 2 s on a calm path', () => {
    const jb = make();
    const packets = stream(0, 250);
    let i = 0;
    const target: Record<number, number> = {};
    for (let t = 7; t < 5000; t += 20) {
      while (i < packets.length && packets[i].arrivalMs <= t) jb.push(packets[i++]);
      jb.pop(t);
      if (t === 1007 || t === 3007) target[t] = jb.stats().targetDelayMs;
    }
    expect(target[1007]).toBeGreaterThanOrEqual(40);
    expect(target[3007]).toBeLessThanOrEqual(24);
    expect(jb.stats().late).toBe(0);
    jb.close();
  });

  it('plays A-law comfort silence (0xD5) in a DTX gap', () => {
    const jb = make({ codec: 'pcma' });
    const quiet = new Uint8Array(160).fill(0xd5);
    const packets = stream(0, 20).map((p) => ({ ...p, payload: quiet }));
    const after = stream(70, 90).map((p) => ({ ...p, seq: (p.seq - 50) & 0xffff, payload: quiet }));
    const outs = replay(jb, [...packets, ...after], 2000, 0xd5);
    expect(outs.every((o) => o.silent && !o.concealed)).toBe(true);
    expect(alawDecode(outs[30].payload).every((v) => Math.abs(v) <= 8)).toBe(true);
    expect(jb.stats()).toMatchObject({ lost: 0, concealed: 0, played: 40 });
  });

  it('restarts cleanly on an SSRC change and on a sequence jump of thousands', () => {
    const jb = make();
    const a = stream(0, 50, { ssrc: 0x1111 });
    const b = stream(50, 100, { seq0: 40_000, ts0: 9_999, ssrc: 0x2222 });
    const c = stream(100, 150, { seq0: 20_000, ts0: 77_777, ssrc: 0x2222 });
    expect(jb.push(a[0])).toBe('accepted');
    const outs = replay(jb, [...a.slice(1), ...b, ...c], 3300);
    // Each restart flushes what was still buffered of the old stream (two frames
    // here) and rebuilds its delay with silence, not null; nothing counts as lost.
    const played = tags(outs);
    for (const [from, to] of [[0, 48], [50, 98], [100, 150]]) {
      expect(played.filter((k) => k >= from && k < to)).toEqual(Array.from({ length: to - from }, (_, i) => from + i));
    }
    const firstB = outs.findIndex((o) => o.tag === 50);
    expect(outs.slice(firstB - 2, firstB).every((o) => o.silent)).toBe(true);
    expect(jb.push({ ...c[0], arrivalMs: 5000 })).toBe('duplicate');
    expect(jb.push({ ...b[0], seq: 0, arrivalMs: 5000 })).toBe('restarted');
    // Next sequence number but a timestamp an hour ahead: a sender restart, not a pause.
    jb.pop(5010);
    jb.pop(5030);
    expect(jb.push({ ...b[1], seq: 1, timestamp: (b[0].timestamp + 8000 * 3600) >>> 0, arrivalMs: 5040 })).toBe('restarted');
    expect(jb.stats()).toMatchObject({ late: 0, lost: 0 });
  });

  it('conceals a long outage with a fading pitch-period repeat, then silence', () => {
    // Fixed at 60 ms (no hold to win back after the outage): tags readable.
    const jb = make({ minDelayMs: 60, maxDelayMs: 60 });
    const packets = stream(0, 200).filter((p, k) => k < 100 || k >= 150);
    const outs = replay(jb, packets, 4300);
    const start = outs.findIndex((o) => o.tag === 99) + 1;
    const conceal = outs.slice(start, start + 5);
    const speech = outs[start - 1].rms;
    expect(conceal.every((o) => o.concealed)).toBe(true);
    // Full level for 10 ms then -20 %/10 ms: strong, weaker, weaker, silent from 60 ms.
    expect(conceal[0].rms).toBeGreaterThan(0.6 * speech);
    expect(conceal[1].rms).toBeLessThan(conceal[0].rms);
    expect(conceal[1].rms).toBeGreaterThan(0.2 * speech);
    expect(conceal[2].rms).toBeLessThan(conceal[1].rms);
    expect(conceal[3].silent && conceal[4].silent).toBe(true);
    // The repeat continues the sine in phase (pitch found by cross-correlation).
    const got = ulawDecode(conceal[0].payload).slice(0, 80);
    const want = ulawDecode(frame(100)).slice(0, 80);
    const dot = got.reduce((a, v, i) => a + v * want[i], 0);
    const norm = Math.sqrt(got.reduce((a, v) => a + v * v, 0) * want.reduce((a, v) => a + v * v, 0));
    expect(dot / norm).toBeGreaterThan(0.9);
    expect(tags(outs)).toContain(150);
    expect(tags(outs).slice(-50)).toEqual(Array.from({ length: 50 }, (_, k) => k + 150));
    expect(jb.stats()).toMatchObject({ lost: 50, late: 0 });
  });

  it('grows its target under jitter and shrinks it again when the network calms', () => {
    const jb = make();
    let s = 7;
    const rand = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const jittery = (k: number) => 30 + (k >= 1000 && k < 2000 ? rand() * 120 : 0);
    const packets = stream(0, 4500, { transit: jittery });
    // One continuous replay, sampled at the end of each phase.
    const queue = [...packets].sort((a, b) => a.arrivalMs - b.arrivalMs);
    const samples: Record<string, number> = {};
    let i = 0;
    for (let t = 7; t < 90_000; t += 20) {
      while (i < queue.length && queue[i].arrivalMs <= t) jb.push(queue[i++]);
      jb.pop(t);
      if (t === 19_987) samples.calm = jb.stats().targetDelayMs;
      if (t === 39_987) samples.jitter = jb.stats().targetDelayMs;
      if (t === 89_987) samples.after = jb.stats().targetDelayMs;
    }
    expect(samples.calm).toBeLessThanOrEqual(30);
    expect(samples.jitter).toBeGreaterThan(100);
    expect(samples.after).toBeLessThanOrEqual(30);
    expect(jb.stats().currentDelayMs).toBeLessThan(samples.after + 40);
  });

  it('holds a target its late-loss budget caps at 100 ms at the pop step just below, not a whole step above', () => {
    // 5 % of packets 90 ms late (covering them is cheap) and 0.8 % 110 ms late:
    // the cost rule would cover those too, the budget's 100 ms floor caps the
    // target at 100. Pops at 7 + 20n put the deadline steps at 97 and 117 ms.
    // Quiet frames, so each delay change is made at once.
    const jb = make();
    const transit = (k: number) => 30 + (k % 125 === 62 ? 110 : k % 20 === 0 ? 90 : 0);
    replay(jb, stream(0, 3000, { transit, voiced: () => false }), 61_000);
    const s = jb.stats();
    expect(s.targetDelayMs).toBe(100);
    // Most frames play 97 ms after they could have (the step at 117 would make that 117).
    expect(s.meanDelayMs).toBeLessThan(100);
    // The 110 ms ones are late, as the target leaves them: within the 1 % budget.
    expect(s.late).toBeGreaterThanOrEqual(20);
    expect(s.late).toBeLessThanOrEqual(30);
  });

  it('reset() forgets the stream and the counters; close() makes every later call throw', () => {
    const jb = make();
    replay(jb, stream(0, 20), 500);
    jb.reset();
    expect(jb.stats()).toMatchObject({ received: 0, played: 0 });
    expect(jb.pop(1000)).toBeNull();
    jb.close();
    jb.close(); // idempotent
    expect(jb.closed).toBe(true);
    const closed = { name: 'TypeError', code: 'ERR_AYBIZA_CLOSED', message: 'JitterBuffer is closed' };
    for (const call of [() => jb.pop(0), () => jb.push(stream(0, 1)[0]), () => jb.stats(), () => jb.reset()]) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(expect.objectContaining(closed));
    }
    // The closed check comes first: even a bad argument reports the closed object.
    expect(() => jb.push(null as never)).toThrow(expect.objectContaining(closed));
  });
});
