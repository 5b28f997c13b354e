// A campaign's calling window: the days and hours it may dial, read on the
// wall clock of the callee. The callee's zone is the campaign's
// `window.timezone` (an IANA name): a number does not tell its zone reliably
// (one country code spans several zones, mobiles roam, ported numbers keep
// their prefix), so the operator who knows the list states it, and a list
// spanning zones is split into one campaign per zone.
// A window whose end is before its start runs over midnight (22:00–02:00);
// its day is the day it opens. "24:00" as the end means the end of the day.

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface CallWindow {
  timezone: string;
  days: Weekday[];
  /** HH:MM, 00:00–23:59. */
  start: string;
  /** HH:MM, 00:01–24:00; not equal to start. */
  end: string;
}

export const START_PATTERN = '^([01][0-9]|2[0-3]):[0-5][0-9]$';
export const END_PATTERN = '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$';

/** Whether `tz` is a time zone this runtime knows (Intl throws a RangeError for any other). */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

// One formatter per zone: building one costs far more than formatting with it.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    // Bounded: zones come from validated campaigns, but a cache never grows without limit.
    if (formatters.size >= 500) formatters.clear();
    formatters.set(tz, f);
  }
  return f;
}

/** The weekday and minute of the day at `at` in `tz`. */
export function localTime(tz: string, at: Date): { day: number; minute: number } {
  let weekday = 'Sun';
  let hour = 0;
  let minute = 0;
  for (const p of formatter(tz).formatToParts(at)) {
    if (p.type === 'weekday') weekday = p.value;
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day: WEEKDAYS.indexOf(weekday.toLowerCase().slice(0, 3) as Weekday), minute: hour * 60 + minute };
}

/** True when the window is open at `at`. */
export function isOpen(w: CallWindow, at: Date): boolean {
  const { day, minute } = localTime(w.timezone, at);
  const start = minutes(w.start);
  const end = minutes(w.end);
  const on = (d: number) => w.days.includes(WEEKDAYS[(d + 7) % 7]);
  if (start < end) return on(day) && minute >= start && minute < end;
  // Over midnight: the evening part belongs to today, the morning part to yesterday's window.
  return (on(day) && minute >= start) || (on(day - 1) && minute < end);
}
