// Answering-machine detection on the generated corpus (bench/amd/corpus.ts):
// accuracy per class and overall, and the time to a verdict (audio time
// from the answer), for our detector (VAD + beep in the media channel, the
// greeting classifier of src/call/amd.ts), the same with the transcript
// tie-breaker fed by an oracle (the spoken text revealed at speaking pace,
// 300 ms late, as a streaming STT would), and in the same run the baseline
// a SIP user would otherwise have: Asterisk's app_amd (energy threshold 256
// on the mean magnitude, its default timings). Then the beep detector alone:
// beeps found, their onset and end errors, and false beeps.
import { ulawDecodeInto } from '../src/media/g711.js';
import { FRAME_BEEP_END, FRAME_BEEP_START, FRAME_SPEECH, MediaChannel } from '../src/media/media-channel.js';
import { GreetingClassifier, type AmdDecision, type AmdSettings } from '../src/call/amd.js';
import { buildAmdCorpus, type AmdItem } from './amd/corpus.js';
import { fmt, printMarkdown } from './table.js';

const FRAME = 160;

interface Outcome {
  item: AmdItem;
  decision: AmdDecision | null;
}

type Detector = { name: string; run(item: AmdItem): AmdDecision | null };

/** Our detector on one item: the media channel's code per frame into the classifier; `oracle` feeds the spoken text as transcripts. */
function ours(settings: Partial<AmdSettings>, oracle: boolean): (item: AmdItem) => AmdDecision | null {
  return (item) => {
    const ch = new MediaChannel();
    ch.detectBeep(true);
    const clf = new GreetingClassifier({ ...settings, transcript: oracle });
    const words = item.text.split(/\s+/);
    let shown = 0;
    try {
      for (let i = 0; i + FRAME <= item.ulaw.length; i += FRAME) {
        const d = clf.frame(ch.process(item.ulaw.subarray(i, i + FRAME)));
        if (d) return d;
        if (oracle) {
          // The words spoken 300 ms ago, revealed in order as the speech goes on.
          const t = (i / 8) - 300;
          const n = Math.min(words.length, Math.floor((t / Math.max(1, item.speechEndMs)) * words.length));
          if (n > shown) {
            shown = n;
            const o = clf.transcript(words.slice(0, n).join(' '));
            if (o) return o;
          }
        }
      }
      return clf.decision;
    } finally {
      ch.close();
    }
  };
}

