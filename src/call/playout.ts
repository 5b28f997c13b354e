// Outbound audio for one call: TTS audio in (any chunk size), whole 20 ms
// frames out on the shared clock, never more than the transport's lead ahead
// of the caller. A mark every 100 ms (and at the end of each segment) makes
// the transport report what the caller has actually heard; `heardMs()` is
// exact at marks and interpolated between them. `clear()` drops everything
// queued and settles the mark FIFO (Twilio also echoes marks on clear, so
// echoes from before the clear are recognised by their generation and ignored).
import { ULAW_SILENCE } from '../media/g711.js';
import type { CallTransport } from './transport.js';
import { FRAME_MS } from './clock.js';
import { playoutDeferredFrames } from '../metrics/index.js';
import { PlayoutGaps, type PauseReason } from './gaps.js';

const FRAME_BYTES = 160;
const MARK_EVERY_FRAMES = 5;
/**
 * Frames sent per 20 ms slot at most (counting those a late chunk's arrival
 * sends between slots). The far end is kept `leadMs` ahead against our own
 * stalls, but that lead is built at twice real time, not in one burst: a
 * reply's first TTS chunk (100 ms) used to leave as five frames at once,
 * and when the second chunk came a few tens of ms later the next frame
 * followed the burst by 40-70 ms. Spread over three slots, the first chunk
 * covers the wait for the second. The far end runs dry at the same moment
 * either way (the same frames reach it, only spread): nothing audible
 * changes except that the stream arrives evenly.
 */
const MAX_FRAMES_PER_SLOT = 2;

export interface Segment {
  id: number;
  text: string;
  /** Position (ms of sent audio) where its audio starts; -1 until the first frame is sent. */
  startMs: number;
  /** Position where it ends; -1 while audio may still come. */
  endMs: number;
  /** No more audio will be added. */
  complete: boolean;
  /** Audio received for it so far (ms). */
  audioMs: number;
}

/** Speaking rate used to estimate a segment's length before all its audio has arrived. */
const MS_PER_CHAR_ESTIMATE = 65;

interface Mark {
  name: string;
  posMs: number;
}

/**
 * Queued audio: whole frames of one segment in one contiguous chunk (as TTS
 * delivered it), sent 160 bytes at a time from `offset`. One entry per TTS
 * chunk, not per frame: queued seconds of audio for hundreds of calls would
 * otherwise be tens of thousands of small buffers surviving every GC.
 */
interface Queued {
  audio: Uint8Array;
  offset: number;
  segment: number;
}

export class Playout {
  /** Bytes of the open segment that do not fill a frame yet. */
  private pending = new Uint8Array(0);
  private frames: Queued[] = [];
  private head = 0;
  private readonly segments: Segment[] = [];
  private marks: Mark[] = [];
  private generation = 0;
  private markSeq = 0;
  private framesSinceMark = 0;
  /** ms of audio sent (the call's outbound timeline). */
  private sentMs = 0;
  /** Estimated far-end playhead, advanced 20 ms per tick while audio is buffered there. */
  private playheadMs = 0;
  /** Confirmed by the last echoed mark, and when. */
  private confirmedMs = 0;
  private confirmedAt = 0;
  private nextSegmentId = 1;
  /** While paused nothing is sent; queued audio waits (tentative barge-in). */
  paused = false;
  /** Frames the transport refused (backpressure). */
  deferred = 0;
  framesSent = 0;
  /** Fires when a segment has been completely heard. */
  onSegmentHeard?: (s: Segment) => void;
  /** Fires when a segment's first frame is sent. */
  onSegmentStart?: (s: Segment) => void;
  /** Sees each frame as it goes out (the call's recording): `audio` from `offset`, 160 bytes. */
  onFrameSent: ((audio: Uint8Array, offset: number) => void) | null = null;
  /** Fires once when the last queued frame has been heard (the agent finished speaking). */
  onIdle?: () => void;
  private wasBusy = false;
  /** Frames this slot may still send (MAX_FRAMES_PER_SLOT, renewed by every advancing tick). */
  private slotBudget = MAX_FRAMES_PER_SLOT;
  /** Late frames and pauses of this call (src/call/gaps.ts). */
  readonly gaps: PlayoutGaps;
  /**
   * The reply in progress will say more (its LLM round or a tool is still
   * running): an empty slot after its audio is a pause, not the end.
   */
  expectMore = false;
  /** What an empty slot waits for, unless output is held (set by the session). */
  pauseReason?: () => PauseReason;
  /** Segments from this id on belong to the current reply (earlier ones: greeting, previous replies). */
  private replyFrom = 1;
  /** Segment of the last frame sent (0: none since the last clear). */
  private lastSentSegment = 0;
  /** A frame went out and the speech it belongs to has not ended yet. */
  private inSpeech = false;

  constructor(private readonly transport: CallTransport, private readonly now: () => number = () => performance.now()) {
    this.gaps = new PlayoutGaps(now);
  }

