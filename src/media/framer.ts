// Framer: arbitrary payload chunks in, exact fixed-size frames out; the
// remainder is carried to the next push. Pure JS on purpose: copying 160 bytes
// costs less than one N-API crossing, so this stays on the JS side of the seam.

/**
 * Frames one push may complete at most (8192 frames of 20 ms: 2.7 min of
 * audio). A larger chunk is refused whole: with a 1-byte frame, a 32 MiB
 * chunk would have become 33 million arrays and exhausted the heap (found by
 * the native fuzzer).
 */
export const MAX_FRAMES_PER_PUSH = 8192;

export class Framer {
  readonly frameBytes: number;
  private readonly pending: Uint8Array;
  private fill = 0;

  constructor(frameBytes = 160) {
    if (!Number.isInteger(frameBytes)) throw new TypeError('frameBytes must be an integer');
    if (frameBytes < 1 || frameBytes > 65536) throw new RangeError('frameBytes must be between 1 and 65536');
    this.frameBytes = frameBytes;
    this.pending = new Uint8Array(frameBytes);
  }

  /** Bytes held back, waiting for the rest of a frame. */
  get buffered(): number {
    return this.fill;
  }

  /** Adds a chunk; returns every frame it completes (each a fresh copy). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk must be a Uint8Array or Buffer');
    const size = this.frameBytes;
    if (Math.floor((this.fill + chunk.length) / size) > MAX_FRAMES_PER_PUSH) {
      throw new RangeError(`chunk of ${chunk.length} bytes refused: it would complete more than ${MAX_FRAMES_PER_PUSH} frames of ${size} bytes`);
    }
    const frames: Uint8Array[] = [];
    let offset = 0;
    if (this.fill > 0) {
      const take = Math.min(size - this.fill, chunk.length);
      this.pending.set(chunk.subarray(0, take), this.fill);
      this.fill += take;
      offset = take;
      if (this.fill < size) return frames;
      frames.push(this.pending.slice());
      this.fill = 0;
    }
    while (chunk.length - offset >= size) {
      frames.push(chunk.slice(offset, offset + size));
      offset += size;
    }
    if (offset < chunk.length) {
      this.pending.set(chunk.subarray(offset), 0);
      this.fill = chunk.length - offset;
    }
    return frames;
  }

  /**
   * Returns the held-back partial frame padded to a whole frame with `pad`
   * (μ-law silence by default), or null when nothing is held.
   */
  flush(pad = 0xff): Uint8Array | null {
    if (this.fill === 0) return null;
    const out = new Uint8Array(this.frameBytes).fill(pad);
    out.set(this.pending.subarray(0, this.fill));
    this.fill = 0;
    return out;
  }

  reset(): void {
    this.fill = 0;
  }
}
