// Adaptive jitter buffer for 20 ms G.711 RTP frames over the native core
// (native/jitter_buffer.{h,cc}: playout model, target delay, concealment).
// Feed every RTP packet to push() as it arrives and call pop() every 20 ms of
// the same clock; pop returns the frame to play, concealment included.
//
// Behaviour worth knowing:
// - pop() returns null until the initial target delay has built up; after a
//   mid-call restart (SSRC change, sequence jump ≥ 1000, timestamp leap) it
//   returns silence while rebuilding, so the output never stops.
// - Loss is not lateness: a sequence number that never arrives is concealed
//   in place and does not move the target. Only arrived packets' transit
//   times do (relative to the fastest recent transit, the sender's clock
//   drift removed: `driftPpm`). The target is the delay that minimises
//   delay + 100 ms per 1 % of packets it would leave late (200 ms on a
//   heavy-tailed path: `heavyTail`), over two
//   histories (4 s and 7 s), capped at 100 ms unless that leaves more than
//   `lateLossBudget` late, and never leaving more than `lateLossBudget` late
//   when a delay up to maxDelayMs would avoid it. A cautious start-up prior
//   (50 ms) is dropped after 2 s.
// - pop() hands out whole frames, so a frame's packet is due at the pop that
//   first needs it: the delay that decides lateness moves in 20 ms steps of
//   the caller's pop clock. The buffer keeps that deadline on the first step
//   at or above the target and removes any time a frame would wait after it.
// - Delay changes by time-scale modification (native/tsm.cc, WSOLA): in
//   near-silence exactly the change needed (up to 20 ms per pop), in speech
//   one pitch period (5–15 ms) of well-correlated audio (`stretched`,
//   `compressed`). Speech is stretched only after 200 ms without a pause or
//   when the deadline is 20 ms below target, compressed only after 1 s
//   without a pause; never a whole frame of it. Output frames are therefore
//   not aligned with packets after a change.
// - A missing packet whose slot was concealed (or bridged in an underrun)
//   still plays if it arrives before that concealment starts to play; once
//   some of it has played the packet counts `late` (as for a fixed buffer),
//   though the rest of its audio is merged in while under half was played.
// - Underrun (nothing buffered): playout holds and conceals; the held frames
//   are credited against the gap the next packet reveals, so a packet that
//   was merely late still plays (the delay grew by the hold and is
//   compressed back later).
// - A timestamp gap with no sequence gap is DTX: comfort silence, not loss.
//   While the buffer is empty the two cannot be told apart yet; the buffer
//   then conceals if the last frame was voiced and plays silence if it was
//   quiet (senders enter DTX on silence). `lost` counts by sequence number
//   only, so DTX never counts as loss.
import { closedError, native } from './native.js';

export interface JitterBufferOptions {
  /** Payload codec; concealment decodes and re-encodes in it. Default 'pcmu'. */
  codec?: 'pcmu' | 'pcma';
  /** Lower bound of the adaptive target delay, ms. Default 20. */
  minDelayMs?: number;
  /** Upper bound of the target delay and of underrun holds, ms (20..1000). Default 400. */
  maxDelayMs?: number;
  /**
   * Largest share of packets (0..0.2) the target may leave to arrive late to
   * save delay on a heavy-tailed path. Default 0.01. On light-tailed paths the
   * cost rule keeps late loss far below it.
   */
  lateLossBudget?: number;
}

export interface JitterPacket {
  /** RTP sequence number, 0..65535 (wraps). */
  seq: number;
  /** RTP timestamp at 8 kHz, 0..2^32-1 (wraps). */
  timestamp: number;
  /** Exactly 160 bytes: one 20 ms G.711 frame. Copied; the caller may reuse it. */
  payload: Uint8Array;
  /** Arrival time on the clock later passed to pop(), ms. */
  arrivalMs: number;
  /** RTP SSRC; a change restarts the stream state. */
  ssrc?: number;
}

export interface JitterFrame {
  /** 160 codec bytes: the packet as received, concealment, or silence (0xFF μ-law / 0xD5 A-law). */
  payload: Uint8Array;
  /** True when most of the frame was synthesised for a missing packet. */
  concealed: boolean;
}

