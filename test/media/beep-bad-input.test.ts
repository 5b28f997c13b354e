// Hostile input to the media channel's beep entry points (detectBeep,
// lastBeep) and to process() with beep detection on: a result or a
// TypeError/RangeError, ERR_AYBIZA_CLOSED after close(), never an abort.
import { describe, expect, it } from 'vitest';
import { detached, HUGE, noisy, outcome, rng } from '../helpers/hostile.js';
import { MediaChannel } from '../../src/media/media-channel.js';
import { native } from '../../src/media/native.js';

type Obj = Record<string, (...a: unknown[]) => unknown>;
type Ctor = new (...a: unknown[]) => Obj;

const ARGS: (() => unknown)[] = [
  () => undefined, () => null, () => true, () => false, () => 0, () => 1, () => NaN, () => 'true', () => ({}), () => [],
  () => Symbol('x'), () => 10n, () => new Uint8Array(160), () => noisy(160, 7), () => noisy(80, 8), () => noisy(240, 9),
  () => new Uint8Array(161), () => new Int16Array(160), () => detached(), () => HUGE, () => new Uint8Array(new SharedArrayBuffer(160)),
];
const pick = <T>(r: () => number, xs: (() => T)[]) => xs[Math.floor(r() * xs.length)]();

describe('beep detection under hostile input', () => {
  it('rejects bad arguments with clear errors, and any use after close()', () => {
    const raw = new (native.MediaChannel as Ctor)(0, false, -1, -1, 60, 300);
    expect(() => raw.detectBeep()).toThrow(TypeError);
    expect(() => raw.detectBeep(1)).toThrow(/boolean/);
    expect(() => raw.detectBeep('true')).toThrow(TypeError);
    expect(raw.lastBeep()).toBeNull();
    raw.detectBeep(true);
    expect(raw.lastBeep(1, 2, 3)).toBeNull(); // extra arguments are ignored
    raw.close();
    expect(() => raw.detectBeep(true)).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    expect(() => raw.lastBeep()).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    const c = new MediaChannel();
    expect(() => c.detectBeep(1 as never)).toThrow(TypeError);
    c.close();
    expect(() => c.detectBeep(true)).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
    expect(() => c.lastBeep()).toThrow(expect.objectContaining({ code: 'ERR_AYBIZA_CLOSED' }));
  });

  it('keeps the beep flags off random bytes and clean on full-scale square waves and clipping', () => {
    const c = new MediaChannel();
    c.detectBeep(true);
    let flags = 0;
    for (let i = 0; i < 2000; i++) flags |= c.process(noisy(160, i)) & (64 | 128 | 256);
    expect(flags).toBe(0);
    // Full-scale extremes: 0x00/0x80 alternate (±32124) and constant codes; nothing throws, nothing is NaN.
    for (const fill of [0x00, 0x80, 0xff, 0x7f]) {
      const code = c.process(new Uint8Array(160).fill(fill));
      expect(Number.isFinite(code)).toBe(true);
    }
    const square = Uint8Array.from({ length: 160 }, (_, i) => ((i >> 2) & 1 ? 0x00 : 0x80)); // 1 kHz at full scale
    for (let i = 0; i < 50; i++) expect(Number.isFinite(c.process(square))).toBe(true);
    expect(c.lastBeep()?.hz ?? 1000).toBeGreaterThan(0);
    c.close();
  });

  it('survives 20,000 random calls, native and wrapped', () => {
    const r = rng(0xbee9);
    const outcomes = { ok: 0, rejected: 0 };
    const live: Obj[] = [];
    const makers: (() => Obj)[] = [
      () => new (native.MediaChannel as Ctor)(0, r() < 0.5, -1, -1, 60, 300),
      () => new MediaChannel({ dtmf: r() < 0.5 }) as unknown as Obj,
    ];
    const METHODS = ['process', 'detectBeep', 'lastBeep', 'takeDigits', 'reset', 'close'];
    for (let i = 0; i < 20_000; i++) {
      if (live.length === 0 || r() < 0.03) {
        outcomes[outcome(() => live.push(makers[Math.floor(r() * makers.length)]()))]++;
        continue;
      }
      const obj = live[Math.floor(r() * live.length)];
      const name = METHODS[Math.floor(r() * METHODS.length)];
      const args = Array.from({ length: Math.floor(r() * 3) }, () => pick(r, ARGS));
      if (name === 'process' && r() < 0.6) args[0] = noisy(160, i);
      if (name === 'detectBeep' && r() < 0.6) args[0] = r() < 0.8;
      if (name === 'close' && r() < 0.7) continue;
      outcomes[outcome(() => obj[name](...args))]++;
    }
    expect(outcomes.ok).toBeGreaterThan(1000);
    expect(outcomes.rejected).toBeGreaterThan(1000);
  });
});
