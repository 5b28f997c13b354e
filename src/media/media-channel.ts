// The inbound per-frame path of one call in one native call
// (native/media_channel.cc): G.711 decode + VAD (+ in-band DTMF, + the
// answering-machine beep detector) per frame.
// The result is a plain number, so the 50-per-second path allocates nothing;
// read it with the helpers below.
import { closedError, native } from './native.js';
import type { DtmfDigit } from './dtmf.js';
import { decodeVadResult, type VadResult } from './vad.js';

export interface MediaChannelOptions {
  /** The call's codec. Default 'ulaw'. */
  encoding?: 'ulaw' | 'alaw';
  /** Detect in-band DTMF (SIP calls without RFC 4733). Default false. */
  dtmf?: boolean;
  threshold?: number;
  hangoverFrames?: number;
  minSpeechMs?: number;
  minSilenceMs?: number;
}

interface NativeChannel {
  process(frame: Uint8Array): number;
  takeDigits(): string;
  detectBeep(on: boolean): void;
  lastBeep(): [number, number, number] | null;
  reset(): void;
  close(): void;
}
type NativeChannelClass = new (
  encoding: number, dtmf: boolean, threshold: number, hangoverFrames: number, minSpeechMs: number, minSilenceMs: number,
) => NativeChannel;

function num(v: unknown, name: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`MediaChannel option ${name} must be a finite number`);
  if (v < min || v > max) throw new RangeError(`MediaChannel option ${name} must be between ${min} and ${max}`);
  return v;
}

/** Flag bits of the number process() returns (see vad.ts for the rest). */
export const FRAME_SPEECH = 2;
export const FRAME_ACTIVE = 4;
export const FRAME_START = 8;
export const FRAME_END = 16;
export const FRAME_DIGITS = 32;
/** A beep (a steady 350–2,000 Hz tone of 250 ms or more) is sounding. */
export const FRAME_BEEP = 64;
/** The beep qualified in this frame (its 250th ms; it began lastBeep().startMs). */
export const FRAME_BEEP_START = 128;
/** The beep ended in this frame. */
export const FRAME_BEEP_END = 256;

/** A detected beep, on the channel's audio clock (ms of audio since detection started). */
export interface Beep {
  hz: number;
  startMs: number;
  /** So far while it sounds; in total once it ended. */
  durationMs: number;
}

export class MediaChannel {
  private handle: NativeChannel | null;

  constructor(opts: MediaChannelOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('MediaChannel options must be an object');
    const encoding = opts.encoding ?? 'ulaw';
    if (encoding !== 'ulaw' && encoding !== 'alaw') throw new RangeError("MediaChannel option encoding must be 'ulaw' or 'alaw'");
    if (opts.dtmf !== undefined && typeof opts.dtmf !== 'boolean') throw new TypeError('MediaChannel option dtmf must be a boolean');
    const Native = native.MediaChannel as NativeChannelClass;
    this.handle = new Native(
      encoding === 'alaw' ? 1 : 0,
      opts.dtmf ?? false,
      num(opts.threshold, 'threshold', -1, 0, 1),
      Math.round(num(opts.hangoverFrames, 'hangoverFrames', -1, 0, 50)),
      Math.round(num(opts.minSpeechMs, 'minSpeechMs', 60, 0, 10000)),
      Math.round(num(opts.minSilenceMs, 'minSilenceMs', 300, 0, 60000)),
    );
  }

  /**
   * One frame of 80/160/240 G.711 codes in; a packed number out: test it
   * with the FRAME_* bits, probability() gives the speech probability.
   */
  process(frame: Uint8Array): number {
    if (!this.handle) throw closedError('MediaChannel');
    return this.handle.process(frame);
  }

  /** The DTMF digits detected since the last call (when FRAME_DIGITS was set). */
  takeDigits(): DtmfDigit[] {
    if (!this.handle) throw closedError('MediaChannel');
    return this.handle.takeDigits().split('') as DtmfDigit[];
  }

  /** Starts (afresh) or stops beep detection; off by default (only answering-machine screening needs it). */
  detectBeep(on: boolean): void {
    if (!this.handle) throw closedError('MediaChannel');
    if (typeof on !== 'boolean') throw new TypeError('detectBeep(on) takes a boolean');
    this.handle.detectBeep(on);
  }

  /** The beep sounding now or the last one (after a FRAME_BEEP_START), else null. */
  lastBeep(): Beep | null {
    if (!this.handle) throw closedError('MediaChannel');
    const b = this.handle.lastBeep();
    return b ? { hz: b[0], startMs: b[1], durationMs: b[2] } : null;
  }

  reset(): void {
    if (!this.handle) throw closedError('MediaChannel');
    this.handle.reset();
  }

  close(): void {
    this.handle?.close();
    this.handle = null;
  }

  get closed(): boolean {
    return this.handle === null;
  }

  static probability(code: number): number {
    return code - Math.floor(code);
  }

  static vadResult(code: number): VadResult {
    return decodeVadResult(code % 32);
  }
}
