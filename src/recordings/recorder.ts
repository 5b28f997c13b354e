// A call's two sides on one 20 ms timeline, as they were heard: the caller's
// frames as the session receives them (after SIP's jitter buffer; Twilio's
// decoded frames in order) and the agent's frames as the playout clock sends
// them (what a barge-in cut was never sent, so it is not here). The per-frame
// work is a copy of the frame into a small ring per side; every second of
// finished timeline leaves as one chunk (interleaved for dual, summed for
// mixed) to the file writer, off the frame path.
//
// Alignment: `now` is the shared clock's slot (slots the clock skipped after
// a long stall count too: the agent's voice really stopped then). The agent's
// audio is played by the far end in real time after what it already holds,
// so a frame goes at max(its side's end, now). The caller's audio is
// continuous once it flows (Twilio streams every 20 ms; SIP's jitter buffer
// gives a frame, concealment or silence every tick) but reaches us with
// jitter and in bursts after a stall: a frame continues its side unless that
// side fell more than CALLER_JITTER behind now (the stream's start, an
// outage), then it starts at now. Where a side sent nothing the ring holds
// silence. A stall longer than CALLER_JITTER shifts the caller's side late by
// the excess (the frames carry no time of their own here).
import { ULAW_SILENCE, ulawDecode, ulawEncode } from '../media/g711.js';

export type RecordingChannels = 'dual' | 'mixed';

const FRAME = 160;
const RING = 128 * FRAME;
/** Finished timeline leaves in chunks of this many samples (1 s). */
const CHUNK = 50 * FRAME;
const CALLER_JITTER = 25 * FRAME;
const MAX_JUMP = 250 * FRAME;

class Track {
  readonly ring = new Uint8Array(RING).fill(ULAW_SILENCE);
  /** Timeline position (samples) where this side's next sample goes. */
  pos = 0;
}

let mixTable: Uint8Array | null = null;
/** μ-law(a) + μ-law(b) in linear, clipped, re-encoded: one lookup per sample pair. */
function mix(): Uint8Array {
  if (mixTable) return mixTable;
  const all = new Uint8Array(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const lin = ulawDecode(all);
  const sum = new Int16Array(65536);
  for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) sum[(a << 8) | b] = Math.max(-32768, Math.min(32767, lin[a] + lin[b]));
  mixTable = new Uint8Array(ulawEncode(sum));
  return mixTable;
}

const noop = () => {};

export class CallRecorder {
  private readonly callerTrack = new Track();
  private readonly agentTrack = new Track();
  /** Start of the current 20 ms slot (samples). */
  private now = 0;
  /** The clock's slot at the first tick (the recording's time zero). */
  private slot0 = -1;
  /** Timeline written out so far (samples per channel). */
  private flushed = 0;
  private closed = false;
  private readonly table: Uint8Array | null;

  /**
   * Chunk buffers the sink has handed back (`release`), reused: a fresh 16 KB
   * buffer per call per second is external memory, and at a few hundred
   * recorded calls its growth set off full collections that stalled the clock.
   */
  private readonly spare: Buffer[] = [];

  /** `sink` gets each chunk and a `release` to call once the chunk's bytes are no longer needed (optional). */
  constructor(readonly channels: RecordingChannels, private readonly sink: (chunk: Buffer, release: () => void) => void) {
    this.table = channels === 'mixed' ? mix() : null;
  }

  /** Samples per channel written out (the recording's length). */
  get samples(): number {
    return this.flushed;
  }

  /** The caller's audio as the session received it. */
  caller(audio: Uint8Array, offset = 0, length = audio.length - offset): void {
    const t = this.callerTrack;
    if (t.pos < this.now - CALLER_JITTER) t.pos = this.now;
    // Ahead of the clock (frames that came before the session joined it, or a
    // sender running fast): the timeline moves up to the caller rather than
    // letting the side fill the ring, which forced a chunk out per frame.
    else if (t.pos > this.now + CALLER_JITTER) this.advance(t.pos - this.now);
    this.put(t, audio, offset, length);
  }

