// An independent G.711 reference written from the standard's segment
// definitions (ITU-T G.711 Tables 1 and 2): plain arithmetic on segments and
// steps, no tables or bit tricks shared with native/g711.cc. Encoder
// convention: ITU-T G.191 (negative magnitudes by one's complement, ~x).

/** μ-law: 14-bit magnitude, bias 33, 8 segments of 16 steps, step 2^(s+1). */
export function refUlawEncode(x: number): number {
  const positive = x >= 0;
  const mag14 = Math.floor((positive ? x : -x - 1) / 4);
  const biased = Math.min(mag14 + 33, 8191);
  const s = Math.floor(Math.log2(biased)) - 5; // biased in [32·2^s, 64·2^s)
  const q = Math.floor((biased - 32 * 2 ** s) / 2 ** (s + 1));
  return (positive ? 0x80 : 0) | ((7 - s) << 4) | (15 - q);
}

export function refUlawDecode(code: number): number {
  const positive = (code & 0x80) !== 0;
  const s = 7 - ((code >> 4) & 7);
  const q = 15 - (code & 15);
  const biased = 32 * 2 ** s + (q + 0.5) * 2 ** (s + 1);
  const v = (biased - 33) * 4;
  return positive ? v : -v;
}

/** A-law: 12-bit magnitude (x >> 4 here), segment 0 linear, then step 2^(s-1). */
export function refAlawEncode(x: number): number {
  const positive = x >= 0;
  const mag = Math.floor((positive ? x : -x - 1) / 16);
  let s: number;
  let q: number;
  if (mag < 16) {
    s = 0;
    q = mag;
  } else {
    s = Math.min(Math.floor(Math.log2(mag)) - 3, 7);
    q = Math.min(Math.floor((mag - 16 * 2 ** (s - 1)) / 2 ** (s - 1)), 15);
  }
  return (((positive ? 0x80 : 0) | (s << 4) | q) ^ 0x55) & 0xff;
}

export function refAlawDecode(code: number): number {
  const c = code ^ 0x55;
  const positive = (c & 0x80) !== 0;
  const s = (c >> 4) & 7;
  const q = c & 15;
  const v = s === 0 ? q * 16 + 8 : (16 * 2 ** (s - 1) + (q + 0.5) * 2 ** (s - 1)) * 16;
  return positive ? v : -v;
}
