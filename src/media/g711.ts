// G.711 μ-law / A-law codec over the native core. The `…Into` forms write into
// the caller's buffer and allocate nothing; the plain forms allocate the result.
// PCM16 may be an Int16Array or little-endian bytes in a Uint8Array/Buffer.
import { native } from './native.js';

export type Pcm16 = Int16Array | Uint8Array;

function samples(pcm: Pcm16): number {
  return pcm instanceof Int16Array ? pcm.length : pcm.length >> 1;
}

export const ulawEncodeInto = (src: Pcm16, dst: Uint8Array): number => native.ulawEncodeInto(src, dst);
export const alawEncodeInto = (src: Pcm16, dst: Uint8Array): number => native.alawEncodeInto(src, dst);
export const ulawDecodeInto = (src: Uint8Array, dst: Pcm16): number => native.ulawDecodeInto(src, dst);
export const alawDecodeInto = (src: Uint8Array, dst: Pcm16): number => native.alawDecodeInto(src, dst);
export const ulawToAlawInto = (src: Uint8Array, dst: Uint8Array): number => native.ulawToAlawInto(src, dst);
export const alawToUlawInto = (src: Uint8Array, dst: Uint8Array): number => native.alawToUlawInto(src, dst);

// The allocating forms validate before allocating, so a bad argument throws
// the same TypeError as the native function instead of failing on `.length`.
function checkPcm(src: unknown): Pcm16 {
  if (!(src instanceof Int16Array) && !(src instanceof Uint8Array)) {
    throw new TypeError('argument 0 (src) must be an Int16Array or a Uint8Array of little-endian PCM16');
  }
  return src;
}
function checkBytes(src: unknown): Uint8Array {
  if (!(src instanceof Uint8Array)) throw new TypeError('argument 0 (src) must be a Uint8Array or Buffer');
  return src;
}

export function ulawEncode(src: Pcm16): Uint8Array {
  const out = new Uint8Array(samples(checkPcm(src)));
  native.ulawEncodeInto(src, out);
  return out;
}
export function alawEncode(src: Pcm16): Uint8Array {
  const out = new Uint8Array(samples(checkPcm(src)));
  native.alawEncodeInto(src, out);
  return out;
}
export function ulawDecode(src: Uint8Array): Int16Array {
  const out = new Int16Array(checkBytes(src).length);
  native.ulawDecodeInto(src, out);
  return out;
}
export function alawDecode(src: Uint8Array): Int16Array {
  const out = new Int16Array(checkBytes(src).length);
  native.alawDecodeInto(src, out);
  return out;
}
export function ulawToAlaw(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(checkBytes(src).length);
  native.ulawToAlawInto(src, out);
  return out;
}
export function alawToUlaw(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(checkBytes(src).length);
  native.alawToUlawInto(src, out);
  return out;
}

/** μ-law code of digital silence (G.711: 0xFF, the positive zero). */
export const ULAW_SILENCE = 0xff;
/** A-law code of digital silence. */
export const ALAW_SILENCE = 0xd5;