  /** A new reply starts: segments begun from now on are its own. */
  beginReply(): void {
    this.replyFrom = this.nextSegmentId;
  }

  /** Starts a new segment (e.g. one TTS flush); audio goes to it until `endSegment`. */
  beginSegment(text: string): number {
    const id = this.nextSegmentId++;
    this.segments.push({ id, text, startMs: -1, endMs: -1, complete: false, audioMs: 0 });
    return id;
  }

  appendText(id: number, text: string): void {
    const s = this.segment(id);
    if (s) s.text += text;
  }

  push(id: number, audio: Uint8Array): void {
    const s = this.segment(id);
    if (!s || s.complete) return;
    s.audioMs += audio.length / 8;
    // One copy: the caller's buffer may be reused (the queue outlives this call).
    const bytes = new Uint8Array(this.pending.length + audio.length);
    bytes.set(this.pending);
    bytes.set(audio, this.pending.length);
    const whole = bytes.length - (bytes.length % FRAME_BYTES);
    if (whole > 0) this.frames.push({ audio: bytes.subarray(0, whole), offset: 0, segment: id });
    this.pending = bytes.subarray(whole);
  }

  endSegment(id: number): void {
    const s = this.segment(id);
    if (!s || s.complete) return;
    if (this.pending.length > 0) {
      const last = new Uint8Array(FRAME_BYTES).fill(ULAW_SILENCE);
      last.set(this.pending);
      this.frames.push({ audio: last, offset: 0, segment: id });
      this.pending = new Uint8Array(0);
    }
    s.complete = true;
    this.frames.push({ audio: MARKER, offset: 0, segment: id }); // end-of-segment marker
  }

