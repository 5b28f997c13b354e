// Hammers every G.711 export, native and wrapped, with hostile arguments: the
// only acceptable outcomes are a result or a TypeError/RangeError.
import { describe, expect, it } from 'vitest';
import { detached, detachedView16, HUGE, outcome, rng } from '../helpers/hostile.js';
import * as g711 from '../../src/media/g711.js';
import { native } from '../../src/media/native.js';

const POOL: (() => unknown)[] = [
  () => undefined, () => null, () => 0, () => -1, () => NaN, () => Infinity, () => 1e300, () => 'abc', () => '',
  () => true, () => ({}), () => [], () => [1, 2, 3], () => Symbol('x'), () => 10n, () => () => 0,
  () => new Uint8Array(0), () => new Uint8Array(1), () => new Uint8Array(159), () => new Uint8Array(160),
  () => new Uint8Array(161), () => Buffer.alloc(3), () => Buffer.alloc(320), () => new Int16Array(0), () => new Int16Array(160),
  () => new Int16Array(1), () => new Float32Array(160), () => new Uint16Array(160), () => new Int8Array(160),
  () => new Uint8ClampedArray(160), () => new DataView(new ArrayBuffer(160)), () => new ArrayBuffer(160),
  () => new Uint8Array(new SharedArrayBuffer(160)), () => new Int16Array(new SharedArrayBuffer(320)),
  () => detached(), () => detachedView16(), () => HUGE, () => new Uint8Array(new ArrayBuffer(161), 1, 160),
];

const NATIVE_FNS = ['ulawEncodeInto', 'alawEncodeInto', 'ulawDecodeInto', 'alawDecodeInto', 'ulawToAlawInto', 'alawToUlawInto'];
const WRAPPED = Object.entries(g711).filter(([, v]) => typeof v === 'function') as [string, (...a: unknown[]) => unknown][];

describe('G.711 exports under hostile input', () => {
  it('native entry points reject specific bad arguments with clear errors', () => {
    const dst = new Uint8Array(160);
    const gone = detached();
    expect(gone.byteLength).toBe(0); // a view on a detached buffer reads as empty
    expect(() => native.ulawDecodeInto('x' as never, new Int16Array(160))).toThrow(/argument 0 \(src\)/);
    expect(() => native.ulawEncodeInto(Buffer.alloc(3), dst)).toThrow(RangeError);
    expect(() => native.ulawEncodeInto(Buffer.alloc(3), dst)).toThrow(/odd byte count/);
    expect(() => native.ulawDecodeInto(new Uint8Array(161), new Int16Array(160))).toThrow(/needed/);
    expect(() => native.ulawToAlawInto(gone, dst)).toThrow(/detached/);
    expect(() => native.ulawDecodeInto(new Uint8Array(4), detachedView16())).toThrow(/detached/);
    expect(() => native.ulawToAlawInto(new Uint8Array(new SharedArrayBuffer(4)), dst)).toThrow(/SharedArrayBuffer/);
    expect(() => native.ulawToAlawInto(HUGE, HUGE)).toThrow(RangeError);
    expect(() => native.alawEncodeInto(new Float32Array(4) as never, dst)).toThrow(TypeError);
    expect(() => (native.alawDecodeInto as (...a: unknown[]) => unknown)()).toThrow(TypeError);
  });

  it('survives 20,000 random calls across every export', () => {
    const rand = rng(0xa1b12a);
    const fns: [string, (...a: unknown[]) => unknown][] = [
      ...NATIVE_FNS.map((n) => [`native.${n}`, native[n] as (...a: unknown[]) => unknown] as [string, (...a: unknown[]) => unknown]),
      ...WRAPPED,
    ];
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < 20_000; i++) {
      const [, fn] = fns[Math.floor(rand() * fns.length)];
      const argc = Math.floor(rand() * 4);
      const args = Array.from({ length: argc }, () => POOL[Math.floor(rand() * POOL.length)]());
      outcomes[outcome(() => fn(...args))]++;
    }
    expect(outcomes.rejected).toBeGreaterThan(1000);
    expect(outcomes.ok).toBeGreaterThan(100);
  });
});
