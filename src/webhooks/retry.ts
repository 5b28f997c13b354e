// When a failed delivery is tried again: the first retry within a minute
// (30 s), then each wait four times the last, at most 8 h, and nothing after
// 24 h from the event: 0, 30 s, 2.5 min, 10.5 min, 42.5 min, 2 h 50 min,
// 10 h 50 min, 18 h 50 min, 24 h, then the delivery is given up (recorded).
// Tests inject a schedule in milliseconds instead of sleeping for hours.

export interface RetrySchedule {
  /** Wait before the first retry. */
  firstRetryMs: number;
  /** Each later wait is the previous one times this. */
  factor: number;
  maxDelayMs: number;
  /** No attempt later than this after the event was created; the last wait is shortened to land on it. */
  giveUpAfterMs: number;
}

export const DEFAULT_RETRY_SCHEDULE: RetrySchedule = {
  firstRetryMs: 30_000,
  factor: 4,
  maxDelayMs: 8 * 3600_000,
  giveUpAfterMs: 24 * 3600_000,
};

/** The n-th wait (n = 1 before the first retry), uncapped by the deadline. */
const wait = (s: RetrySchedule, n: number) => Math.min(s.firstRetryMs * s.factor ** (n - 1), s.maxDelayMs);

/**
 * The wait before the next attempt after `attempts` failed ones; null when
 * the delivery is to be given up. Counted on the schedule itself, not on the
 * clock, so every node and every restart agree on where a delivery stands.
 */
export function nextRetryDelay(s: RetrySchedule, attempts: number): number | null {
  let elapsed = 0;
  for (let n = 1; n < attempts; n++) elapsed += wait(s, n);
  const left = s.giveUpAfterMs - elapsed;
  if (left <= 0 || attempts < 1) return null;
  return Math.min(wait(s, attempts), left);
}
