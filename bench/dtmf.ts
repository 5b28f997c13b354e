// DTMF detector: detection rate over key presses at three levels and three
// twists (and ±1.5 % frequency error), false digits on speech, music-like
// chords and noise, and the cost of one 20 ms frame. No npm DTMF detector is
// in our dependency tree to race against; the μ-law decode of the same frame
// is printed beside it as the scale (the floor of any per-frame native call).
import { Bench } from 'tinybench';
import { DtmfDetector } from '../src/media/dtmf.js';
import { ulawDecodeInto, ulawEncode } from '../src/media/g711.js';
import { DIGITS, dtmfSequence, frames, haveSpeechTools, musicLike, speech, whiteNoise } from './signals.js';
import { fmt, printMarkdown, rowsOf } from './table.js';

const SEEDS = 10;

function detect(pcm: Int16Array): string {
  const d = new DtmfDetector();
  let out = '';
  for (const f of frames(ulawEncode(pcm).slice(), 160)) out += d.process(f).join('');
  d.close();
  return out;
}

// Digits of `sent` found in order in `got` (longest common subsequence);
// everything else in `got` is a false digit.
function score(sent: string, got: string): { hit: number; extra: number } {
  let prev = new Array<number>(got.length + 1).fill(0);
  for (let i = 1; i <= sent.length; i++) {
    const row = [0];
    for (let j = 1; j <= got.length; j++) {
      row[j] = sent[i - 1] === got[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    }
    prev = row;
  }
  const hit = prev[got.length];
  return { hit, extra: got.length - hit };
}

function detectionTable(): void {
  const rows: (string | number)[][] = [];
  for (const [label, level] of [['-3 dBm0 (0.5 FS)', 0.5], ['-13 dBm0 (0.15 FS)', 0.15], ['-23 dBm0 (0.05 FS)', 0.05]] as const) {
    for (const twistDb of [0, 4, -6]) {
      for (const freqScale of [1, 1.015, 0.985]) {
        let hit = 0;
        let extra = 0;
        for (let seed = 1; seed <= SEEDS; seed++) {
          const s = score(DIGITS, detect(dtmfSequence(DIGITS, { level, twistDb, freqScale, seed })));
          hit += s.hit;
          extra += s.extra;
        }
        const off = freqScale === 1 ? '0' : `${freqScale > 1 ? '+' : '-'}1.5 %`;
        const sent = SEEDS * DIGITS.length;
        rows.push([label, `${twistDb > 0 ? '+' : ''}${twistDb} dB`, off, `${hit}/${sent}`, `${fmt((100 * hit) / sent, 1)} %`, String(extra)]);
      }
    }
  }
  for (const [label, spec] of [
    ['20 ms tones (must reject)', { level: 0.15, toneMs: 20 }],
    ['±5 % frequency (must reject)', { level: 0.15, freqScale: 1.05 }],
  ] as const) {
    let got = 0;
    for (let seed = 1; seed <= SEEDS; seed++) got += detect(dtmfSequence(DIGITS, { ...spec, seed })).length;
    rows.push([label, '0 dB', '', `${got}/${SEEDS * DIGITS.length}`, '', '']);
  }
  printMarkdown('DTMF detection, 50 ms tones / 50 ms gaps, μ-law, 160-byte frames (detected / sent)', ['level', 'twist (high − low)', 'freq. error', 'detected', 'rate', 'false'], rows);
}

function falseDigitTable(): Int16Array {
  const rows: (string | number)[][] = [];
  const add = (name: string, pcm: Int16Array) => rows.push([name, fmt(pcm.length / 8000, 0), String(detect(pcm).length)]);
  let talk: Int16Array = new Int16Array(0);
  if (haveSpeechTools()) {
    talk = speech();
    add('speech: espeak-ng en/en-us/de/fr, 9 voices, 120-200 wpm', talk);
    add('same speech +12 dB, clipped', talk.map((v) => Math.max(-32768, Math.min(32767, v * 4))));
  } else {
    rows.push(['speech (espeak-ng/sox not installed)', 'n/a', 'n/a']);
  }
  add('music-like chords with vibrato', musicLike(120, 1));
  add('white noise, peak 0.5 FS', whiteNoise(60, 0.5, 1));
  printMarkdown('DTMF false digits (must be 0)', ['material', 'seconds', 'false digits'], rows);
  return talk.length >= 8000 ? talk : musicLike(10, 2);
}

export default async function run(): Promise<void> {
  detectionTable();
  const material = falseDigitTable();
  const ulaw = ulawEncode(material.subarray(0, 8000 * 10)).slice();
  const pcm = material.subarray(0, 8000 * 10);
  const tones = ulawEncode(dtmfSequence(DIGITS, { level: 0.15 })).slice();
  const out = new Int16Array(160);
  const d = new DtmfDetector();
  const dp = new DtmfDetector();
  const dt = new DtmfDetector();
  // REPS frames per timed iteration so timer overhead does not swamp ~1 µs;
  // each walks on through the material so the detector sees real audio.
  const REPS = 100;
  // A cursor per input that wraps around, so every call gets 160 fresh samples.
  const cursor = <T extends Uint8Array | Int16Array>(buf: T) => {
    let at = 0;
    return (): T => {
      if (at + 160 > buf.length) at = 0;
      return buf.subarray(at, (at += 160)) as T;
    };
  };
  const speechU = cursor(ulaw);
  const speechU2 = cursor(ulaw);
  const speechP = cursor(pcm);
  const toneU = cursor(tones);
  const bench = new Bench({ time: 1000, warmupTime: 200 });
  bench.add('DtmfDetector.process, μ-law speech', () => {
    for (let i = 0; i < REPS; i++) d.process(speechU());
  });
  bench.add('DtmfDetector.process, μ-law key presses', () => {
    for (let i = 0; i < REPS; i++) dt.process(toneU());
  });
  bench.add('DtmfDetector.process, Int16Array speech', () => {
    for (let i = 0; i < REPS; i++) dp.process(speechP());
  });
  bench.add('scale: ulawDecodeInto (native, same frame)', () => {
    for (let i = 0; i < REPS; i++) ulawDecodeInto(speechU2(), out);
  });
  await bench.run();
  for (const x of [d, dp, dt]) x.close();
  printMarkdown(
    'DTMF detector cost per 160-sample (20 ms) frame',
    ['case', 'ns/frame', 'frames/s', 'share of one core in real time'],
    rowsOf(bench).map((r) => {
      const ns = r.nsPerOp / REPS;
      return [r.name, fmt(ns, 0), fmt(1e9 / ns, 0), `${fmt((ns / 20e6) * 100, 4)} %`];
    }),
  );
}
