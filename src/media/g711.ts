// G.711 μ-law / A-law codec over the native core. The `…Into` forms write into
// the caller's buffer and allocate nothing; the plain forms allocate the result.
// PCM16 may be an Int16Array or little-endian bytes in a Uint8Array/Buffer.
import { native } from './native.js';

export type Pcm16 = Int16Array | Uint8Array;

function samples(pcm: Pcm16): number {
  return pcm instanceof Int16Array ? pcm.length : pcm.length >> 1;
}

// The native functions themselves, not JS closures around them: no extra
// frame on the per-frame path. They validate every argument (native/args.h).
/** Encodes PCM16 into μ-law in `dst`; returns the sample count. */
export const ulawEncodeInto: (src: Pcm16, dst: Uint8Array) => number = native.ulawEncodeInto;
/** Encodes PCM16 into A-law in `dst`; returns the sample count. */
export const alawEncodeInto: (src: Pcm16, dst: Uint8Array) => number = native.alawEncodeInto;
/** Decodes μ-law into PCM16 in `dst`; returns the sample count. */
export const ulawDecodeInto: (src: Uint8Array, dst: Pcm16) => number = native.ulawDecodeInto;
/** Decodes A-law into PCM16 in `dst`; returns the sample count. */
export const alawDecodeInto: (src: Uint8Array, dst: Pcm16) => number = native.alawDecodeInto;
/** Converts μ-law to A-law with the G.711 tables (in place allowed). */
export const ulawToAlawInto: (src: Uint8Array, dst: Uint8Array) => number = native.ulawToAlawInto;
/** Converts A-law to μ-law with the G.711 tables (in place allowed). */
export const alawToUlawInto: (src: Uint8Array, dst: Uint8Array) => number = native.alawToUlawInto;

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

// Results are views into pooled slabs (like Buffer.allocUnsafe's pool): a
// fresh ArrayBuffer per 20 ms frame costs more than the conversion itself.
// A slab is never reused, so views stay valid; it is freed with its last view.
const SLAB_SAMPLES = 16384;
let pcmSlab = new Int16Array(SLAB_SAMPLES);
let pcmOff = 0;
let byteSlab = new Uint8Array(SLAB_SAMPLES);
let byteOff = 0;

function bytesOut(n: number): Uint8Array {
  if (n > SLAB_SAMPLES >> 2) return new Uint8Array(n);
  if (byteOff + n > byteSlab.length) {
    byteSlab = new Uint8Array(SLAB_SAMPLES);
    byteOff = 0;
  }
  const out = byteSlab.subarray(byteOff, byteOff + n);
  byteOff += (n + 7) & ~7;
  return out;
}
function pcmOut(n: number): Int16Array {
  if (n > SLAB_SAMPLES >> 2) return new Int16Array(n);
  if (pcmOff + n > pcmSlab.length) {
    pcmSlab = new Int16Array(SLAB_SAMPLES);
    pcmOff = 0;
  }
  const out = pcmSlab.subarray(pcmOff, pcmOff + n);
  pcmOff += (n + 3) & ~3;
  return out;
}

export function ulawEncode(src: Pcm16): Uint8Array {
  const out = bytesOut(samples(checkPcm(src)));
  native.ulawEncodeInto(src, out);
  return out;
}
export function alawEncode(src: Pcm16): Uint8Array {
  const out = bytesOut(samples(checkPcm(src)));
  native.alawEncodeInto(src, out);
  return out;
}
export function ulawDecode(src: Uint8Array): Int16Array {
  const out = pcmOut(checkBytes(src).length);
  native.ulawDecodeInto(src, out);
  return out;
}
export function alawDecode(src: Uint8Array): Int16Array {
  const out = pcmOut(checkBytes(src).length);
  native.alawDecodeInto(src, out);
  return out;
}
export function ulawToAlaw(src: Uint8Array): Uint8Array {
  const out = bytesOut(checkBytes(src).length);
  native.ulawToAlawInto(src, out);
  return out;
}
export function alawToUlaw(src: Uint8Array): Uint8Array {
  const out = bytesOut(checkBytes(src).length);
  native.alawToUlawInto(src, out);
  return out;
}

/** μ-law code of digital silence (G.711: 0xFF, the positive zero). */
export const ULAW_SILENCE = 0xff;
/** A-law code of digital silence. */
export const ALAW_SILENCE = 0xd5;
