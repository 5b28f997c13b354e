// V8 heap settings the server is started with (`npm start`, the Dockerfile,
// `npm run load`). They are start-up flags: V8 sizes its heap when the
// process starts, so they cannot be applied from inside it.
//
// Why: every pause of the main thread delays that moment's 20 ms frames.
// With V8's defaults a 200-call server ran a full mark-compact every 2-3 s
// (old space grows from ~35 MB by a few MB a second of promoted provider
// and per-turn objects) whose final pause was 5-18 ms, and scavenges of a
// 16 MB young generation took 4-7 ms. Measured with
// `npm run load -- --calls 200 --seconds 45` on the 2-core machine (README):
// outbound gap p99 26.2-26.8 ms with the defaults, 24.1-24.8 ms with these.
// - initial old space 256 MB: V8 starts with a high old-generation limit and
//   keeps it higher after each full GC; measured at 200 calls, a mark-compact
//   every 12-15 s instead of every 2-3 s (and none at all once the STT replay
//   stopped promoting buffers: see src/providers/deepgram/stt.ts). The live
//   heap stays ~35 MB.
// - a fixed 4 MB semi-space: more frequent, shorter scavenges (~2 ms, about
//   four a second at 200 calls).
// - no parallel scavenge: V8 hands each scavenge to helper threads as well
//   as the main thread. On two cores shared with the callers and the
//   emulators the helpers mostly waited to be scheduled (at 200 calls four
//   helper threads each ran ~250 ms and waited ~280 ms on the run queue in
//   20 s), and a scavenge waits for its helpers to finish. Five alternating
//   pairs of `npm run load -- --calls 200 --seconds 60 --baseline off`:
//   server late frames behind a 25-50 ms stall in none of 8 runs without it
//   against 2 of 8 with it (49 and 59 frames); V8's helper threads 2.7 vs
//   3.2-3.4 CPU s a minute; server CPU per call-second 2.93-3.19 vs
//   3.00-3.34 ms (means 3.08 vs 3.16: inside the runs' spread). Concurrent
//   marking and sweeping stay on (a major GC's pause is what they keep short).
export const SERVER_NODE_FLAGS = ['--initial-old-space-size=256', '--max-semi-space-size=4', '--min-semi-space-size=4', '--no-parallel-scavenge'];

/** The flags this process lacks (empty when it was started as recommended). */
export function missingServerFlags(execArgv: string[] = process.execArgv): string[] {
  return SERVER_NODE_FLAGS.filter((f) => !execArgv.includes(f));
}
