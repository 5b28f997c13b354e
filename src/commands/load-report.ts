// Pure helpers for `npm run load`'s report: percentiles, the server's playout
// counters read from a /metrics scrape, and the human-readable tables (our
// server beside the naive baseline measured in the same run, and the spread
// of every figure over several runs).

/** Late frames by how long the stall was: the label values of aybiza_playout_late_frames_total. */
export const STALLS = ['le_25ms', 'le_50ms', 'gt_50ms'] as const;
/** What a pause inside a reply waited for: the label values of aybiza_playout_pauses_total. */
export const PAUSE_REASONS = ['llm_tokens', 'tts_audio', 'flush_window', 'unflushed_text', 'tool', 'barge_in_check', 'other'] as const;

export function pct(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** The median (an even count: the mean of the middle two); NaN when empty. */
export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export interface GapSpread {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function gapSpread(xs: number[]): GapSpread {
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  return { count: xs.length, p50: +pct(xs, 0.5).toFixed(2), p99: +pct(xs, 0.99).toFixed(2), max: xs.length ? +max.toFixed(2) : NaN };
}

/**
 * Sum of a metric's samples in Prometheus text, by the value of one label
 * (other labels summed over). `{}` when the metric is absent.
 */
export function sumByLabel(metrics: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const labelRe = new RegExp(`(?:^|,)${label}="([^"]*)"`);
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const close = line.indexOf('}');
    const key = labelRe.exec(line.slice(name.length + 1, close))?.[1];
    const value = Number(line.slice(close + 1).trim().split(' ')[0]);
    if (key === undefined || !Number.isFinite(value)) continue;
    out[key] = (out[key] ?? 0) + value;
  }
  return out;
}

export interface PlayoutCounters {
  lateFrames: Record<string, number>;
  pauses: Record<string, { count: number; seconds: number }>;
}

/** The server's late frames by stall and pauses by reason between two scrapes; 0 where a metric is absent. */
export function playoutCounters(before: string, after: string): PlayoutCounters {
  const delta = (name: string, label: string, known: readonly string[]) => {
    const a = sumByLabel(after, name, label);
    const b = sumByLabel(before, name, label);
    const out: Record<string, number> = {};
    for (const k of new Set([...known, ...Object.keys(a)])) out[k] = +((a[k] ?? 0) - (b[k] ?? 0)).toFixed(3);
    return out;
  };
  const late = delta('aybiza_playout_late_frames_total', 'stall', STALLS);
  const counted = delta('aybiza_playout_pauses_total', 'reason', PAUSE_REASONS);
  const observed = delta('aybiza_playout_pause_seconds_count', 'reason', PAUSE_REASONS);
  const seconds = delta('aybiza_playout_pause_seconds_sum', 'reason', PAUSE_REASONS);
  const pauses: PlayoutCounters['pauses'] = {};
  for (const r of new Set([...Object.keys(counted), ...Object.keys(observed), ...Object.keys(seconds)])) {
    pauses[r] = { count: counted[r] || observed[r] || 0, seconds: seconds[r] ?? 0 };
  }
  return { lateFrames: late, pauses };
}

/** What the table compares, for either server. */
export interface SideFigures {
  connected: number;
  /** Calls that ended before the window closed (the CPU is divided by the call-seconds up, not the window). */
  endedInWindow: number;
  /** The server's CPU seconds in the window by thread group (main, aybiza-w0…, aybiza-db, aybiza-rec, other). */
  serverCpuByThread?: Record<string, number>;
  cpuSecondsPerCallSecond: number;
  callsPerCore: number;
  inSegmentGapMs: GapSpread;
  /** Gaps over 40 ms inside a spoken segment, as the callers heard them. */
  inSegmentLateFrames: number;
  droppedFrames: number;
  /** The load process's own event-loop delay: it bounds how much of a gap is the measurement's. */
  callerEventLoopDelayMs: { p99: number; max: number };
  /** The callers' voice-to-voice (last audible frame sent → the agent's next frame heard), in the measured window. */
  voiceToVoiceMs: { count: number; p50: number };
}

/** Garbage collection in the window by kind (prom-client's nodejs_gc_duration_seconds): collections and their total time. */
export type GcTime = Record<string, { count: number; seconds: number }>;

/** The server's GC by kind between two scrapes (main threads; a WORKERS>1 server reports its workers' too). */
export function gcTime(before: string, after: string): GcTime {
  const d = (name: string) => {
    const a = sumByLabel(after, name, 'kind');
    const b = sumByLabel(before, name, 'kind');
    return Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - (b[k] ?? 0)]));
  };
  const count = d('nodejs_gc_duration_seconds_count');
  const seconds = d('nodejs_gc_duration_seconds_sum');
  return Object.fromEntries(Object.keys(count).map((k) => [k, { count: count[k], seconds: +(seconds[k] ?? 0).toFixed(4) }]));
}

