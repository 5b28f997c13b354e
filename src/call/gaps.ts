// Every gap in the agent's voice, explained (issue 14), per call:
// - a *late frame* went out more than 10 ms after its 20 ms slot although
//   audio was queued for it: the event loop was blocked (a stall). Counted in
//   aybiza_playout_late_frames_total{stall} by how late the slot ran;
//   a block over 50 ms is logged (at most once a second, process-wide);
// - a *pause* is a run of slots with nothing to send inside the agent's
//   speech, attributed to what it waited for (PAUSE_REASONS). Counted once
//   per run in aybiza_playout_pauses_total{reason} and
//   aybiza_playout_pause_seconds{reason}.
// This runs on every slot of every call: per slot it only adds to plain
// numbers; Prometheus is touched once per pause, late frames go through hot
// counters folded in at scrape time.
import { log } from '../log.js';
import { hotCounter, playoutLateFrames, playoutPauseSeconds, playoutPauses } from '../metrics/index.js';
import { FRAME_MS } from './clock.js';

/** What a pause waited for (a closed set: the `reason` label). */
export const PAUSE_REASONS = [
  'llm_tokens', // the next sentence is not produced by the LLM yet
  'tts_audio', // text flushed to TTS, its audio not arrived yet
  'flush_window', // text waiting for a TTS flush the stream deferred (flush rate limit)
  'unflushed_text', // text said to the session but not flushed yet
  'tool', // a tool call running
  'barge_in_check', // output held while a suspected barge-in is confirmed
  'other',
] as const;
export type PauseReason = (typeof PAUSE_REASONS)[number];

/** How late a late frame's slot ran (a closed set: the `stall` label). */
export const STALL_CLASSES = ['le_25ms', 'le_50ms', 'gt_50ms'] as const;
export type StallClass = (typeof STALL_CLASSES)[number];

/** A frame sent this much after its slot is late. */
export const LATE_FRAME_MS = 10;
/** Event-loop blocks longer than this are logged. */
const LOG_BLOCK_MS = 50;
const LOG_EVERY_MS = 1000;

const REASON_INDEX = Object.fromEntries(PAUSE_REASONS.map((r, i) => [r, i])) as Record<PauseReason, number>;
const lateCounters = STALL_CLASSES.map((s) => hotCounter(playoutLateFrames, s));

export function stallClass(lateMs: number): number {
  return lateMs <= 25 ? 0 : lateMs <= 50 ? 1 : 2;
}

// Process-wide: one block delays every call's slot, so it is logged once.
let lastBlockLogAt = -Infinity;
let blockedFrames = 0;
let longestBlockMs = 0;

function noteBlock(lateMs: number, now: number): void {
  blockedFrames++;
  if (lateMs > longestBlockMs) longestBlockMs = lateMs;
  if (now - lastBlockLogAt < LOG_EVERY_MS) return;
  log.warn('event loop blocked: outbound frames late', { blockMs: Math.round(longestBlockMs), lateFrames: blockedFrames });
  lastBlockLogAt = now;
  blockedFrames = 0;
  longestBlockMs = 0;
}

export interface GapSummary {
  lateFrames: Partial<Record<StallClass, number>>;
  pauses: Partial<Record<PauseReason, { count: number; ms: number }>>;
}

export class PlayoutGaps {
  /** Late frames per stall class (STALL_CLASSES order). */
  readonly lateFrames = [0, 0, 0];
  /** Pauses and their total length per reason (PAUSE_REASONS order). */
  readonly pauses = PAUSE_REASONS.map(() => 0);
  readonly pauseMs = PAUSE_REASONS.map(() => 0);
  /** Empty slots of the pause in progress, per reason. */
  private readonly slots = PAUSE_REASONS.map(() => 0);
  private run = 0;
  private lastReason = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** A frame went out `lateMs` after its slot. */
  late(lateMs: number): void {
    if (lateMs <= LATE_FRAME_MS) return;
    const c = stallClass(lateMs);
    this.lateFrames[c]++;
    lateCounters[c].inc();
    if (lateMs > LOG_BLOCK_MS) noteBlock(lateMs, this.now());
  }

  /** A slot inside the agent's speech had nothing to send. */
  empty(reason: PauseReason): void {
    const i = REASON_INDEX[reason];
    this.slots[i]++;
    this.lastReason = i;
    this.run++;
  }

  get pausing(): boolean {
    return this.run > 0;
  }

  /**
   * The pause in progress ended: counted when audio followed it (or a
   * barge-in cut it), dropped when the speech turned out to be over.
   * It is attributed to the reason that held most of its slots (ties: the
   * latest), so each pause is counted once.
   */
  endPause(count: boolean): void {
    if (this.run === 0) return;
    if (count) {
      let best = this.lastReason;
      for (let i = 0; i < this.slots.length; i++) if (this.slots[i] > this.slots[best]) best = i;
      const ms = this.run * FRAME_MS;
      this.pauses[best]++;
      this.pauseMs[best] += ms;
      const reason = PAUSE_REASONS[best];
      playoutPauses.inc({ reason });
      playoutPauseSeconds.observe({ reason }, ms / 1000);
    }
    this.slots.fill(0);
    this.run = 0;
  }

  /** Non-zero counts only (logged when the call ends). */
  summary(): GapSummary {
    const out: GapSummary = { lateFrames: {}, pauses: {} };
    STALL_CLASSES.forEach((s, i) => {
      if (this.lateFrames[i]) out.lateFrames[s] = this.lateFrames[i];
    });
    PAUSE_REASONS.forEach((r, i) => {
      if (this.pauses[i]) out.pauses[r] = { count: this.pauses[i], ms: this.pauseMs[i] };
    });
    return out;
  }
}
