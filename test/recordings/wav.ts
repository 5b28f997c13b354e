// Reads a recording back as a player would: the header's fields, the data
// its size counts (never past the file's end), and the channels split.
import { expect } from 'vitest';

export interface ParsedWav {
  format: number;
  channels: number;
  rate: number;
  dataBytes: number;
  data: Buffer;
  left: Buffer;
  right: Buffer | null;
}

export function parseWav(buf: Buffer): ParsedWav {
  expect(buf.toString('ascii', 0, 4)).toBe('RIFF');
  expect(buf.toString('ascii', 8, 12)).toBe('WAVE');
  expect(buf.readUInt32LE(4)).toBeLessThanOrEqual(buf.length - 8);
  let off = 12;
  let fmt: Buffer | null = null;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = buf.subarray(off + 8, off + 8 + size);
    if (id === 'data') {
      expect(fmt).not.toBeNull();
      expect(off + 8 + size).toBeLessThanOrEqual(buf.length);
      const data = buf.subarray(off + 8, off + 8 + size);
      const channels = fmt!.readUInt16LE(2);
      const left = Buffer.alloc(data.length / channels);
      const right = channels === 2 ? Buffer.alloc(data.length / 2) : null;
      for (let i = 0; i < left.length; i++) {
        left[i] = data[i * channels];
        if (right) right[i] = data[i * 2 + 1];
      }
      return { format: fmt!.readUInt16LE(0), channels, rate: fmt!.readUInt32LE(4), dataBytes: size, data, left, right };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error('no data chunk');
}

const silent = (f: Uint8Array) => f.every((b) => b === 0xff);

/** The 20 ms frames of a track that are not pure μ-law silence, in order. */
export function audibleFrames(track: Uint8Array | Uint8Array[]): Buffer[] {
  const all = Array.isArray(track) ? Buffer.concat(track) : Buffer.from(track);
  const out: Buffer[] = [];
  for (let i = 0; i + 160 <= all.length; i += 160) {
    const f = all.subarray(i, i + 160);
    if (!silent(f)) out.push(f);
  }
  return out;
}

/** Index of the first audible frame of a track (-1: none). */
export function firstAudible(track: Uint8Array, from = 0): number {
  for (let i = from * 160; i + 160 <= track.length; i += 160) if (!silent(track.subarray(i, i + 160))) return i / 160;
  return -1;
}
