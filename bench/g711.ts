// G.711 codec: native (allocation-free `…Into` and allocating forms) against
// alawmulaw, the pure-JS codec a Node user would otherwise pick, measured in
// the same run on a 20 ms frame (160 samples) and on 1 s (8000 samples).
import { Bench } from 'tinybench';
import alawmulaw from 'alawmulaw';
import {
  alawDecode, alawDecodeInto, alawEncode, alawEncodeInto, ulawDecode, ulawDecodeInto, ulawEncode, ulawEncodeInto,
} from '../src/media/g711.js';
import { printTable, rowsOf } from './table.js';

type Codec = { encode(s: Int16Array): Uint8Array; decode(s: Uint8Array): Int16Array };
const js = alawmulaw as unknown as { mulaw: Codec; alaw: Codec };

function speechLike(n: number): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(9000 * Math.sin(i / 7) * Math.sin(i / 311) + 800 * Math.sin(i * 1.3));
  return out;
}

export default async function run(): Promise<void> {
  for (const samples of [160, 8000]) {
    const pcm = speechLike(samples);
    const ulaw = ulawEncode(pcm);
    const alaw = alawEncode(pcm);
    const bytesOut = new Uint8Array(samples);
    const pcmOut = new Int16Array(samples);
    const label = samples === 160 ? '160 samples (20 ms)' : '8000 samples (1 s)';
    // Each timed iteration runs the operation REPS times so the timer's own
    // overhead does not swamp a sub-microsecond operation; ns/op is per frame.
    const REPS = samples === 160 ? 100 : 4;
    const bench = new Bench({ time: 500, warmupTime: 100 });
    const add = (name: string, fn: () => unknown) =>
      bench.add(name, () => {
        for (let i = 0; i < REPS; i++) fn();
      });
    add('μ-law decode: alawmulaw', () => js.mulaw.decode(ulaw));
    add('μ-law decode: native', () => ulawDecode(ulaw));
    add('μ-law decode: native Into', () => ulawDecodeInto(ulaw, pcmOut));
    add('μ-law encode: alawmulaw', () => js.mulaw.encode(pcm));
    add('μ-law encode: native', () => ulawEncode(pcm));
    add('μ-law encode: native Into', () => ulawEncodeInto(pcm, bytesOut));
    add('A-law decode: alawmulaw', () => js.alaw.decode(alaw));
    add('A-law decode: native', () => alawDecode(alaw));
    add('A-law decode: native Into', () => alawDecodeInto(alaw, pcmOut));
    add('A-law encode: alawmulaw', () => js.alaw.encode(pcm));
    add('A-law encode: native', () => alawEncode(pcm));
    add('A-law encode: native Into', () => alawEncodeInto(pcm, bytesOut));
    await bench.run();
    const rows = rowsOf(bench).map((r) => ({ ...r, nsPerOp: r.nsPerOp / REPS, opsPerSec: r.opsPerSec * REPS }));
    printTable(`G.711, ${label}, ns per call (baseline: alawmulaw, pure JS)`, rows, (name) =>
      name.endsWith('alawmulaw') ? undefined : `${name.split(':')[0]}: alawmulaw`,
    );
  }
}