/** app_amd's silence test: mean magnitude of the frame under 256 (its default silenceThreshold). */
function appAmd(item: AmdItem): AmdDecision | null {
  const clf = new GreetingClassifier({ totalAnalysisMs: 5000, transcript: false });
  const pcm = new Int16Array(FRAME);
  for (let i = 0; i + FRAME <= item.ulaw.length; i += FRAME) {
    ulawDecodeInto(item.ulaw.subarray(i, i + FRAME), pcm);
    let mag = 0;
    for (const v of pcm) mag += Math.abs(v);
    const d = clf.frame(mag / FRAME >= 256 ? FRAME_SPEECH + 0.99 : 0);
    if (d) {
      // app_amd says MACHINE on a long initial silence.
      return d.cause === 'initial_silence' ? { ...d, result: 'machine' } : d;
    }
  }
  return clf.decision;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const pct = (n: number, d: number) => (d ? fmt((100 * n) / d, 1) : 'n/a');

function rowsFor(name: string, outcomes: Outcome[]): (string | number)[][] {
  const rows: (string | number)[][] = [];
  for (const cls of ['human', 'machine', 'all'] as const) {
    const set = outcomes.filter((o) => cls === 'all' || o.item.truth === cls);
    const right = set.filter((o) => o.decision?.result === o.item.truth).length;
    const unknown = set.filter((o) => !o.decision || o.decision.result === 'unknown').length;
    const times = set.map((o) => o.decision?.atMs ?? Infinity).filter(Number.isFinite);
    rows.push([name, cls, set.length, pct(right, set.length), pct(unknown, set.length), pct(set.length - right - unknown, set.length), fmt(quantile(times, 0.5)), fmt(quantile(times, 0.9))]);
  }
  return rows;
}

function beepRows(items: AmdItem[]): (string | number)[][] {
  let present = 0, found = 0, falseOnHuman = 0, falseInGreeting = 0;
  const onsetErr: number[] = [], endErr: number[] = [], hzErr: number[] = [];
  for (const item of items) {
    const ch = new MediaChannel();
    ch.detectBeep(true);
    let hit = false;
    for (let i = 0; i + FRAME <= item.ulaw.length; i += FRAME) {
      const code = ch.process(item.ulaw.subarray(i, i + FRAME));
      const ms = i / 8 + 20;
      if (code & FRAME_BEEP_START) {
        const b = ch.lastBeep()!;
        const real = item.beep && Math.abs(b.startMs - item.beep.startMs) < 150;
        if (!real && item.truth === 'human') falseOnHuman++;
        else if (!real) falseInGreeting++;
        else if (!hit) {
          hit = true;
          onsetErr.push(ms - (item.beep!.startMs + 250));
          hzErr.push(Math.abs(b.hz - item.beep!.hz));
        }
      }
      if (code & FRAME_BEEP_END && hit && item.beep && endErr.length < found + 1) endErr.push(ms - (item.beep.startMs + item.beep.durationMs));
    }
    if (item.beep) present++;
    if (hit) found++;
    ch.close();
  }
  return [[`${found} of ${present}`, fmt(quantile(onsetErr, 0.5)), fmt(quantile(endErr, 0.5)), fmt(quantile(endErr, 0.9)), fmt(quantile(hzErr, 0.9), 1), falseOnHuman, falseInGreeting]];
}

/** ns per 20 ms frame of MediaChannel.process with the beep detector off and on, interleaved over `reps` passes. */
function cpu(items: AmdItem[], reps = 5): (string | number)[][] {
  const audio = items.slice(0, 40).map((i) => i.ulaw);
  const frames = audio.reduce((n, a) => n + Math.floor(a.length / FRAME), 0);
  const times: Record<'off' | 'on', number[]> = { off: [], on: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of ['off', 'on'] as const) {
      const ch = new MediaChannel();
      if (mode === 'on') ch.detectBeep(true);
      let sink = 0;
      const t0 = performance.now();
      for (const a of audio) for (let i = 0; i + FRAME <= a.length; i += FRAME) sink += ch.process(a.subarray(i, i + FRAME));
      times[mode].push(((performance.now() - t0) * 1e6) / frames + (sink === -1 ? 1 : 0));
      ch.close();
    }
  }
  const med = (xs: number[]) => quantile(xs, 0.5);
  const spread = (xs: number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
  return [[fmt(med(times.off)), spread(times.off), fmt(med(times.on)), spread(times.on), fmt(med(times.on) - med(times.off))]];
}

export default async function run(): Promise<void> {
  const t0 = performance.now();
  const items = buildAmdCorpus(150);
  const built = performance.now() - t0;
  const detectors: Detector[] = [
    { name: 'ours (audio only)', run: ours({}, false) },
    { name: 'ours + transcript (oracle STT)', run: ours({}, true) },
    { name: "app_amd (energy, Asterisk's defaults)", run: appAmd },
  ];
  const rows: (string | number)[][] = [];
  for (const d of detectors) rows.push(...rowsFor(d.name, items.map((item) => ({ item, decision: d.run(item) }))));
  const humans = items.filter((i) => i.truth === 'human').length;
  printMarkdown(
    `AMD on the generated corpus (${humans} people, ${items.length - humans} machines, ${items.filter((i) => i.beep).length} with a beep; ${items.filter((i) => i.noise !== 'none').length} with noise at 25/15/10 dB SNR); decision time is audio time from the answer, ms`,
    ['detector', 'class', 'n', 'correct %', 'unknown %', 'wrong %', 'median decision', 'p90 decision'],
    rows,
  );
  printMarkdown(
    'Beep detector (media channel) on the same corpus: onset error counts from the 250 ms a beep needs to qualify; end error from its true end; ms',
    ['beeps found', 'onset error median', 'end error median', 'end error p90', 'Hz error p90', 'false beeps (people)', 'false beeps (greetings)'],
    beepRows(items),
  );
  printMarkdown(
    `MediaChannel.process per 20 ms frame (decode + VAD, plus the beep detector), ns; median and range of 5 interleaved passes over ${fmt(40)} items`,
    ['beep off', 'range', 'beep on', 'range', 'beep cost'],
    cpu(items),
  );
  const wrong = items.filter((it) => ours({}, false)(it)?.result !== it.truth);
  for (const it of wrong.slice(0, 12)) {
    const d = ours({}, false)(it);
    process.stdout.write(`  miss ${it.id} (${it.voice}, ${it.noise}${Number.isFinite(it.snr) ? ` ${it.snr} dB` : ''}): ${d?.result ?? 'none'}/${d?.cause ?? '-'} at ${d?.atMs ?? '-'} ms — "${it.text.slice(0, 70)}"\n`);
  }
  process.stdout.write(`(corpus built in ${fmt(built / 1000, 1)} s)\n\n`);
}