/** Ours adds what only our server reports. */
export interface OurFigures extends SideFigures {
  /** Absent: not scraped (a server without prom-client's default metrics). */
  gc?: GcTime;
  playout: PlayoutCounters;
  flushLimitWarnings: number;
  /** Median e2e of the run's stored turns (the server's measure: caller's speech end → first agent frame sent). */
  e2eMedianMs: number;
}

export interface Row {
  label: string;
  ours: number;
  /** Absent: a figure only our server has. */
  naive?: number;
  /** Print ours/naive. */
  ratio?: boolean;
  digits: number;
  /** Seconds beside a count (a pause reason's total length), printed as "count (s s)". */
  seconds?: number;
}

/** The rows of one run's side-by-side table, in print order. */
export function comparisonRows(ours: OurFigures, naive: SideFigures | null): Row[] {
  const both = (label: string, f: (s: SideFigures) => number, digits: number, ratio = false): Row => ({
    label, ours: f(ours), naive: naive ? f(naive) : undefined, ratio: ratio && naive !== null, digits,
  });
  const rows: Row[] = [
    both('calls connected', (s) => s.connected, 0),
    both('calls ended before the window closed', (s) => s.endedInWindow, 0),
    { label: 'e2e median (ms, stored turns)', ours: ours.e2eMedianMs, digits: 1 },
    both('voice-to-voice median (ms, callers)', (s) => s.voiceToVoiceMs.p50, 1),
    both('voice-to-voice samples', (s) => s.voiceToVoiceMs.count, 0),
    both('CPU ms per call-second', (s) => s.cpuSecondsPerCallSecond * 1000, 3, true),
    both('calls per core', (s) => s.callsPerCore, 0, true),
    ...threadRows(ours, naive),
    both('in-segment gap p50 (ms)', (s) => s.inSegmentGapMs.p50, 2),
    both('in-segment gap p99 (ms)', (s) => s.inSegmentGapMs.p99, 2),
    both('in-segment gap max (ms)', (s) => s.inSegmentGapMs.max, 2),
    both('late frames (in-segment gap > 40 ms)', (s) => s.inSegmentLateFrames, 0),
    both('dropped frames (sent - received)', (s) => s.droppedFrames, 0),
    both("callers' event-loop delay p99 (ms)", (s) => s.callerEventLoopDelayMs.p99, 1),
    both("callers' event-loop delay max (ms)", (s) => s.callerEventLoopDelayMs.max, 1),
  ];
  // GC time: on both sides when both are our server (--baseline unrecorded).
  const otherGc = (naive as Partial<OurFigures> | null)?.gc;
  for (const kind of ['minor', 'major', 'incremental']) {
    if (!ours.gc?.[kind] && !otherGc?.[kind]) continue;
    rows.push({ label: `server GC ${kind} (ms in window)`, ours: (ours.gc?.[kind]?.seconds ?? 0) * 1000, naive: otherGc ? (otherGc[kind]?.seconds ?? 0) * 1000 : undefined, ratio: otherGc !== undefined, digits: 0 });
  }
  for (const [stall, n] of Object.entries(ours.playout.lateFrames)) rows.push({ label: `server late frames, stall ${stall}`, ours: n, digits: 0 });
  for (const [reason, p] of Object.entries(ours.playout.pauses)) {
    rows.push({ label: `pauses ${reason} (count, total)`, ours: p.count, seconds: p.seconds, digits: 0 });
  }
  rows.push({ label: 'TTS "Flush limit exceeded" warnings', ours: ours.flushLimitWarnings, digits: 0 });
  return rows;
}

