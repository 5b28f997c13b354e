// VAD: ours (native, trained offline on the train split) against WebRTC VAD
// (@echogarden/fvad-wasm, each of its modes) on the corpus's test split,
// measured in the same run: F1, precision, recall per SNR, the best fvad mode
// per SNR, and the CPU per 20 ms frame.
import { Bench } from 'tinybench';
import { ulawDecodeInto } from '../src/media/g711.js';
import { Vad } from '../src/media/vad.js';
import { buildCorpus, FRAME, NOISES } from './vad/corpus.js';
import { Fvad, fvad, loadFvad, ours, scoreBySnr, scores, type Counts } from './vad/score.js';
import { fmt, printMarkdown, printTable, rowsOf } from './table.js';

const pct = (x: number) => `${fmt(100 * x, 1)}`;

export default async function run(): Promise<void> {
  await loadFvad();
  const items = buildCorpus('test');
  const frames = items.reduce((s, it) => s + it.labels.length, 0);
  const oursBySnr = scoreBySnr(items, ours);
  const modes = [0, 1, 2, 3].map((m) => scoreBySnr(items, () => fvad(m)));
  const rows: (string | number)[][] = [];
  const snrs = [...oursBySnr.keys()];
  for (const snr of snrs) {
    const o = scores(oursBySnr.get(snr) as Counts);
    const byMode = modes.map((m) => scores(m.get(snr) as Counts));
    const best = byMode.reduce((b, s, i) => (s.f1 > byMode[b].f1 ? i : b), 0);
    const f = byMode[best];
    rows.push([
      Number.isFinite(snr) ? `${snr} dB` : 'clean', pct(o.f1), pct(o.precision), pct(o.recall),
      `${pct(f.f1)} (mode ${best})`, pct(f.precision), pct(f.recall), pct(o.alwaysSpeechF1), pct(o.speechShare),
      o.f1 >= f.f1 ? 'yes' : '**no**',
    ]);
  }
  printMarkdown(
    `VAD F1 per SNR on the test split (${items.length} mixtures of ${NOISES.join('/')} noise, ${fmt(frames)} frames of 20 ms; %)`,
    ['SNR', 'ours F1', 'ours P', 'ours R', 'fvad best F1', 'fvad P', 'fvad R', 'always-speech F1', 'speech share', 'ours ≥ fvad'],
    rows,
  );
  // Per noise type at 5 dB and 0 dB, where the differences are.
  const detail: (string | number)[][] = [];
  for (const noise of NOISES) {
    for (const snr of [5, 0]) {
      const subset = items.filter((it) => it.noise === noise && it.snr === snr);
      const o = scores(scoreBySnr(subset, ours).get(snr) as Counts);
      const fs = [0, 1, 2, 3].map((m) => scores(scoreBySnr(subset, () => fvad(m)).get(snr) as Counts).f1);
      detail.push([noise, `${snr} dB`, pct(o.f1), pct(Math.max(...fs)), fs.map(pct).join(' / ')]);
    }
  }
  printMarkdown('VAD F1 per noise type at low SNR (%)', ['noise', 'SNR', 'ours', 'fvad best', 'fvad modes 0/1/2/3'], detail);

  // CPU per 20 ms frame, each as a caller would use it: ours takes μ-law
  // directly; fvad needs PCM16 (decoded natively here) copied into its heap.
  const speech = items.find((it) => it.noise === 'babble' && it.snr === 10)!.ulaw;
  const count = Math.floor(speech.length / FRAME);
  const pcm = new Int16Array(FRAME);
  const vad = new Vad();
  const vadPcm = new Vad({ encoding: 'pcm16' });
  const pcmFrames = Array.from({ length: count }, (_, k) => {
    const out = new Int16Array(FRAME);
    ulawDecodeInto(speech.subarray(k * FRAME, (k + 1) * FRAME), out);
    return out;
  });
  const web = new Fvad(3);
  let i = 0;
  const REPS = 50;
  const bench = new Bench({ time: 700, warmupTime: 150 });
  bench.add('fvad-wasm (μ-law decode + heap copy + fvad_process)', () => {
    for (let r = 0; r < REPS; r++) {
      const f = speech.subarray((i % count) * FRAME, (i++ % count) * FRAME + FRAME);
      ulawDecodeInto(f, pcm);
      web.process(pcm);
    }
  });
  bench.add('ours (native Vad.process on μ-law)', () => {
    for (let r = 0; r < REPS; r++) vad.process(speech.subarray((i % count) * FRAME, (i++ % count) * FRAME + FRAME));
  });
  bench.add('fvad-wasm on PCM16 (heap copy + fvad_process)', () => {
    for (let r = 0; r < REPS; r++) web.process(pcmFrames[i++ % count]);
  });
  bench.add('ours on PCM16 (native Vad.process on an Int16Array)', () => {
    for (let r = 0; r < REPS; r++) vadPcm.process(pcmFrames[i++ % count]);
  });
  await bench.run();
  const cpu = rowsOf(bench).map((r) => ({ ...r, nsPerOp: r.nsPerOp / REPS, opsPerSec: r.opsPerSec * REPS }));
  printTable('VAD CPU per 20 ms frame (baseline: fvad-wasm on the same input)', cpu, (name) =>
    name === cpu[1].name ? cpu[0].name : name === cpu[3].name ? cpu[2].name : undefined,
  );
  vad.close();
  vadPcm.close();
  web.close();
}
