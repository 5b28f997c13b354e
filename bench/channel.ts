// The fused per-frame path (MediaChannel: decode + VAD + DTMF in one native
// call) against the same work as separate calls (ulawDecodeInto, Vad.process,
// DtmfDetector.process), per 20 ms μ-law frame of speech.
import { Bench } from 'tinybench';
import { DtmfDetector } from '../src/media/dtmf.js';
import { ulawDecodeInto, ulawEncode } from '../src/media/g711.js';
import { MediaChannel } from '../src/media/media-channel.js';
import { Vad } from '../src/media/vad.js';
import { speech } from './signals.js';
import { printTable, rowsOf } from './table.js';

export default async function run(): Promise<void> {
  const audio = ulawEncode(speech().subarray(0, 8000 * 20)).slice();
  const count = Math.floor(audio.length / 160);
  const frames = Array.from({ length: count }, (_, i) => audio.subarray(i * 160, (i + 1) * 160));
  const pcm = new Int16Array(160);
  const vad = new Vad({ encoding: 'pcm16' });
  const dtmf = new DtmfDetector();
  const fused = new MediaChannel({ dtmf: true });
  const fusedVadOnly = new MediaChannel();
  let i = 0;
  const REPS = 50;
  const bench = new Bench({ time: 700, warmupTime: 150 });
  const add = (name: string, fn: (f: Uint8Array) => void) =>
    bench.add(name, () => {
      for (let r = 0; r < REPS; r++) fn(frames[i++ % count]);
    });
  add('separate: decode + VAD (2 calls)', (f) => {
    ulawDecodeInto(f, pcm);
    vad.process(pcm);
  });
  add('fused: MediaChannel, VAD only (1 call)', (f) => fusedVadOnly.process(f));
  add('separate: decode + VAD + DTMF (3 calls)', (f) => {
    ulawDecodeInto(f, pcm);
    vad.process(pcm);
    dtmf.process(pcm);
  });
  add('fused: MediaChannel, VAD + DTMF (1 call)', (f) => fused.process(f));
  await bench.run();
  const rows = rowsOf(bench).map((r) => ({ ...r, nsPerOp: r.nsPerOp / REPS, opsPerSec: r.opsPerSec * REPS }));
  printTable('Inbound per-frame path, ns per 20 ms frame (baseline: the same work as separate calls)', rows, (name) =>
    name === rows[1].name ? rows[0].name : name === rows[3].name ? rows[2].name : undefined,
  );
  for (const o of [vad, dtmf, fused, fusedVadOnly]) o.close();
}
