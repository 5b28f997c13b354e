// VAD: ours (native, trained offline on the train split) against WebRTC VAD
// (@echogarden/fvad-wasm, each of its modes) on the corpus's validation
// split (voices, sentences and noise recipes never used in training),
// measured in the same run: F1 per condition (noise type × SNR, and clean)
// beside fvad's best mode for that condition and the margin, a weighted
// score, and the CPU per 20 ms frame of both over several repetitions.
import { performance } from 'node:perf_hooks';
import { ulawDecodeInto } from '../src/media/g711.js';
import { Vad } from '../src/media/vad.js';
import { buildCorpus, FRAME, NOISES } from './vad/corpus.js';
import { condition, Fvad, fvad, loadFvad, ours, scoreByCondition, scores, weightedScore, type Counts } from './vad/score.js';
import { fmt, printMarkdown } from './table.js';

const pct = (x: number) => `${fmt(100 * x, 1)}`;
const MODES = [0, 1, 2, 3];

export default async function run(): Promise<void> {
  await loadFvad();
  const t0 = performance.now();
  const items = buildCorpus('validation');
  const built = performance.now() - t0;
  const frames = items.reduce((s, it) => s + it.labels.length, 0);
  const mine = scoreByCondition(items, ours);
  const modes = MODES.map((m) => scoreByCondition(items, () => fvad(m)));
  const rows: (string | number)[][] = [];
  const oursF1 = new Map<string, number>();
  const fvadF1 = new Map<string, number>();
  let wins = 0;
  for (const it of items) {
    const cond = condition(it);
    if (oursF1.has(cond)) continue;
    const o = scores(mine.get(cond) as Counts);
    const byMode = modes.map((m) => scores(m.get(cond) as Counts));
    const best = byMode.reduce((b, s, i) => (s.f1 > byMode[b].f1 ? i : b), 0);
    const f = byMode[best];
    oursF1.set(cond, o.f1);
    fvadF1.set(cond, f.f1);
    if (o.f1 >= f.f1) wins++;
    rows.push([
      cond, pct(o.f1), pct(o.precision), pct(o.recall), `${pct(f.f1)} (mode ${best})`, pct(f.precision), pct(f.recall),
      `${o.f1 >= f.f1 ? '+' : ''}${fmt(100 * (o.f1 - f.f1), 1)}`, pct(o.alwaysSpeechF1),
    ]);
  }
  printMarkdown(
    `VAD F1 per condition on the validation split (unseen voices and noise recipes; ${items.length} mixtures of ${NOISES.join('/')} noise, ${fmt(frames)} frames of 20 ms, speech share ${pct(scores(mine.get('clean') as Counts).speechShare)} %; %)`,
    ['condition', 'ours F1', 'ours P', 'ours R', 'fvad best F1', 'fvad P', 'fvad R', 'margin (pp)', 'always-speech F1'],
    rows,
  );
  const oursScore = weightedScore(items, (c) => oursF1.get(c) ?? 0);
  const fvadScore = weightedScore(items, (c) => fvadF1.get(c) ?? 0);
  const fixedModes = MODES.map((_, m) => weightedScore(items, (c) => scores(modes[m].get(c) as Counts).f1));
  printMarkdown(
    'VAD weighted F1 (clean 0.25, 20 dB 0.25, 10 dB 0.25, 5 dB 0.15, 0 dB 0.10; each SNR shared by its noise types; %)',
    ['ours', 'fvad best mode per condition', ...MODES.map((m) => `fvad mode ${m}`), 'conditions ours ≥ fvad best'],
    [[pct(oursScore), pct(fvadScore), ...fixedModes.map(pct), `${wins} of ${oursF1.size}`]],
  );
  process.stdout.write(`(validation corpus built in ${fmt(built / 1000, 1)} s)\n\n`);
  cpu(items.find((it) => it.noise === 'babble' && it.snr === 10)!.ulaw);
}

/**
 * ns per frame of each case over the whole track, the cases interleaved in
 * chunks of 200 frames (4 ms of work) so that load from other processes falls
 * on all of them alike.
 */
function interleaved(count: number, steps: ((k: number) => void)[]): number[] {
  const total = steps.map(() => 0);
  for (let from = 0; from < count; from += 200) {
    const to = Math.min(count, from + 200);
    steps.forEach((step, i) => {
      const t = performance.now();
      for (let k = from; k < to; k++) step(k);
      total[i] += performance.now() - t;
    });
  }
  return total.map((ms) => (ms * 1e6) / count);
}

/**
 * CPU per 20 ms frame, each as a caller would use it, in passes over the same
 * 10 dB babble track, interleaved in small chunks (median and range over the repetitions):
 * ours takes μ-law directly; fvad needs PCM16 (decoded here) copied into its
 * heap. The PCM16 rows compare the classifiers alone.
 */
function cpu(track: Uint8Array): void {
  const count = Math.floor(track.length / FRAME);
  const ulaw = Array.from({ length: count }, (_, k) => track.subarray(k * FRAME, (k + 1) * FRAME));
  const pcm = ulaw.map((f) => {
    const out = new Int16Array(FRAME);
    ulawDecodeInto(f, out);
    return out;
  });
  const scratch = new Int16Array(FRAME);
  const vad = new Vad();
  const vadPcm = new Vad({ encoding: 'pcm16' });
  const webs = MODES.map((m) => new Fvad(m));
  const cases: [string, (k: number) => void][] = [
    ['ours: Vad.process on μ-law', (k) => vad.process(ulaw[k])],
    ...webs.map((w, m): [string, (k: number) => void] => [`fvad mode ${m}: μ-law decode + heap copy + fvad_process`, (k) => {
      ulawDecodeInto(ulaw[k], scratch);
      w.process(scratch);
    }]),
    ['ours: Vad.process on PCM16 (Int16Array)', (k) => vadPcm.process(pcm[k])],
    ...webs.map((w, m): [string, (k: number) => void] => [`fvad mode ${m}: heap copy + fvad_process on PCM16`, (k) => w.process(pcm[k])]),
  ];
  const REPS = 7;
  const times = cases.map(() => [] as number[]);
  const steps = cases.map(([, step]) => step);
  interleaved(count, steps); // warm up
  for (let r = 0; r < REPS; r++) interleaved(count, steps).forEach((ns, i) => times[i].push(ns));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const medians = times.map(median);
  const ulawBase = Math.min(...medians.slice(1, 1 + MODES.length));
  const pcmBase = Math.min(...medians.slice(2 + MODES.length));
  printMarkdown(
    `VAD CPU per 20 ms frame (${REPS} passes over ${fmt(count)} frames, cases interleaved; baseline: the cheapest fvad mode on the same input)`,
    ['case', 'ns/frame median', 'min – max', 'vs cheapest fvad'],
    cases.map(([name], i) => {
      const base = i <= MODES.length ? ulawBase : pcmBase;
      return [name, fmt(medians[i], 0), `${fmt(Math.min(...times[i]), 0)} – ${fmt(Math.max(...times[i]), 0)}`, `${fmt(medians[i] / base, 2)}×`];
    }),
  );
  vad.close();
  vadPcm.close();
  for (const w of webs) w.close();
}