  /** Moves the timeline on by whole frames (silence for the agent's side there); later ticks keep the offset. */
  private advance(samples: number): void {
    const frames = Math.ceil(samples / FRAME);
    this.now += frames * FRAME;
    if (this.slot0 >= 0) this.slot0 -= frames;
  }

  /** One frame of the agent's audio as it went out to the caller. */
  agent(audio: Uint8Array, offset = 0, length = audio.length - offset): void {
    const t = this.agentTrack;
    if (t.pos < this.now) t.pos = this.now;
    this.put(t, audio, offset, length);
  }

  /** One 20 ms slot of the session's clock (`slot`: the clock's own count; without it, one more than the last). */
  tick(slot?: number): void {
    if (this.closed) return;
    if (slot === undefined) this.now += FRAME;
    else {
      // Time zero is one slot back, or further when the caller's early frames already moved the timeline on.
      if (this.slot0 < 0) this.slot0 = slot - 1 - this.now / FRAME;
      // Never backwards; a jump (slots skipped by a stalled clock) becomes silence, at most 5 s of it at once.
      this.now = Math.max(this.now + FRAME, Math.min((slot - this.slot0) * FRAME, this.now + MAX_JUMP));
    }
    const done = this.now - CALLER_JITTER - FRAME;
    if (done - this.flushed >= CHUNK) this.flush(done);
  }

  /** Writes out everything either side holds; the recorder takes nothing more. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const end = Math.max(this.callerTrack.pos, this.agentTrack.pos, this.flushed);
    // Whole frames: the last frame of the shorter side is padded with silence.
    const whole = Math.ceil(end / FRAME) * FRAME;
    while (this.flushed < whole) this.flush(Math.min(whole, this.flushed + CHUNK));
  }

  private put(t: Track, audio: Uint8Array, offset: number, length: number): void {
    if (this.closed || length <= 0) return;
    // A chunk forced out early (a side far ahead) is final: later audio goes after it.
    if (t.pos < this.flushed) t.pos = this.flushed;
    const end = t.pos + length;
    if (end - this.flushed > RING) this.flush(end - RING);
    // A plain copy loop: no view object per frame (the agent's frames are slices of a queued chunk).
    const ring = t.ring;
    let at = t.pos % RING;
    for (let i = 0; i < length; i++) {
      ring[at] = audio[offset + i];
      if (++at === RING) at = 0;
    }
    t.pos = end;
  }

  /** Emits the timeline [flushed, upTo) as one chunk and clears it from the rings. */
  private flush(upTo: number): void {
    const n = upTo - this.flushed;
    if (n <= 0) return;
    const c = this.callerTrack.ring;
    const a = this.agentTrack.ring;
    const table = this.table;
    const size = table ? n : 2 * n;
    const out = this.spare.length && this.spare[this.spare.length - 1].length === size ? this.spare.pop()! : Buffer.allocUnsafe(size);
    let j = this.flushed % RING;
    if (table) {
      for (let i = 0; i < n; i++) {
        out[i] = table[(c[j] << 8) | a[j]];
        if (++j === RING) j = 0;
      }
    } else {
      for (let i = 0, o = 0; i < n; i++, o += 2) {
        out[o] = c[j];
        out[o + 1] = a[j];
        if (++j === RING) j = 0;
      }
    }
    const from = this.flushed % RING;
    const to = from + n;
    for (const ring of [c, a]) {
      ring.fill(ULAW_SILENCE, from, Math.min(to, RING));
      if (to > RING) ring.fill(ULAW_SILENCE, 0, to - RING);
    }
    this.flushed = upTo;
    // Only whole-second chunks come back for reuse (the odd sizes are the first and the last); a few at most.
    this.sink(out, size === (table ? CHUNK : 2 * CHUNK) ? () => void (this.spare.length < 4 && this.spare.push(out)) : noop);
  }
}
