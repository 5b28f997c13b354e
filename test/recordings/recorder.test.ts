// The recorder's timeline on its own: both sides aligned on the 20 ms clock,
// silence where a side sent nothing, jitter absorbed, the agent's lead kept,
// chunks of one second, and a mixed track summed in linear.
import { describe, expect, it } from 'vitest';
import { CallRecorder } from '../../src/recordings/recorder.js';
import { ulawDecode, ulawEncode } from '../../src/media/g711.js';

const frame = (v: number) => new Uint8Array(160).fill(v);

function run(channels: 'dual' | 'mixed') {
  const chunks: Buffer[] = [];
  const r = new CallRecorder(channels, (c) => chunks.push(c));
  return { r, out: () => Buffer.concat(chunks), chunks };
}

describe('CallRecorder', () => {
  it('puts each side on the shared timeline, silence in the gaps', () => {
    const { r, out } = run('dual');
    for (let slot = 0; slot < 200; slot++) {
      r.caller(frame(slot < 100 ? 0x10 : 0x20));
      // The agent speaks from slot 150 to 159; its first frames go out 5 at once (the transport's lead).
      if (slot === 150) for (let k = 0; k < 5; k++) r.agent(frame(0x30 + k));
      else if (slot > 150 && slot < 155) r.agent(frame(0x40));
      r.tick();
    }
    r.close();
    const d = out();
    expect(d.length).toBe(2 * 200 * 160);
    const left = (i: number) => d[2 * i * 160];
    const right = (i: number) => d[2 * i * 160 + 1];
    expect(left(0)).toBe(0x10);
    expect(left(99)).toBe(0x10);
    expect(left(100)).toBe(0x20);
    expect(right(149)).toBe(0xff);
    expect(right(150)).toBe(0x30);
    expect(right(154)).toBe(0x34);
    expect(right(158)).toBe(0x40);
    expect(right(159)).toBe(0xff);
  });

  it('absorbs caller jitter (late and bunched frames keep their order, no silence inserted)', () => {
    const { r, out } = run('dual');
    let n = 0;
    for (let slot = 0; slot < 100; slot++) {
      // Frames arrive in bursts of 3 every third slot.
      if (slot % 3 === 2) for (let k = 0; k < 3; k++) r.caller(frame(n++ % 200));
      r.tick();
    }
    r.close();
    const d = out();
    const left = [...Array(d.length / 320).keys()].map((i) => d[2 * i * 160]);
    expect(left.slice(0, n)).toEqual([...Array(n).keys()].map((i) => i % 200));
  });

  it('a real gap in the caller audio is silence, and later audio lands at its time', () => {
    const { r, out } = run('dual');
    for (let slot = 0; slot < 100; slot++) {
      if (slot < 10 || slot >= 60) r.caller(frame(0x11));
      r.tick();
    }
    r.close();
    const d = out();
    const left = (i: number) => d[2 * i * 160];
    expect(left(9)).toBe(0x11);
    expect(left(10)).toBe(0xff);
    expect(left(59)).toBe(0xff);
    expect(left(60)).toBe(0x11);
  });

  it('slots the clock skipped (a stall) are a gap in the agent\'s voice; the caller\'s late burst keeps its place', () => {
    const { r, out } = run('dual');
    let n = 0;
    for (let slot = 100; slot < 300; slot++) {
      // Slots 150–159 never run: the stall. The caller's frames of those slots arrive with slot 160.
      if (slot >= 150 && slot < 160) continue;
      // As in a session: the slot's tick, then what arrived and what was sent in it.
      r.tick(slot);
      const burst = slot === 160 ? 11 : 1;
      for (let k = 0; k < burst; k++) r.caller(frame(n++ % 200));
      r.agent(frame(0x55));
    }
    r.close();
    const d = out();
    const left = (i: number) => d[2 * i * 160];
    const right = (i: number) => d[2 * i * 160 + 1];
    // The caller's frame k sits in slot k: no silence inserted, no shift.
    for (const k of [0, 49, 50, 55, 60, 61, 150, 199]) expect(left(k)).toBe(k % 200);
    // The agent (slot s at index s - 99): a frame per slot that ran, silence for the ten that did not.
    expect(right(50)).toBe(0x55);
    expect(right(51)).toBe(0xff);
    expect(right(60)).toBe(0xff);
    expect(right(61)).toBe(0x55);
  });

  it('writes finished timeline in 1 s chunks while the call goes on (nothing waits for the end)', () => {
    const { r, chunks } = run('dual');
    for (let slot = 0; slot < 600; slot++) {
      r.caller(frame(1));
      r.tick();
    }
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(chunks[0].length).toBe(2 * 8000);
  });

  it('mixed: one channel, the sum in linear re-encoded', () => {
    const { r, out } = run('mixed');
    const a = ulawEncode(new Int16Array(160).fill(1000));
    const b = ulawEncode(new Int16Array(160).fill(-3000));
    r.caller(a);
    r.agent(b);
    r.tick();
    r.close();
    const d = out();
    expect(d.length).toBe(160);
    const want = ulawEncode(new Int16Array([ulawDecode(a)[0] + ulawDecode(b)[0]]))[0];
    expect(d[0]).toBe(want);
  });

  it('a side far ahead forces older timeline out instead of growing', () => {
    const { r, chunks } = run('dual');
    for (let k = 0; k < 1000; k++) r.caller(frame(2));
    expect(chunks.reduce((n, c) => n + c.length, 0)).toBeGreaterThan(0);
    r.close();
    expect(chunks.reduce((n, c) => n + c.length, 0)).toBe(2 * 1000 * 160);
  });
  it('moves up to a caller that runs ahead of the clock instead of forcing a chunk out per frame', () => {
    const { r, out, chunks } = run('dual');
    // 80 frames arrive before the session joins the clock (its provider streams were still opening).
    for (let k = 0; k < 80; k++) r.caller(frame(0x11));
    for (let slot = 1; slot <= 500; slot++) {
      r.caller(frame(0x22));
      r.tick(slot);
    }
    // A whole chunk each while the call runs (a full ring used to force out one 20 ms frame at a time).
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.every((c) => c.length >= 2 * 50 * 160)).toBe(true);
    r.close();
    const d = out();
    const left = (i: number) => d[2 * i * 160];
    // Nothing of the caller is lost or reordered: the early frames, then the rest.
    const lefts = Array.from({ length: d.length / 320 }, (_, i) => left(i)).filter((v) => v !== 0xff);
    expect(lefts.length).toBe(580);
    expect(lefts.slice(0, 80).every((v) => v === 0x11)).toBe(true);
    expect(lefts.slice(80).every((v) => v === 0x22)).toBe(true);
  });

  it('interleaves the same whichever path the chunk takes (whole frames four pairs at a time, odd lengths pair by pair, across the ring\'s end)', () => {
    // Ticking with 20 ms frames: whole-second chunks (the 32-bit path). A caller far ahead with 161-sample frames and no
    // clock: chunks forced out at odd lengths and offsets (the pair-by-pair path), wrapping around the ring.
    for (const [len, ticking] of [[160, true], [161, false]] as const) {
      const { r, out } = run('dual');
      let n = 0;
      const sent: number[] = [];
      for (let slot = 0; slot < 400; slot++) {
        const f = new Uint8Array(len).map(() => (n++ * 7) & 0x7f);
        sent.push(...f);
        r.caller(f);
        if (ticking) {
          r.agent(new Uint8Array(len).map((_, i) => 0x80 | ((slot + i) & 0x7f)));
          r.tick();
        }
      }
      r.close();
      const d = out();
      expect(d.length).toBe(2 * Math.ceil(sent.length / 160) * 160);
      const left = d.filter((_, i) => i % 2 === 0);
      expect(Buffer.compare(left.subarray(0, sent.length), Buffer.from(sent))).toBe(0);
      const right = d.filter((_, i) => i % 2 === 1);
      if (ticking) expect([...right.subarray(0, len)]).toEqual(Array.from({ length: len }, (_, i) => 0x80 | (i & 0x7f)));
      else expect(right.every((v) => v === 0xff)).toBe(true);
    }
  });

  it('fills chunks from the given allocator (the file writer\'s pool)', () => {
    const sizes: number[] = [];
    const chunks: Buffer[] = [];
    const r = new CallRecorder('dual', (c) => chunks.push(c), (bytes) => {
      sizes.push(bytes);
      // Data at an offset inside a larger buffer, as the writer's pool gives it.
      return Buffer.from(new ArrayBuffer(60 + bytes), 60, bytes);
    });
    for (let slot = 0; slot < 200; slot++) {
      r.caller(frame(0x21));
      r.tick();
    }
    r.close();
    expect(sizes.length).toBe(chunks.length);
    expect(chunks.every((c) => c.byteOffset === 60)).toBe(true);
    expect(Buffer.concat(chunks).subarray(0, 4)).toEqual(Buffer.from([0x21, 0xff, 0x21, 0xff]));
  });
});
