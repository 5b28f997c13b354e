// Hammers DtmfDetector, native class and TypeScript wrapper, with hostile
// constructor options and frames: the only acceptable outcomes are a result
// or a TypeError/RangeError (and after close(), always the TypeError).
import { describe, expect, it } from 'vitest';
import { detached, detachedView16, HUGE, noisy, outcome, rng } from '../helpers/hostile.js';
import { DtmfDetector } from '../../src/media/dtmf.js';
import { native } from '../../src/media/native.js';

const VALUES: (() => unknown)[] = [
  () => undefined, () => null, () => 0, () => -1, () => NaN, () => Infinity, () => -Infinity, () => 1e300, () => 'abc',
  () => '', () => 'ulaw', () => 'alaw', () => 'pcm16', () => true, () => ({}), () => [], () => Symbol('x'), () => 10n,
  () => () => 0, () => 4, () => -30, () => 20.0001, () => -70.5,
];
const FRAMES: (() => unknown)[] = [
  ...VALUES,
  () => new Uint8Array(0), () => new Uint8Array(1), () => new Uint8Array(3), () => noisy(160, 1), () => noisy(237, 2),
  () => noisy(4800, 3), () => new Uint8Array(4801), () => new Uint8Array(9600), () => new Uint8Array(9601), () => Buffer.alloc(161),
  () => new Int16Array(0), () => new Int16Array(1), () => new Int16Array(160), () => new Int16Array(4800), () => new Int16Array(4801),
  () => new Float32Array(160), () => new Uint16Array(160), () => new Int8Array(160), () => new Uint8ClampedArray(160),
  () => new DataView(new ArrayBuffer(160)), () => new ArrayBuffer(160), () => new Uint8Array(new SharedArrayBuffer(160)),
  () => new Int16Array(new SharedArrayBuffer(320)), () => detached(), () => detachedView16(), () => HUGE,
  () => new Uint8Array(new ArrayBuffer(161), 1, 160), () => new Int16Array(new ArrayBuffer(322), 2, 160),
];
const OPTION_KEYS = ['encoding', 'normalTwistDb', 'reverseTwistDb', 'minLevelDbm0', 'other'];

describe('DtmfDetector under hostile input', () => {
  it('rejects specific bad arguments with clear errors', () => {
    expect(() => new DtmfDetector(5 as never)).toThrow(/argument 0 \(options\)/);
    expect(() => new DtmfDetector({ encoding: 'opus' as never })).toThrow(RangeError);
    expect(() => new DtmfDetector({ encoding: 1 as never })).toThrow(TypeError);
    expect(() => new DtmfDetector({ normalTwistDb: NaN })).toThrow(RangeError);
    expect(() => new DtmfDetector({ reverseTwistDb: '4' as never })).toThrow(/options.reverseTwistDb must be a number/);
    expect(() => new DtmfDetector({ minLevelDbm0: 3 })).toThrow(RangeError);
    expect(() => (native.DtmfDetector as unknown as () => unknown)()).toThrow(TypeError);
    const d = new DtmfDetector();
    expect(() => d.process('x' as never)).toThrow(/argument 0 \(frame\)/);
    expect(() => d.process(new Uint8Array(0))).toThrow(RangeError);
    expect(() => d.process(new Uint8Array(4801))).toThrow(/1 to 4800 samples/);
    expect(() => d.process(detached())).toThrow(/detached/);
    expect(() => d.process(new Uint8Array(new SharedArrayBuffer(160)))).toThrow(/SharedArrayBuffer/);
    expect(() => d.process(new Float32Array(160) as never)).toThrow(TypeError);
    expect(() => d.process(HUGE)).toThrow(RangeError);
    expect(d.process(new Int16Array(4800))).toEqual([]);
    const pcm = new DtmfDetector({ encoding: 'pcm16' });
    expect(() => pcm.process(new Uint8Array(161))).toThrow(/odd byte count/);
    expect(pcm.process(new Uint8Array(9600))).toEqual([]);
    pcm.close();
    expect(() => pcm.process(new Uint8Array(2))).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    d.close();
  });

  it('survives 20,000 random constructions and calls', () => {
    const rand = rng(0xd7f1);
    const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
    const outcomes = { ok: 0, rejected: 0 };
    const live: { process(f: unknown): unknown; reset(): unknown; close(): unknown }[] = [];
    for (let i = 0; i < 20_000; i++) {
      const step = rand();
      if (step < 0.15 || live.length === 0) {
        // Options: sometimes an object with hostile values, sometimes not an object at all.
        const opts: unknown = rand() < 0.8
          ? Object.fromEntries(OPTION_KEYS.filter(() => rand() < 0.4).map((k) => [k, pick(VALUES)()]))
          : pick(VALUES)();
        const Ctor = rand() < 0.5 ? DtmfDetector : (native.DtmfDetector as unknown as typeof DtmfDetector);
        outcomes[outcome(() => live.push(new Ctor(opts as never) as never))]++;
        const old = live.length > 16 ? live.shift()! : undefined;
        if (old) outcome(() => old.close());
      } else {
        const d = pick(live);
        const r = rand();
        if (r < 0.85) {
          const args = Array.from({ length: Math.floor(rand() * 3) }, () => pick(FRAMES)());
          outcomes[outcome(() => (d.process as (...a: unknown[]) => unknown)(...args))]++;
        } else if (r < 0.95) {
          outcomes[outcome(() => d.reset())]++;
        } else {
          outcomes[outcome(() => d.close())]++; // stays in `live`: later calls must throw
        }
      }
    }
    for (const d of live) outcome(() => d.close());
    expect(outcomes.rejected).toBeGreaterThan(1000);
    expect(outcomes.ok).toBeGreaterThan(1000);
  });

  it('frees closed and abandoned detectors (run under --expose-gc when available)', () => {
    for (let i = 0; i < 2000; i++) {
      const d = new DtmfDetector();
      d.process(new Uint8Array(160));
      if (i % 2 === 0) d.close();
    }
    (globalThis as { gc?: () => void }).gc?.();
  });
});
