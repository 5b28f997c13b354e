// A call's two sides on one 20 ms timeline, as they were heard: the caller's
// frames as the session receives them (after SIP's jitter buffer; Twilio's
// decoded frames in order) and the agent's frames as the playout clock sends
// them (what a barge-in cut was never sent, so it is not here). The per-frame
// work is a copy of the caller's frame into its ring, and for the agent's a
// reference to the frame in the playout's queue (those buffers are the
// playout's own copies, never written again: no copy, no view); every second of
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
const SLOTS = RING / FRAME;

class Track {
  readonly ring = new Uint8Array(RING).fill(ULAW_SILENCE);
  /** The same ring, four samples at a time (the interleave's reads). */
  readonly quads = new Uint32Array(this.ring.buffer);
  /** Timeline position (samples) where this side's next sample goes. */
  pos = 0;
}

/** As interleave, the agent's samples read four bytes at a time from a frame at any offset. */
function interleaveFrom(c: Uint32Array, q: number, ref: Uint8Array, r: number, out: Uint32Array, o: number, count: number): void {
  for (let i = 0; i < count; i++, q++, r += 4, o += 2) {
    const x = c[q];
    out[o] = (x & 0xff) | (ref[r] << 8) | ((x & 0xff00) << 8) | (ref[r + 1] << 24);
    out[o + 1] = ((x >>> 16) & 0xff) | (ref[r + 2] << 8) | ((x >>> 8) & 0xff0000) | (ref[r + 3] << 24);
  }
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

/** `count` quads of caller and agent samples from quad `q` on, as stereo pairs into `out` from index `o` (two per quad). */
function interleave(c: Uint32Array, a: Uint32Array, q: number, out: Uint32Array, o: number, count: number): void {
  for (let i = 0; i < count; i++, q++, o += 2) {
    const x = c[q];
    const y = a[q];
    out[o] = (x & 0xff) | ((y & 0xff) << 8) | ((x & 0xff00) << 8) | ((y & 0xff00) << 16);
    out[o + 1] = ((x >>> 16) & 0xff) | ((y >>> 8) & 0xff00) | ((x >>> 8) & 0xff0000) | (y & 0xff000000);
  }
}

export class CallRecorder {
  private readonly callerTrack = new Track();
  private readonly agentTrack = new Track();
  /**
   * The agent's whole frames by ring slot, held by reference (see the top):
   * the frame at `agentRefs[k]` from `agentOffs[k]`; null where the agent's
   * ring holds the slot's bytes (silence, or audio that came in other sizes).
   * A side's position only moves forward, so no later write lands in a slot
   * already held by reference.
   */
  private readonly agentRefs: (Uint8Array | null)[] = new Array(SLOTS).fill(null);
  private readonly agentOffs = new Int32Array(SLOTS);
  /** Start of the current 20 ms slot (samples). */
  private now = 0;
  /** The clock's slot at the first tick (the recording's time zero). */
  private slot0 = -1;
  /** Timeline written out so far (samples per channel). */
  private flushed = 0;
  private closed = false;
  private readonly table: Uint8Array | null;

  /**
   * `sink` gets each chunk and owns it from then on; `alloc` gives the
   * buffer for the next one (the file writer's come from a pool, with room
   * for the WAV header in front: no allocation per chunk, no copy).
   */
  constructor(
    readonly channels: RecordingChannels,
    private readonly sink: (chunk: Buffer) => void,
    private readonly alloc: (bytes: number) => Buffer = (bytes) => Buffer.from(new ArrayBuffer(bytes)),
  ) {
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

  /** One frame of the agent's audio as it went out to the caller (held by reference: the bytes must not change afterwards). */
  agent(audio: Uint8Array, offset = 0, length = audio.length - offset): void {
    const t = this.agentTrack;
    if (t.pos < this.now) t.pos = this.now;
    if (length === FRAME && t.pos % FRAME === 0 && t.pos >= this.flushed && !this.closed) {
      const end = t.pos + FRAME;
      if (end - this.flushed > RING) this.flush(end - RING);
      const k = (t.pos % RING) / FRAME;
      this.agentRefs[k] = audio;
      this.agentOffs[k] = offset;
      t.pos = end;
      return;
    }
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
    const ring = t.ring;
    const at = t.pos % RING;
    if (at + length <= RING) {
      // One memcpy; a view only when the frame is part of a larger buffer (the agent's queued chunks).
      ring.set(offset === 0 && length === audio.length ? audio : audio.subarray(offset, offset + length), at);
    } else {
      const head = RING - at;
      ring.set(audio.subarray(offset, offset + head), at);
      ring.set(audio.subarray(offset + head, offset + length), 0);
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
    const out = this.alloc(size);
    const refs = this.agentRefs;
    const quads = (this.table === null && out.byteOffset % 4 === 0) ? new Uint32Array(out.buffer, out.byteOffset, n >> 1) : null;
    // Frame by frame (a frame never wraps around the ring: RING is whole frames).
    for (let p = this.flushed; p < upTo; ) {
      const j = p % RING;
      const k = (j / FRAME) | 0;
      const len = Math.min(upTo - p, FRAME - (j % FRAME));
      const i = p - this.flushed;
      const ref = refs[k];
      if (ref) {
        const r = this.agentOffs[k] + (j % FRAME);
        if (table) for (let x = 0; x < len; x++) out[i + x] = table[(c[j + x] << 8) | ref[r + x]];
        else if (quads && ((j | len | i) & 3) === 0) interleaveFrom(this.callerTrack.quads, j >> 2, ref, r, quads, i >> 1, len >> 2);
        else for (let x = 0, o = 2 * i; x < len; x++, o += 2) (out[o] = c[j + x]), (out[o + 1] = ref[r + x]);
        // A frame split by a forced chunk keeps its reference for the rest.
        if ((j % FRAME) + len === FRAME) refs[k] = null;
      } else if (table) {
        for (let x = 0; x < len; x++) out[i + x] = table[(c[j + x] << 8) | a[j + x]];
      } else if (quads && ((j | len | i) & 3) === 0) {
        // Four sample pairs per step, as two 32-bit stores (little-endian: the caller's byte first, the left channel).
        interleave(this.callerTrack.quads, this.agentTrack.quads, j >> 2, quads, i >> 1, len >> 2);
      } else {
        for (let x = 0, o = 2 * i; x < len; x++, o += 2) (out[o] = c[j + x]), (out[o + 1] = a[j + x]);
      }
      p += len;
    }
    const from = this.flushed % RING;
    const to = from + n;
    for (const ring of [c, a]) {
      ring.fill(ULAW_SILENCE, from, Math.min(to, RING));
      if (to > RING) ring.fill(ULAW_SILENCE, 0, to - RING);
    }
    this.flushed = upTo;
    this.sink(out);
  }
}
