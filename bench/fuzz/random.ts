// The fuzzer's randomness: the shared seeded PRNG (bench/signals.ts rng,
// mulberry32) behind small helpers, and the byte mutations every boundary
// uses. One seed per run, printed, so a failure replays exactly.
import { rng } from '../signals.js';

/** Bytes that break parsers more often than random ones do. */
const SPECIAL = Buffer.from(' \t\r\n\0:;,<>"\'=@/\\%&?#[]{}()*+-.~!$^`|\x7f\x80\xc0\xc3\xe0\xed\xef\xf0\xf4\xfe\xff', 'latin1');

/** Tokens spliced into text formats: escapes, huge numbers, prototype keys, overlong UTF-8. */
const TOKENS = [
  '%', '%0', '%E0%A4%A', '%ZZ', '%00', '%C0%AF', '%25', '%2F', '%FF%FE', '..', '/../', '//', '\\',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
  '1e309', '-1e309', '9'.repeat(400), '-0', 'NaN', 'Infinity', '0x7fffffff', '4294967296', '18446744073709551616',
  '\u0000', '\u2028', '\ud800', '\uffff', 'null', 'true', '[]', '{}', '"', "'", '${x}', '<script>',
];

export class Rand {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = rng(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** Sizes skewed small (most inputs are short, a few huge). */
  size(max: number): number {
    return Math.floor(max ** this.next()) - 1 + (this.chance(0.05) ? this.int(max) : 0);
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** A token that tends to break text parsers. */
  token(): string {
    return this.pick(TOKENS);
  }

  /** Printable-ish text of up to `max` characters, sometimes with breaking tokens. */
  text(max: number): string {
    let s = '';
    const n = this.size(max);
    while (s.length < n) s += this.chance(0.1) ? this.token() : String.fromCharCode(this.chance(0.9) ? 0x20 + this.int(0x5f) : this.int(0x110));
    return s.slice(0, Math.max(n, 0));
  }

  /**
   * 1..k mutations of a valid input: byte flips, special bytes, inserted
   * tokens or random runs, deletions, duplications, truncation.
   */
  mutate(input: Buffer, k = 4): Buffer {
    let b = Buffer.from(input);
    for (let m = 1 + this.int(k); m > 0; m--) {
      const at = b.length ? this.int(b.length) : 0;
      switch (this.int(8)) {
        case 0:
          if (b.length) b[at] = this.int(256);
          break;
        case 1:
          if (b.length) b[at] = this.pick([...SPECIAL]);
          break;
        case 2:
          b = Buffer.concat([b.subarray(0, at), Buffer.from(this.token(), 'utf8'), b.subarray(at)]);
          break;
        case 3:
          b = Buffer.concat([b.subarray(0, at), this.bytes(1 + this.int(32)), b.subarray(at)]);
          break;
        case 4:
          b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + this.int(16)))]);
          break;
        case 5: {
          const len = 1 + this.int(Math.min(64, Math.max(1, b.length - at)));
          const piece = b.subarray(at, at + len);
          b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: 1 + this.int(8) }, () => piece), b.subarray(at)]);
          break;
        }
        case 6:
          b = b.subarray(0, at);
          break;
        default:
          if (b.length) b[at] = b[at]! ^ (1 << this.int(8));
      }
    }
    return b;
  }
}

/** A seed from the environment's entropy when none is given (printed either way). */
export function newSeed(): number {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 2 ** 31)) >>> 0;
}

/** Hex of an input, shortened for the report. */
export function hex(b: Uint8Array | string, max = 4096): string {
  const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const h = buf.subarray(0, max).toString('hex');
  return buf.length > max ? `${h}…(${buf.length} bytes)` : h;
}
