// `npm run load`'s report (issue 14, need 4 and the caller side of need 1):
// the server's playout counters read from /metrics (0 where a metric is not
// there), the side-by-side table against the naive baseline, and the
// min–max of every figure over several runs.
import { describe, expect, it } from 'vitest';
import {
  comparisonRows, formatRange, formatRunTable, formatSpreadTable, gcTime, median, PAUSE_REASONS, playoutCounters, rangeOf, spreadOf, STALLS, sumByLabel,
  type OurFigures, type SideFigures,
} from '../../src/commands/load-report.js';

const before = [
  '# TYPE aybiza_playout_late_frames_total counter',
  'aybiza_playout_late_frames_total{stall="le_25ms"} 3',
  'aybiza_playout_pauses_total{reason="tts_audio"} 2',
  'aybiza_playout_pause_seconds_sum{reason="tts_audio"} 0.5',
].join('\n');
const after = [
  'aybiza_playout_late_frames_total{stall="le_25ms"} 10',
  'aybiza_playout_late_frames_total{stall="gt_50ms"} 1',
  'aybiza_playout_pauses_total{reason="tts_audio",transport="twilio"} 5',
  'aybiza_playout_pauses_total{transport="sip",reason="tts_audio"} 1',
  'aybiza_playout_pauses_total{reason="flush_window"} 4',
  'aybiza_playout_pause_seconds_bucket{reason="tts_audio",le="0.1"} 3',
  'aybiza_playout_pause_seconds_sum{reason="tts_audio"} 2.5',
  'aybiza_playout_pause_seconds_sum{reason="flush_window"} 1.25',
  'aybiza_playout_pause_seconds_count{reason="flush_window"} 4',
].join('\n');

function side(cpu: number, p99: number): SideFigures {
  return {
    connected: 200, endedInWindow: 0, cpuSecondsPerCallSecond: cpu, callsPerCore: Math.floor(1 / cpu),
    inSegmentGapMs: { count: 1000, p50: 20, p99, max: 40 }, inSegmentLateFrames: 0, droppedFrames: 0,
    callerEventLoopDelayMs: { p99: 2, max: 9 }, voiceToVoiceMs: { count: 40, p50: 900 },
  };
}

