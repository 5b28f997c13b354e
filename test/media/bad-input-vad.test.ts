// Hammers Vad and MediaChannel, native classes and TypeScript wrappers, with
// hostile constructor arguments and frames: the only acceptable outcomes are
// a result or a TypeError/RangeError; after close(), always the TypeError
// with code ERR_AYBIZA_CLOSED. The process never aborts.
import { describe, expect, it } from 'vitest';
import { detached, HUGE, noisy, outcome, rng } from '../helpers/hostile.js';
import { MediaChannel } from '../../src/media/media-channel.js';
import { native } from '../../src/media/native.js';
import { Vad, VAD_FEATURES } from '../../src/media/vad.js';

const VALUES: (() => unknown)[] = [
  () => undefined, () => null, () => 0, () => 1, () => 2, () => 3, () => -1, () => -2, () => NaN, () => Infinity,
  () => 1e300, () => 0.5, () => 'abc', () => 'ulaw', () => 'alaw', () => 'pcm16', () => true, () => false, () => ({}),
  () => [], () => Symbol('x'), () => 10n, () => () => 0, () => 60, () => 300, () => 60001,
];
const FRAMES: (() => unknown)[] = [
  ...VALUES,
  () => new Uint8Array(0), () => new Uint8Array(79), () => noisy(80, 1), () => noisy(160, 2), () => noisy(240, 3),
  () => new Uint8Array(161), () => new Uint8Array(320), () => new Uint8Array(321), () => new Uint8Array(480), () => Buffer.alloc(160, 0xff),
  () => new Int16Array(80), () => new Int16Array(160), () => new Int16Array(240), () => new Int16Array(159), () => new Float32Array(160),
  () => new Float32Array(24), () => new Float32Array(23), () => new Uint16Array(160), () => new Int8Array(160),
  () => new DataView(new ArrayBuffer(160)), () => new ArrayBuffer(160), () => new Uint8Array(new SharedArrayBuffer(160)),
  () => new Int16Array(new SharedArrayBuffer(320)), () => detached(), () => HUGE, () => new Uint8Array(new ArrayBuffer(161), 1, 160),
];
const pick = <T>(r: () => number, xs: (() => T)[]) => xs[Math.floor(r() * xs.length)]();

type Obj = Record<string, (...a: unknown[]) => unknown>;
type Ctor = new (...a: unknown[]) => Obj;

describe('Vad and MediaChannel under hostile input', () => {
  it('reject specific bad arguments with clear errors', () => {
    const NativeVad = native.Vad as Ctor;
    expect(() => new NativeVad(3, -1, -1, 60, 300)).toThrow(/encoding/);
    expect(() => new NativeVad(0, NaN, -1, 60, 300)).toThrow(RangeError);
    expect(() => new NativeVad('ulaw', -1, -1, 60, 300)).toThrow(TypeError);
    expect(() => new Vad({ encoding: 'gsm' as never })).toThrow(RangeError);
    expect(() => new Vad({ minSilenceMs: -5 })).toThrow(/minSilenceMs/);
    expect(() => new Vad(null as never)).toThrow(TypeError);
    const v = new Vad();
    expect(() => v.process(new Uint8Array(100))).toThrow(/80, 160 or 240/);
    expect(() => v.process('x' as never)).toThrow(TypeError);
    expect(() => v.process(new Uint8Array(new SharedArrayBuffer(160)))).toThrow(/SharedArrayBuffer/);
    expect(() => v.process(detached())).toThrow(/detached/);
    expect(() => v.features(new Uint8Array(160), new Float32Array(VAD_FEATURES - 1))).toThrow(/Float32Array/);
    expect(() => new Vad({ encoding: 'pcm16' }).process(new Uint8Array(161))).toThrow(/odd byte count/);
    v.close();
    v.close();
    expect(() => v.reset()).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    const c = new MediaChannel({ dtmf: true });
    expect(() => c.process(new Int16Array(160) as never)).toThrow(TypeError);
    expect(() => c.process(new Uint8Array(320))).toThrow(RangeError);
    expect(() => new MediaChannel({ dtmf: 'yes' as never })).toThrow(TypeError);
    expect(() => new MediaChannel({ encoding: 'pcm16' as never })).toThrow(RangeError);
    c.close();
    expect(() => c.process(new Uint8Array(160))).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    expect(() => c.takeDigits()).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
  });

  it('survive 20,000 random constructions and calls, native and wrapped', () => {
    const r = rng(0x5ad);
    const outcomes = { ok: 0, rejected: 0 };
    const live: Obj[] = [];
    const makers: (() => Obj)[] = [
      () => new (native.Vad as Ctor)(...Array.from({ length: Math.floor(r() * 7) }, () => pick(r, VALUES))),
      () => new (native.MediaChannel as Ctor)(...Array.from({ length: Math.floor(r() * 8) }, () => pick(r, VALUES))),
      () => new Vad(Object.fromEntries([['encoding', pick(r, VALUES)], ['minSpeechMs', pick(r, VALUES)]].filter(() => r() < 0.6))) as unknown as Obj,
      () => new MediaChannel(Object.fromEntries([['dtmf', pick(r, VALUES)], ['threshold', pick(r, VALUES)]].filter(() => r() < 0.6))) as unknown as Obj,
      () => new Vad() as unknown as Obj,
      () => new MediaChannel({ dtmf: true }) as unknown as Obj,
      () => new (native.Vad as Ctor)(0, -1, -1, 60, 300),
      () => new (native.MediaChannel as Ctor)(0, true, -1, -1, 60, 300),
    ];
    const METHODS = ['process', 'features', 'takeDigits', 'reset', 'close'];
    for (let i = 0; i < 20_000; i++) {
      if (live.length === 0 || r() < 0.05) {
        outcomes[outcome(() => live.push(makers[Math.floor(r() * makers.length)]()))]++;
        continue;
      }
      const obj = live[Math.floor(r() * live.length)];
      const name = METHODS[Math.floor(r() * METHODS.length)];
      if (typeof obj[name] !== 'function') continue;
      const args = Array.from({ length: Math.floor(r() * 3) }, () => pick(r, FRAMES));
      if (name === 'process' && r() < 0.5) args[0] = noisy(160, i);
      outcomes[outcome(() => obj[name](...args))]++;
    }
    expect(outcomes.ok).toBeGreaterThan(1000);
    expect(outcomes.rejected).toBeGreaterThan(1000);
  });
});
