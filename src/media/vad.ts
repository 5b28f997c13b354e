// Voice activity detection for 8 kHz telephony audio (native/vad.cc): a
// speech flag and a probability per 10/20/30 ms frame, plus speech-start and
// speech-end events from an onset/hangover state machine.
import { closedError, native } from './native.js';

export type VadEncoding = 'ulaw' | 'alaw' | 'pcm16';

export interface VadOptions {
  /** What a Uint8Array frame holds: μ-law, A-law or little-endian PCM16 bytes (an Int16Array is always PCM16). Default 'ulaw'. */
  encoding?: VadEncoding;
  /** Probability above which a speech run starts (it lasts while above the model's release threshold, kept the same distance below). Default: the trained model's tuned value. */
  threshold?: number;
  /** Frames (20 ms) the speech flag is held after the probability drops. Default: the model's. */
  hangoverFrames?: number;
  /** Continuous speech before a 'start' event. Default 60 ms. */
  minSpeechMs?: number;
  /** Continuous silence before an 'end' event. Default 300 ms. */
  minSilenceMs?: number;
}

export interface VadResult {
  /** This frame is speech (with a short hangover). */
  speech: boolean;
  probability: number;
  /** The smoothed state: true between a 'start' and the next 'end'. */
  active: boolean;
  event: 'start' | 'end' | null;
}

interface NativeVad {
  process(frame: Uint8Array | Int16Array): number;
  features(frame: Uint8Array | Int16Array, out: Float32Array): number;
  reset(): void;
  close(): void;
}
type NativeVadClass = new (
  encoding: number, threshold: number, hangoverFrames: number, minSpeechMs: number, minSilenceMs: number,
) => NativeVad;

const ENCODINGS: Record<VadEncoding, number> = { ulaw: 0, alaw: 1, pcm16: 2 };

/** Number of model inputs `features()` writes. */
export const VAD_FEATURES = 32;

/**
 * The committed model's inputs and decision: a speech run starts when the
 * probability exceeds `threshold` and lasts while it stays above `release`
 * (hysteresis), then `hangoverFrames` of 20 ms. A caller's threshold keeps the
 * model's distance between the two.
 */
export const VAD_MODEL = native.vadModel as { inputs: number; threshold: number; release: number; hangoverFrames: number };

/** Unpacks the native result number: flags in the integer part, probability in the fraction. */
export function decodeVadResult(code: number): VadResult {
  const flags = Math.floor(code);
  return {
    speech: (flags & 2) !== 0,
    probability: code - flags,
    active: (flags & 4) !== 0,
    event: flags & 8 ? 'start' : flags & 16 ? 'end' : null,
  };
}

function option(opts: VadOptions, name: keyof VadOptions, fallback: number, min: number, max: number): number {
  const v = opts[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`Vad option ${name} must be a finite number`);
  if (v < min || v > max) throw new RangeError(`Vad option ${name} must be between ${min} and ${max}`);
  return v;
}

export class Vad {
  private handle: NativeVad | null;

  constructor(opts: VadOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('Vad options must be an object');
    const encoding = opts.encoding ?? 'ulaw';
    if (!(encoding in ENCODINGS)) throw new RangeError("Vad option encoding must be 'ulaw', 'alaw' or 'pcm16'");
    const Native = native.Vad as NativeVadClass;
    this.handle = new Native(
      ENCODINGS[encoding],
      option(opts, 'threshold', -1, 0, 1),
      Math.round(option(opts, 'hangoverFrames', -1, 0, 50)),
      Math.round(option(opts, 'minSpeechMs', 60, 0, 10000)),
      Math.round(option(opts, 'minSilenceMs', 300, 0, 60000)),
    );
  }

  private live(): NativeVad {
    if (!this.handle) throw closedError('Vad');
    return this.handle;
  }

  /** Classifies one frame of 80, 160 or 240 samples (10/20/30 ms). */
  process(frame: Uint8Array | Int16Array): VadResult {
    return decodeVadResult(this.live().process(frame));
  }

  /** As process(), also writing the model's inputs into `out` (training, inspection). */
  features(frame: Uint8Array | Int16Array, out: Float32Array): VadResult {
    return decodeVadResult(this.live().features(frame, out));
  }

  reset(): void {
    this.live().reset();
  }

  close(): void {
    this.handle?.close();
    this.handle = null;
  }

  get closed(): boolean {
    return this.handle === null;
  }

}