describe('load report', () => {
  it('has one row per server thread group, main first and other last, 0 where a server has no such thread', () => {
    const ours = { ...side(0.003, 24), serverCpuByThread: { other: 3, main: 30, 'aybiza-db': 0.5 }, playout: playoutCounters('', ''), flushLimitWarnings: 0, e2eMedianMs: 900 };
    const rows = comparisonRows(ours, { ...side(0.002, 23), serverCpuByThread: { main: 20, other: 1 } }).filter((r) => r.label.startsWith('server CPU s'));
    expect(rows.map((r) => [r.label, r.ours, r.naive])).toEqual([
      ['server CPU s in window, thread main', 30, 20],
      ['server CPU s in window, thread aybiza-db', 0.5, 0],
      ['server CPU s in window, thread other', 3, 1],
    ]);
  });

  it('median: the middle value, the mean of the middle two for an even count, NaN when empty', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('sums a metric by one label over the others, ignoring other series of the same prefix', () => {
    expect(sumByLabel(after, 'aybiza_playout_pauses_total', 'reason')).toEqual({ tts_audio: 6, flush_window: 4 });
    expect(sumByLabel(after, 'aybiza_playout_pause_seconds_sum', 'reason')).toEqual({ tts_audio: 2.5, flush_window: 1.25 });
    expect(sumByLabel('', 'aybiza_playout_pauses_total', 'reason')).toEqual({});
  });

  it('reads late frames by stall and pauses by reason between two scrapes, 0 for a metric not (yet) exported', () => {
    const c = playoutCounters(before, after);
    expect(c.lateFrames).toEqual({ le_25ms: 7, le_50ms: 0, gt_50ms: 1 });
    expect(c.pauses.tts_audio).toEqual({ count: 4, seconds: 2 });
    expect(c.pauses.flush_window).toEqual({ count: 4, seconds: 1.25 });
    const none = playoutCounters('', '');
    expect(Object.keys(none.lateFrames)).toEqual([...STALLS]);
    expect(Object.keys(none.pauses)).toEqual([...PAUSE_REASONS]);
    expect(Object.values(none.pauses).every((p) => p.count === 0 && p.seconds === 0)).toBe(true);
  });

  it('prints ours beside the naive baseline with the CPU ratio, and ours-only rows without a naive figure', () => {
    const ours: OurFigures = { ...side(0.001, 24), gc: { minor: { count: 3, seconds: 0.012 } }, playout: playoutCounters(before, after), flushLimitWarnings: 0, e2eMedianMs: 850.25 };
    const rows = comparisonRows(ours, side(0.0015, 25.5));
    const text = formatRunTable('run 1', rows);
    const line = (label: string) => text.split('\n').find((l) => l.startsWith(label))!.split(/\s{3,}/);
    expect(line('CPU ms per call-second')).toEqual(['CPU ms per call-second', '1.000', '1.500', '0.67×']);
    expect(line('calls per core')).toEqual(['calls per core', '1000', '666', '1.50×']);
    expect(line('in-segment gap p99 (ms)')).toEqual(['in-segment gap p99 (ms)', '24.00', '25.50']);
    expect(line('pauses flush_window')).toEqual(['pauses flush_window (count, total)', '4 (1.25 s)', '—']);
    expect(line('pauses llm_tokens')).toEqual(['pauses llm_tokens (count, total)', '0 (0.00 s)', '—']);
    expect(line('server late frames, stall gt_50ms')).toEqual(['server late frames, stall gt_50ms', '1', '—']);
    // Issue 16's figures: the stored turns' median e2e (ours only) and the callers' median voice-to-voice (both).
    expect(line('e2e median')).toEqual(['e2e median (ms, stored turns)', '850.3', '—']);
    expect(line('voice-to-voice median')).toEqual(['voice-to-voice median (ms, callers)', '900.0', '900.0']);
    // GC time is ours only beside the naive server, on both sides (with a ratio) beside an unrecorded copy of ours.
    expect(line('server GC minor')).toEqual(['server GC minor (ms in window)', '12', '—']);
    const plain: OurFigures = { ...ours, gc: { minor: { count: 2, seconds: 0.008 }, major: { count: 1, seconds: 0.005 } } };
    const pair = formatRunTable('pair', comparisonRows(ours, plain), ['recording', 'unrecorded']);
    expect(pair.split('\n').find((l) => l.startsWith('server GC minor'))!.split(/\s{3,}/)).toEqual(['server GC minor (ms in window)', '12', '8', '1.50×']);
    expect(pair.split('\n').find((l) => l.startsWith('server GC major'))!.split(/\s{3,}/)).toEqual(['server GC major (ms in window)', '0', '5', '0.00×']);
    // Without a baseline the naive column is empty and no ratio is printed.
    expect(formatRunTable('no baseline', comparisonRows(ours, null))).not.toContain('×');
  });

  it('takes the GC time by kind between two scrapes', () => {
    const scrape = (minor: number, s: number) =>
      `nodejs_gc_duration_seconds_sum{kind="minor"} ${s}\nnodejs_gc_duration_seconds_count{kind="minor"} ${minor}\nnodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} ${minor}\n`;
    expect(gcTime(scrape(10, 0.5), scrape(25, 0.75))).toEqual({ minor: { count: 15, seconds: 0.25 } });
    expect(gcTime('', '')).toEqual({});
  });

  it('gives each figure its min–max over the runs, a single value when they agree', () => {
    const run = (cpu: number, p99: number) =>
      comparisonRows({ ...side(cpu, p99), playout: playoutCounters('', ''), flushLimitWarnings: 0, e2eMedianMs: 850 }, side(0.0015, 25));
    const runs = [run(0.001, 24), run(0.0012, 28), run(0.0011, 26)];
    runs[1].find((r) => r.label.startsWith('pauses tts_audio'))!.seconds = 1.5;
    const cpu = spreadOf(runs).find((s) => s.label === 'CPU ms per call-second')!;
    expect(cpu.ours.min).toBeCloseTo(1);
    expect(cpu.ours.max).toBeCloseTo(1.2);
    expect(cpu.ratio!.min).toBeCloseTo(1 / 1.5);
    expect(cpu.ratio!.max).toBeCloseTo(1.2 / 1.5);
    const text = formatSpreadTable('spread', runs);
    expect(text).toMatch(/in-segment gap p99 \(ms\)\s+24\.00–28\.00\s+25\.00\n/);
    expect(text).toMatch(/CPU ms per call-second\s+1\.000–1\.200\s+1\.500\s+0\.67–0\.80×/);
    expect(text).toMatch(/pauses tts_audio \(count, total\)\s+0 \(0\.00–1\.50 s\)\s+—\n/);
    expect(formatRange(rangeOf([NaN]), 2)).toBe('n/a');
  });

  it('labels the columns of a same-run A/B (recording against unrecorded) and their ratio', () => {
    const ours: OurFigures = { ...side(0.00107, 24), playout: playoutCounters('', ''), flushLimitWarnings: 0, e2eMedianMs: 850 };
    const plain: OurFigures = { ...side(0.001, 24), playout: playoutCounters('', ''), flushLimitWarnings: 0, e2eMedianMs: 850 };
    const rows = comparisonRows(ours, plain);
    const text = formatRunTable('ab', rows, ['recording', 'unrecorded']);
    expect(text.split('\n')[1]).toMatch(/^\s+recording\s+unrecorded\s+recording\/unrecorded$/);
    expect(text).toMatch(/CPU ms per call-second\s+1\.070\s+1\.000\s+1\.07×/);
    expect(formatSpreadTable('ab', [rows, rows], ['recording', 'unrecorded']).split('\n')[1]).toContain('recording/unrecorded');
  });
});
