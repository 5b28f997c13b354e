// The S3 emulator's parsers under hostile input (bench/fuzz/s3.ts): an
// operation or an S3 client error, never another exception.
import { describe, expect, it } from 'vitest';
import { Rand } from '../../bench/fuzz/random.js';
import { checkS3Parsers } from '../../bench/fuzz/s3.js';

describe('S3 emulator parsers', () => {
  it('answer or refuse with an S3 error on 5000 hostile inputs each', () => {
    const res = checkS3Parsers(new Rand(0x5353), 5000);
    expect(res.violations).toEqual([]);
    expect(res.parsed).toBeGreaterThan(100);
  });
});