/** One row per thread group either server reported: its CPU seconds in the window. */
function threadRows(ours: SideFigures, other: SideFigures | null): Row[] {
  const labels = [...new Set([...Object.keys(ours.serverCpuByThread ?? {}), ...Object.keys(other?.serverCpuByThread ?? {})])];
  const order = (l: string) => (l === 'main' ? '0' : l === 'other' ? '2' : `1${l}`);
  return labels.sort((a, b) => order(a).localeCompare(order(b))).map((l) => ({
    label: `server CPU s in window, thread ${l}`,
    ours: ours.serverCpuByThread?.[l] ?? 0,
    naive: other ? (other.serverCpuByThread?.[l] ?? 0) : undefined,
    digits: 2,
  }));
}

function num(n: number | undefined, digits: number): string {
  if (n === undefined) return '—';
  if (!Number.isFinite(n)) return 'n/a';
  return n.toFixed(digits);
}

function ratioOf(r: Row): number {
  return r.naive !== undefined && r.naive !== 0 ? r.ours / r.naive : NaN;
}

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function alignColumns(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('   ').trimEnd()).join('\n');
}

/** One run: our server, the naive one, and the ratio where it means something. */
export function formatRunTable(title: string, rows: Row[], columns: [string, string] = ['aybiza', 'naive']): string {
  const out = [['', columns[0], columns[1], `${columns[0]}/${columns[1]}`]];
  for (const r of rows) {
    const ours = num(r.ours, r.digits) + (r.seconds !== undefined ? ` (${num(r.seconds, 2)} s)` : '');
    out.push([r.label, ours, num(r.naive, r.digits), r.ratio ? formatRange(rangeOf([ratioOf(r)]), 2, '×') : '']);
  }
  return `${title}\n${alignColumns(out)}\n`;
}

export interface Range {
  min: number;
  max: number;
}

/** Min and max of the finite values (NaN both when there are none). */
export function rangeOf(xs: number[]): Range {
  const f = xs.filter(Number.isFinite);
  return f.length ? { min: Math.min(...f), max: Math.max(...f) } : { min: NaN, max: NaN };
}

export function formatRange(r: Range, digits: number, unit = ''): string {
  if (!Number.isFinite(r.min)) return 'n/a';
  const a = r.min.toFixed(digits);
  const b = r.max.toFixed(digits);
  return a === b ? `${a}${unit}` : `${a}–${b}${unit}`;
}

export interface RowSpread {
  label: string;
  ours: Range;
  seconds?: Range;
  naive?: Range;
  ratio?: Range;
}

/** Each figure's min–max over the runs (rows matched by label: a reason seen in one run only still shows). */
export function spreadOf(runs: Row[][]): RowSpread[] {
  const labels: string[] = [];
  for (const rows of runs) for (const r of rows) if (!labels.includes(r.label)) labels.push(r.label);
  return labels.map((label) => {
    const rows = runs.map((rs) => rs.find((r) => r.label === label)).filter((r): r is Row => r !== undefined);
    const hasNaive = rows.some((r) => r.naive !== undefined);
    const hasRatio = rows.some((r) => r.ratio);
    return {
      label,
      ours: rangeOf(rows.map((r) => r.ours)),
      ...(rows.some((r) => r.seconds !== undefined) ? { seconds: rangeOf(rows.map((r) => r.seconds ?? NaN)) } : {}),
      ...(hasNaive ? { naive: rangeOf(rows.map((r) => r.naive ?? NaN)) } : {}),
      ...(hasRatio ? { ratio: rangeOf(rows.map(ratioOf)) } : {}),
    };
  });
}

export function formatSpreadTable(title: string, runs: Row[][], columns: [string, string] = ['aybiza', 'naive']): string {
  const digits = new Map(runs.flat().map((r) => [r.label, r.digits]));
  const out = [['', columns[0], columns[1], `${columns[0]}/${columns[1]}`]];
  for (const s of spreadOf(runs)) {
    const d = digits.get(s.label) ?? 2;
    const ours = formatRange(s.ours, d) + (s.seconds ? ` (${formatRange(s.seconds, 2)} s)` : '');
    out.push([s.label, ours, s.naive ? formatRange(s.naive, d) : '—', s.ratio ? formatRange(s.ratio, 2, '×') : '']);
  }
  return `${title}\n${alignColumns(out)}\n`;
}