export interface JitterStats {
  /** Valid packets pushed, duplicates and late ones included. */
  received: number;
  /** Frames played from a received packet. */
  played: number;
  /** Packets that arrived after their frame began to play (as concealment). */
  late: number;
  /** Sequence numbers that never arrived. */
  lost: number;
  /** Frames synthesised by concealment (including its silent tail after 60 ms). */
  concealed: number;
  duplicate: number;
  /** Packets that arrived after a higher sequence number. */
  reordered: number;
  /** Delay of the frame played last, over the fastest recent transit, ms. */
  currentDelayMs: number;
  targetDelayMs: number;
  /** Arrival to playout of played packets over the call, mean and 95th percentile, ms. */
  meanDelayMs: number;
  p95DelayMs: number;
  /** Time-scale steps that added delay (stretched) or removed it (compressed), and the audio they moved, ms. */
  stretched: number;
  compressed: number;
  stretchedMs: number;
  compressedMs: number;
  /** Sender clock rate against ours in ppm (+ = sender fast), estimated from transit minima. */
  driftPpm: number;
  /** The path's delay has a heavy tail now (7 s history): late loss weighs 200 ms per 1 % instead of 100. */
  heavyTail: boolean;
}

export type PushOutcome = 'accepted' | 'duplicate' | 'late' | 'restarted';
const PUSH_OUTCOMES: PushOutcome[] = ['accepted', 'duplicate', 'late', 'restarted'];

interface NativeJitterBuffer {
  push(seq: number, timestamp: number, payload: Uint8Array, arrivalMs: number, ssrc?: number): number;
  pop(nowMs: number, dst: Uint8Array): number;
  skip(seq: number): void;
  stats(): JitterStats;
  reset(): void;
  close(): void;
}
export type NativeJitterBufferClass = new (opts?: JitterBufferOptions) => NativeJitterBuffer;

const POP_NONE = 0;
const POP_CONCEALED = 2;
const FRAME_BYTES = 160;

// Frames are views into pooled slabs (as in g711.ts): no ArrayBuffer per pop.
const SLAB_FRAMES = 64;
let slab = new Uint8Array(FRAME_BYTES * SLAB_FRAMES);
let slabOff = 0;

export class JitterBuffer {
  #native: NativeJitterBuffer | undefined;

  constructor(opts: JitterBufferOptions = {}) {
    this.#native = new (native.JitterBuffer as NativeJitterBufferClass)(opts);
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  /** Queues one packet. Duplicates and packets behind the playout point are counted and dropped. */
  push(packet: JitterPacket): PushOutcome {
    const n = this.#open();
    if (typeof packet !== 'object' || packet === null) throw new TypeError('argument 0 (packet) must be an object');
    // The native side validates each field (type, range, 160-byte payload).
    return PUSH_OUTCOMES[n.push(packet.seq, packet.timestamp, packet.payload, packet.arrivalMs, packet.ssrc)];
  }

  /**
   * A packet of the same stream that carries no audio (an RFC 4733
   * telephone-event, another payload type): its sequence number arrived, so
   * it is not counted lost, and a gap made only of such numbers plays as
   * silence (like DTX) rather than concealment.
   */
  skip(seq: number): void {
    this.#open().skip(seq);
  }

  /** The next 20 ms frame to play at `nowMs`, or null while the initial delay builds up. */
  pop(nowMs: number): JitterFrame | null {
    const n = this.#open();
    if (slabOff + FRAME_BYTES > slab.length) {
      slab = new Uint8Array(FRAME_BYTES * SLAB_FRAMES);
      slabOff = 0;
    }
    const out = slab.subarray(slabOff, slabOff + FRAME_BYTES);
    const r = n.pop(nowMs, out);
    if (r === POP_NONE) return null;
    slabOff += FRAME_BYTES;
    return { payload: out, concealed: r === POP_CONCEALED };
  }

  stats(): JitterStats {
    return this.#open().stats();
  }

  /** Drops buffered packets, stream state and statistics. */
  reset(): void {
    this.#open().reset();
  }

  /**
   * Releases the native buffer. Every later call throws a TypeError with code
   * 'ERR_AYBIZA_CLOSED', except close() itself: it is idempotent, so several
   * teardown paths may call it.
   */
  close(): void {
    this.#native?.close();
    this.#native = undefined;
  }

  #open(): NativeJitterBuffer {
    if (this.#native === undefined) throw closedError('JitterBuffer');
    return this.#native;
  }
}
