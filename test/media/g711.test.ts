import { describe, expect, it } from 'vitest';
import {
  alawDecode, alawDecodeInto, alawEncode, alawEncodeInto, alawToUlaw, alawToUlawInto,
  ulawDecode, ulawDecodeInto, ulawEncode, ulawEncodeInto, ulawToAlaw, ulawToAlawInto,
} from '../../src/media/g711.js';
import { refAlawDecode, refAlawEncode, refUlawDecode, refUlawEncode } from './g711-reference.js';

const ALL_LINEAR = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);

function firstMismatch(actual: ArrayLike<number>, expected: (i: number) => number): string | null {
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected(i)) return `index ${i}: got ${actual[i]}, expected ${expected(i)}`;
  }
  return null;
}

describe('G.711 against the reference written from the standard', () => {
  it('μ-law encodes all 65,536 linear inputs bit-exactly', () => {
    const out = ulawEncode(ALL_LINEAR);
    expect(firstMismatch(out, (i) => refUlawEncode(ALL_LINEAR[i]))).toBeNull();
  });

  it('A-law encodes all 65,536 linear inputs bit-exactly', () => {
    const out = alawEncode(ALL_LINEAR);
    expect(firstMismatch(out, (i) => refAlawEncode(ALL_LINEAR[i]))).toBeNull();
  });

  it('μ-law decodes all 256 codes exactly', () => {
    expect(firstMismatch(ulawDecode(ALL_CODES), (i) => refUlawDecode(i))).toBeNull();
  });

  it('A-law decodes all 256 codes exactly', () => {
    expect(firstMismatch(alawDecode(ALL_CODES), (i) => refAlawDecode(i))).toBeNull();
  });

  it('known anchor values', () => {
    expect(ulawEncode(Int16Array.of(0))[0]).toBe(0xff);
    expect(ulawEncode(Int16Array.of(32767))[0]).toBe(0x80);
    expect(ulawEncode(Int16Array.of(-32768))[0]).toBe(0x00);
    expect(ulawDecode(Uint8Array.of(0x00))[0]).toBe(-32124);
    expect(ulawDecode(Uint8Array.of(0x80))[0]).toBe(32124);
    expect(alawEncode(Int16Array.of(0))[0]).toBe(0xd5);
    expect(alawDecode(Uint8Array.of(0xd5))[0]).toBe(8);
    expect(alawDecode(Uint8Array.of(0xaa))[0]).toBe(32256);
  });

  it('decode then encode returns the same code for every code', () => {
    expect(firstMismatch(ulawEncode(ulawDecode(ALL_CODES)), (i) => (i === 0x7f ? 0xff : i))).toBeNull();
    expect(firstMismatch(alawEncode(alawDecode(ALL_CODES)), (i) => i)).toBeNull();
  });
});

describe('μ-law <-> A-law conversion (G.711 tables)', () => {
  it('maps silence to silence and keeps the sign', () => {
    expect(ulawToAlaw(Uint8Array.of(0xff))[0]).toBe(0xd5);
    // A-law's smallest positive level is +8, which μ-law represents exactly (0xFE).
    expect(alawToUlaw(Uint8Array.of(0xd5))[0]).toBe(0xfe);
    const u = ulawDecode(ALL_CODES);
    const a = alawDecode(ulawToAlaw(ALL_CODES));
    for (let i = 0; i < 256; i++) expect(Math.sign(a[i]) * Math.sign(u[i])).not.toBe(-1);
  });

  it('stays within one quantisation step of the source value and is monotonic', () => {
    const lin = ulawDecode(ALL_CODES);
    const conv = alawDecode(ulawToAlaw(ALL_CODES));
    const back = ulawDecode(alawToUlaw(alawEncode(lin)));
    for (let i = 0; i < 256; i++) {
      const step = Math.max(16, Math.abs(lin[i]) / 16);
      expect(Math.abs(conv[i] - lin[i])).toBeLessThanOrEqual(step * 1.5);
      expect(Math.abs(back[i] - lin[i])).toBeLessThanOrEqual(step * 2);
    }
    // Positive μ-law codes run 0xFF (≈0) down to 0x80 (max): A-law values must not decrease.
    let prev = -Infinity;
    for (let c = 0xff; c >= 0x80; c--) {
      const v = alawDecode(ulawToAlaw(Uint8Array.of(c)))[0];
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
  });
});

describe('Into forms and PCM16 byte views', () => {
  it('write into the caller buffer and return the count', () => {
    const pcm = Int16Array.from({ length: 160 }, (_, i) => Math.round(Math.sin(i / 5) * 12000));
    const u = new Uint8Array(200).fill(0x11);
    expect(ulawEncodeInto(pcm, u)).toBe(160);
    expect(u[160]).toBe(0x11);
    expect(Array.from(u.subarray(0, 160))).toEqual(Array.from(ulawEncode(pcm)));
    const back = new Int16Array(160);
    expect(ulawDecodeInto(u.subarray(0, 160), back)).toBe(160);
    expect(Array.from(back)).toEqual(Array.from(ulawDecode(u.subarray(0, 160))));
    const a = new Uint8Array(160);
    expect(alawEncodeInto(pcm, a)).toBe(160);
    const a2 = new Uint8Array(160);
    expect(ulawToAlawInto(u.subarray(0, 160), a2)).toBe(160);
    const u2 = new Uint8Array(160);
    expect(alawToUlawInto(a, u2)).toBe(160);
    const ad = new Int16Array(160);
    expect(alawDecodeInto(a, ad)).toBe(160);
  });

  it('accepts little-endian PCM16 in a Buffer, the same as an Int16Array', () => {
    const pcm = Int16Array.from({ length: 320 }, (_, i) => (i * 977) % 65536 - 32768);
    const bytes = Buffer.alloc(640);
    for (let i = 0; i < 320; i++) bytes.writeInt16LE(pcm[i], i * 2);
    expect(Array.from(ulawEncode(bytes))).toEqual(Array.from(ulawEncode(pcm)));
    const out = Buffer.alloc(640);
    alawDecodeInto(alawEncode(pcm), out);
    const expected = alawDecode(alawEncode(pcm));
    for (let i = 0; i < 320; i++) expect(out.readInt16LE(i * 2)).toBe(expected[i]);
  });

  it('works on views with an offset into a larger buffer', () => {
    const big = new Uint8Array(1000).fill(0xff);
    const view = big.subarray(333, 493);
    const out = new Int16Array(160);
    ulawDecodeInto(view, out);
    expect(out.every((v) => v === 0)).toBe(true);
  });

  it('allows converting in place', () => {
    const buf = Uint8Array.from(ALL_CODES);
    ulawToAlawInto(buf, buf);
    expect(Array.from(buf)).toEqual(Array.from(ulawToAlaw(ALL_CODES)));
  });

  it('handles empty input', () => {
    expect(ulawDecode(new Uint8Array(0)).length).toBe(0);
    expect(ulawEncode(new Int16Array(0)).length).toBe(0);
  });
});
