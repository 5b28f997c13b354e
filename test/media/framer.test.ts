import { describe, expect, it } from 'vitest';
import { Framer, MAX_FRAMES_PER_PUSH } from '../../src/media/framer.js';

const seq = (n: number, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function concat(frames: Uint8Array[]): number[] {
  return frames.flatMap((f) => Array.from(f));
}

describe('Framer', () => {
  it.each([0, 1, 159])('holds %i bytes back without emitting', (n) => {
    const f = new Framer(160);
    expect(f.push(seq(n))).toEqual([]);
    expect(f.buffered).toBe(n);
  });

  it('emits exactly one frame for 160 bytes', () => {
    const f = new Framer();
    const out = f.push(seq(160));
    expect(out.length).toBe(1);
    expect(out[0].length).toBe(160);
    expect(Array.from(out[0])).toEqual(Array.from(seq(160)));
    expect(f.buffered).toBe(0);
  });

  it('emits one frame and carries 1 byte for 161 bytes', () => {
    const f = new Framer();
    const out = f.push(seq(161));
    expect(out.length).toBe(1);
    expect(f.buffered).toBe(1);
    const next = f.push(seq(159, 161));
    expect(next.length).toBe(1);
    expect(Array.from(next[0])).toEqual(Array.from(seq(160, 160)));
  });

  it('splits 10 kB into 62 frames and carries the remainder', () => {
    const f = new Framer();
    const out = f.push(seq(10_000));
    expect(out.length).toBe(62);
    expect(out.every((fr) => fr.length === 160)).toBe(true);
    expect(f.buffered).toBe(10_000 - 62 * 160);
    expect(concat(out)).toEqual(Array.from(seq(62 * 160)));
  });

  it('reassembles many tiny pushes without losing or reordering a byte', () => {
    const f = new Framer();
    const data = seq(5000);
    const out: Uint8Array[] = [];
    let i = 0;
    let size = 1;
    while (i < data.length) {
      out.push(...f.push(data.subarray(i, i + size)));
      i += size;
      size = (size * 7 + 3) % 23; // 0..22, including empty pushes
    }
    expect(concat(out)).toEqual(Array.from(data.subarray(0, Math.floor(5000 / 160) * 160)));
    expect(f.buffered).toBe(5000 % 160);
  });

  it('returns frames that do not alias its internal buffer or the input', () => {
    const f = new Framer(4);
    const input = seq(6);
    const [a] = f.push(input);
    input.fill(0);
    const [b] = f.push(Uint8Array.of(9, 9));
    expect(Array.from(a)).toEqual([0, 1, 2, 3]);
    expect(Array.from(b)).toEqual([4, 5, 9, 9]);
  });

  it('flush pads the remainder with μ-law silence; reset drops it', () => {
    const f = new Framer(160);
    f.push(seq(10));
    const last = f.flush();
    expect(last?.length).toBe(160);
    expect(Array.from(last!.subarray(0, 10))).toEqual(Array.from(seq(10)));
    expect(last!.subarray(10).every((b) => b === 0xff)).toBe(true);
    expect(f.flush()).toBeNull();
    f.push(seq(10));
    f.reset();
    expect(f.buffered).toBe(0);
    expect(f.flush()).toBeNull();
  });

  it('rejects bad arguments', () => {
    expect(() => new Framer(0)).toThrow(RangeError);
    expect(() => new Framer(1.5)).toThrow(TypeError);
    expect(() => new Framer(NaN)).toThrow(TypeError);
    const f = new Framer();
    expect(() => f.push('abc' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => f.push(new Int16Array(4) as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('refuses a chunk that would complete more than MAX_FRAMES_PER_PUSH frames, whole, keeping what it held', () => {
    const f = new Framer(1);
    f.push(new Uint8Array(0));
    expect(f.push(new Uint8Array(MAX_FRAMES_PER_PUSH)).length).toBe(MAX_FRAMES_PER_PUSH);
    expect(() => f.push(new Uint8Array(2 * MAX_FRAMES_PER_PUSH))).toThrow(RangeError);
    const g = new Framer(160);
    g.push(new Uint8Array(100).fill(7));
    expect(() => g.push(new Uint8Array(160 * (MAX_FRAMES_PER_PUSH + 2)))).toThrow(RangeError);
    expect(g.buffered).toBe(100);
    expect(g.push(new Uint8Array(60))[0][0]).toBe(7);
  });
});
