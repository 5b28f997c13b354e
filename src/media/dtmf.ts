// In-band DTMF detection over the native core (native/dtmf.{h,cc}). One
// detector per call leg; it keeps a partial Goertzel window between frames,
// so frames may be any size from 1 to 4800 samples.
import { native } from './native.js';

export type DtmfDigit = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '*' | '#' | 'A' | 'B' | 'C' | 'D';

export interface DtmfDetectorOptions {
  /** How a Uint8Array frame is read; an Int16Array is always PCM16. Default 'ulaw'. */
  encoding?: 'ulaw' | 'alaw' | 'pcm16';
  /** Most the row (low) tone may exceed the column tone by, dB (0..20). Default 8. */
  normalTwistDb?: number;
  /** Most the column (high) tone may exceed the row tone by, dB (0..20). Default 4. */
  reverseTwistDb?: number;
  /** Weakest tone level accepted, dBm0 (-70..0). Default -40. */
  minLevelDbm0?: number;
}

/** The native class as the addon exports it; `process` returns the digits as one string. */
export interface NativeDtmfDetector {
  process(frame: Uint8Array | Int16Array): string;
  reset(): void;
  close(): void;
}
export type NativeDtmfDetectorClass = new (opts?: DtmfDetectorOptions) => NativeDtmfDetector;

// Nearly every frame has no digit: share one frozen empty result rather than
// allocate an array per 20 ms.
const NONE: readonly DtmfDigit[] = Object.freeze([]);

export class DtmfDetector {
  private readonly handle: NativeDtmfDetector;
  private closed = false;

  constructor(opts?: DtmfDetectorOptions) {
    this.handle = new native.DtmfDetector(opts);
  }

  /**
   * Feeds 8 kHz audio (1..4800 samples); returns each key press whose tone
   * became valid in this frame, once per press. Throws a TypeError with code
   * ERR_AYBIZA_CLOSED after close().
   */
  process(frame: Uint8Array | Int16Array): readonly DtmfDigit[] {
    const s = this.handle.process(frame);
    return s.length === 0 ? NONE : (s.split('') as DtmfDigit[]);
  }

  /** Forgets the partial window and any key press in progress (e.g. after a stream gap). */
  reset(): void {
    this.handle.reset();
  }

  /** Releases the native detector; every later call throws, except close() itself (idempotent, as every native object's). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}
