// Same-run A/B of the jitter buffer's per-frame cost between two builds of the
// media addon: this checkout's and another one (e.g. a worktree of the previous
// commit after `npx node-gyp rebuild` there), both loaded in this process and
// driven by the same trace, in alternating tinybench rounds.
//   node dist/bench/jitter-ab.js /path/to/other/build/Release/aybiza_media.node [trace ...]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { makeTrace, specOf } from './netsim.js';
import { payloadFor } from './jitter-replay.js';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface NativeJitterBuffer {
  push(seq: number, timestamp: number, payload: Uint8Array, arrivalMs: number): number;
  pop(nowMs: number, dst: Uint8Array): number;
}
type Addon = { JitterBuffer: new (opts: object) => NativeJitterBuffer };

const REPS = 100;
const ROUNDS = 3;

async function main(): Promise<void> {
  const [other, ...names] = process.argv.slice(2);
  if (!other) throw new Error('usage: jitter-ab.js <other aybiza_media.node> [trace ...]');
  const builds: Record<string, Addon> = {
    other: require(path.resolve(other)) as Addon,
    this: require(path.join(ROOT, 'build/Release/aybiza_media.node')) as Addon,
  };
  for (const name of names.length ? names : ['gaussian', 'pareto']) {
    specOf(name); // throws on an unknown trace
    const trace = makeTrace(name as Parameters<typeof makeTrace>[0], 2);
    const payloads = trace.map(payloadFor);
    const dst = new Uint8Array(160);
    const bench = new Bench({ time: 1000, warmupTime: 200 });
    for (const [label, addon] of Object.entries(builds)) {
      const jb = new addon.JitterBuffer({});
      let k = 0;
      let now = 0;
      bench.add(label, () => {
        for (let r = 0; r < REPS; r++) {
          const p = trace[k % trace.length];
          // Keep seq/timestamp running past the trace so the stream never restarts.
          const lap = Math.floor(k / trace.length) * trace.length;
          jb.push((p.seq + lap) & 0xffff, (p.timestamp + lap * 160) >>> 0, payloads[k % trace.length], now);
          jb.pop(now, dst);
          k++;
          now += 20;
        }
      });
    }
    for (let round = 1; round <= ROUNDS; round++) {
      await bench.run();
      const [a, b] = bench.tasks.map((t) => (t.result?.latency?.mean ?? NaN) * 1e6 / REPS);
      process.stdout.write(`${name}, round ${round}: other ${a.toFixed(0)} ns, this ${b.toFixed(0)} ns per push+pop, this/other ${(b / a).toFixed(3)}\n`);
    }
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