  private segment(id: number): Segment | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) if (this.segments[i].id === id) return this.segments[i];
    return undefined;
  }

  /** Audio queued here, not yet sent (ms). */
  get queuedMs(): number {
    let bytes = 0;
    for (let i = this.head; i < this.frames.length; i++) bytes += this.frames[i].audio.length - this.frames[i].offset;
    return (bytes / FRAME_BYTES) * FRAME_MS;
  }

  /** True while the agent is audible or about to be. */
  get speaking(): boolean {
    return this.head < this.frames.length || this.heardMs() < this.sentMs;
  }

  get sentPositionMs(): number {
    return this.sentMs;
  }

  /** What the caller has heard (ms of our outbound timeline). */
  heardMs(): number {
    const next = this.marks[0];
    if (!next) return this.sentMs;
    const elapsed = this.now() - this.confirmedAt;
    return Math.min(next.posMs, this.confirmedMs + Math.max(0, elapsed));
  }

  /** ≥ 0 when the far end has nothing left to play (ms of our timeline), else -1. */
  idleSinceMs(): number {
    return this.playheadMs >= this.sentMs ? this.sentMs : -1;
  }

  /**
   * Called on every clock tick (`advance`, with how late the slot runs) and
   * once when audio arrives after a pause (`advance` false: not a slot).
   */
  tick(advance = true, lateMs = 0): void {
    if (advance && this.playheadMs < this.sentMs) this.playheadMs += FRAME_MS;
    if (advance) this.slotBudget = MAX_FRAMES_PER_SLOT;
    if (this.paused) {
      if (advance) this.emptySlot();
      return;
    }
    const sentBefore = this.framesSent;
    // Not sending because the far end is far enough ahead or the socket is
    // backpressured is not a pause.
    let held = false;
    while (this.head < this.frames.length) {
      const item = this.frames[this.head];
      if (item.audio === MARKER) {
        this.head++;
        const s = this.segment(item.segment);
        if (s) {
          if (s.startMs < 0) s.startMs = this.sentMs;
          s.endMs = this.sentMs;
          this.mark(true); // exact end of the segment
        }
        continue;
      }
      if (this.sentMs - this.playheadMs >= this.transport.leadMs || this.slotBudget === 0) {
        held = true;
        break;
      }
      if (!this.transport.sendFrame(item.audio, item.offset, FRAME_BYTES)) {
        this.deferred++;
        playoutDeferredFrames.inc({ transport: this.transport.kind });
        held = true;
        break;
      }
      this.onFrameSent?.(item.audio, item.offset);
      this.lastSentSegment = item.segment;
      const s = this.segment(item.segment);
      if (s && s.startMs < 0) {
        s.startMs = this.sentMs;
        this.onSegmentStart?.(s);
      }
      item.offset += FRAME_BYTES;
      if (item.offset >= item.audio.length) this.head++;
      this.framesSent++;
      this.slotBudget--;
      this.sentMs += FRAME_MS;
      this.wasBusy = true;
      if (++this.framesSinceMark >= MARK_EVERY_FRAMES) this.mark();
    }
    if (this.framesSent > sentBefore) {
      this.inSpeech = true;
      this.gaps.endPause(true);
      if (advance) this.gaps.late(lateMs);
    } else if (advance && !held) {
      this.emptySlot();
    }
    if (this.head > 256 && this.head === this.frames.length) {
      this.frames = [];
      this.head = 0;
    }
  }

  /** A slot with nothing sent: a pause if the speech is not over. */
  private emptySlot(): void {
    if (!this.inSpeech) return;
    if (!this.speechContinues()) {
      this.inSpeech = false;
      this.gaps.endPause(false);
      return;
    }
    this.gaps.empty(this.paused ? 'barge_in_check' : (this.pauseReason?.() ?? 'other'));
  }

  /** More audio of the speech whose last frame went out is still to come. */
  private speechContinues(): boolean {
    const last = this.lastSentSegment;
    if (last === 0) return false;
    if (this.head < this.frames.length) {
      // Queued audio held back (paused): the same speech if it is the same segment or the same reply.
      const next = this.frames[this.head].segment;
      return next === last || (last >= this.replyFrom && next >= this.replyFrom);
    }
    const s = this.segment(last);
    if (s && !s.complete) return true; // its TTS audio is still arriving
    if (last < this.replyFrom) return false; // earlier speech (greeting, an older reply) is over
    if (this.expectMore) return true;
    for (let i = this.segments.length - 1; i >= 0 && this.segments[i].id > last; i--) if (!this.segments[i].complete) return true;
    return false;
  }

  /**
   * `end`: the mark closes a spoken segment, and its name says so
   * (`<generation>.<seq>.end`), so whoever plays the audio can tell a pause
   * between segments from a gap inside one; it is sent even where a periodic
   * mark already stands at the same position.
   */
  private mark(end = false): void {
    this.framesSinceMark = 0;
    if (!end && this.marks.length && this.marks[this.marks.length - 1].posMs === this.sentMs) return;
    if (this.sentMs === this.confirmedMs && this.marks.length === 0) return;
    const name = end ? `${this.generation}.${this.markSeq++}.end` : `${this.generation}.${this.markSeq++}`;
    this.marks.push({ name, posMs: this.sentMs });
    this.transport.sendMark(name);
  }

  /** The transport reports a mark played. Unknown or stale names are ignored. */
  onMarkPlayed(name: string): boolean {
    const idx = this.marks.findIndex((m) => m.name === name);
    if (idx < 0) return false;
    const m = this.marks[idx];
    this.marks.splice(0, idx + 1);
    this.confirmedMs = m.posMs;
    this.confirmedAt = this.now();
    this.playheadMs = Math.max(this.playheadMs, m.posMs);
    for (const s of this.segments) {
      if (s.complete && s.endMs >= 0 && s.endMs <= m.posMs && !(s as { heard?: boolean }).heard) {
        (s as { heard?: boolean }).heard = true;
        this.onSegmentHeard?.(s);
      }
    }
    this.trimSegments();
    if (this.wasBusy && this.head >= this.frames.length && this.marks.length === 0) {
      this.wasBusy = false;
      this.onIdle?.();
    }
    return true;
  }

  private trimSegments(): void {
    while (this.segments.length > 64 && (this.segments[0] as { heard?: boolean }).heard) this.segments.shift();
  }

  /**
   * Barge-in: drops all queued audio, tells the far end to drop its buffer,
   * and returns what the caller heard of each segment that was playing.
   */
  /**
   * What the caller has heard so far of each segment not yet completely
   * heard, without touching the queue (a call that ends mid-reply stores its
   * turn from this; a barge-in gets it from clear()).
   */
  heard(): { heardMs: number; segments: { id: number; text: string; heardFraction: number }[] } {
    const heard = this.heardMs();
    const segments = this.segments
      .filter((s) => !(s as { heard?: boolean }).heard)
      .map((s) => {
        let fraction = 0;
        if (s.startMs >= 0 && heard > s.startMs) {
          // While TTS is still streaming a segment its length is not known yet: estimate it from the text.
          const total = s.complete ? s.audioMs : Math.max(s.audioMs, s.text.trim().length * MS_PER_CHAR_ESTIMATE);
          fraction = total > 0 ? Math.min(1, (heard - s.startMs) / total) : 1;
        }
        return { id: s.id, text: s.text, heardFraction: fraction };
      });
    return { heardMs: heard, segments };
  }

  clear(): { heardMs: number; segments: { id: number; text: string; heardFraction: number }[] } {
    const { heardMs: heard, segments: affected } = this.heard();
    this.generation++;
    this.frames = [];
    this.head = 0;
    this.pending = new Uint8Array(0);
    this.marks = [];
    for (const s of this.segments) (s as { heard?: boolean }).heard = true;
    this.segments.length = 0;
    this.transport.clearPlayout();
    // Our timeline continues from what was heard; later audio starts there.
    this.sentMs = heard;
    this.playheadMs = heard;
    this.confirmedMs = heard;
    this.confirmedAt = this.now();
    this.wasBusy = false;
    // A hole cut short by a barge-in is still a hole the caller heard.
    this.gaps.endPause(true);
    this.inSpeech = false;
    this.lastSentSegment = 0;
    return { heardMs: heard, segments: affected };
  }
}

const MARKER = new Uint8Array(0);
