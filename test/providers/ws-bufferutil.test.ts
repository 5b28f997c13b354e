// The `ws` client under the Deepgram SDK masks every frame it sends (RFC 6455
// §5.3). It does so in native code only when `bufferutil` loads; when it does
// not, ws silently falls back to a JavaScript loop. bufferutil ships prebuilt
// binaries picked at require time (node-gyp-build), so it works where npm
// runs no install scripts: this checks the binary, not the fallback, loads.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);

describe('bufferutil', () => {
  it('loads its native binary, and masks as RFC 6455 says', () => {
    const bu = require('bufferutil') as { mask(src: Buffer, mask: Buffer, out: Buffer, offset: number, length: number): void };
    const fallback = require('bufferutil/fallback.js') as typeof bu;
    expect(bu.mask).not.toBe(fallback.mask);
    expect(Function.prototype.toString.call(bu.mask)).toContain('[native code]');
    const src = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    const key = Buffer.from([1, 2, 3, 4]);
    const out = Buffer.alloc(100);
    bu.mask(src, key, out, 0, 100);
    expect([...out]).toEqual([...src].map((b, i) => b ^ key[i % 4]));
  });
});
