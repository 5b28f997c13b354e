// `npm run demo`: a server on embedded defaults (temp DATA_DIR, emulated
// providers), one simulated Twilio call of several turns including a
// barge-in, then the transcript, a per-turn latency table, and the agent's
// audio in a WAV file (--out FILE, default ./demo-call.wav). `--stt MODEL`:
// the demo agent's speech-to-text model (nova-3 by default; flux-general-en
// for Deepgram Flux, whose model ends the turn).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../app.js';
import { loadConfig } from '../config.js';
import { describeEmulatorSettings } from '../providers/emulators/profiles.js';
import { setLogLevel } from '../log.js';
import { TwilioCaller } from '../twilio/caller.js';
import { DEMO_NUMBER } from '../store/seed.js';
import { ulawToWav } from '../media/wav.js';
import { parseArgs } from './args.js';
import { freePort } from './child.js';
import { speech } from './call.js';
import { median } from './load-report.js';
import { runOutbound } from './demo-outbound.js';

const SCRIPT = [
  "Hi, I'd like to book a table for two tomorrow evening.",
  'Sorry, actually make that three people.',
  'Great, thank you, goodbye.',
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await sleep(20);
}

export async function run(argv: string[]): Promise<void> {
  // --outbound: the agent places the call instead (src/commands/demo-outbound.ts).
  if (argv.includes('--outbound')) return runOutbound(argv.filter((x) => x !== '--outbound'));
  const a = parseArgs(argv);
  const out = path.resolve(String(a.out ?? 'demo-call.wav'));
  setLogLevel('warn');
  const port = await freePort();
  const config = loadConfig({
    ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: `http://127.0.0.1:${port}`, SIP_PORT: '0', EMULATORS: 'on',
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-demo-')), TWILIO_AUTH_TOKEN: 'demo-token', LOG_LEVEL: 'warn',
    EMULATOR_PHRASES: SCRIPT.join('|'),
  });
  process.stdout.write('Starting a server on embedded defaults (PGlite, in-process state, emulated Deepgram and Bedrock)…\n');
  // EMULATOR_PROFILE=published: the providers' published latencies, with jitter (src/providers/emulators/profiles.ts).
  process.stdout.write(`  ${describeEmulatorSettings(config.emulator)}\n`);
  const app = await createApp(config);
  await app.server.listen();
  const sttModel = a.stt === undefined ? 'nova-3' : String(a.stt);
  if (a.stt !== undefined) await useSttModel(app, sttModel);
  process.stdout.write(`  speech-to-text: ${sttModel}\n`);
  const caller = new TwilioCaller({ baseUrl: `http://127.0.0.1:${port}`, authToken: 'demo-token', to: DEMO_NUMBER, record: true });
  let lastAudio = Date.now();
  caller.onAudio = () => (lastAudio = Date.now());
  const quiet = (ms = 500) => until(() => caller.stats.frames > 0 && Date.now() - lastAudio > ms, 20_000);
  process.stdout.write(`Calling ${DEMO_NUMBER} over the Twilio Media Streams protocol…\n`);
  await caller.dial();
  await quiet();
  caller.speak(speech(SCRIPT[0]));
  // Talk over the agent's reply once it is under way: a barge-in.
  const f0 = caller.stats.frames;
  await until(() => caller.stats.frames - f0 > 60, 20_000);
  caller.speak(speech(SCRIPT[1]));
  await until(() => !caller.speaking, 20_000);
  const f1 = caller.stats.frames;
  await until(() => caller.stats.frames > f1, 20_000); // the agent answers the interruption
  await quiet(800);
  caller.speak(speech(SCRIPT[2]));
  await Promise.race([caller.waitClosed(), sleep(30_000)]);
  if (caller.summary().closeCode === null) await caller.hangup();
  await sleep(300);
  const rec = await app.store.calls.findCall('twilio', caller.callSid);
  const detail = rec ? await app.store.calls.detail(null, rec.id) : null;
  fs.writeFileSync(out, ulawToWav(caller.audio()));

  process.stdout.write('\nTranscript\n');
  for (const s of detail?.transcript ?? []) process.stdout.write(`  ${s.speaker === 'caller' ? 'caller' : 'agent '}  ${s.text}\n`);
  process.stdout.write(`\nTurns (ms, emulator profile ${config.emulator.profile})\n`);
  const cols = ['eou', 'llm_ttft', 'first_sentence', 'tts_ttfb', 'server', 'e2e'];
  process.stdout.write(`  ${'turn'.padEnd(5)}${cols.map((c) => c.padStart(15)).join('')}   interrupted\n`);
  for (const t of detail?.turns ?? []) {
    const l = t.latencies as Record<string, number>;
    process.stdout.write(`  ${String(t.seq).padEnd(5)}${cols.map((c) => (l[c] === undefined ? '-' : l[c].toFixed(1)).padStart(15)).join('')}   ${t.interrupted ? 'yes: kept "' + t.assistantText + '"' : 'no'}\n`);
  }
  // The figures issue 16 asks for: the stored turns' e2e (caller's last speech → first agent frame sent, as the server
  // measures it) and voice-to-voice as the caller measures it (its last audible frame sent → the agent's next frame heard).
  const e2e = (detail?.turns ?? []).map((t) => (t.latencies as Record<string, number>).e2e).filter((v): v is number => v !== undefined);
  process.stdout.write(
    `\nVoice-to-voice as the caller heard it (ms): ${caller.voiceToVoice.map((v) => v.toFixed(0)).join(', ') || '-'}\n` +
      `median e2e ${median(e2e).toFixed(1)} ms, median voice-to-voice ${median(caller.voiceToVoice).toFixed(1)} ms ` +
      `(emulator profile ${config.emulator.profile}, ${sttModel})\n`,
  );
  const s = caller.summary();
  process.stdout.write(
    `\nCall ended: ${detail?.endReason ?? 'unknown'}. The caller heard ${s.framesReceived} frames (${(s.framesReceived * 0.02).toFixed(1)} s), ` +
      `first audio after ${s.timeToFirstAudioMs} ms, outbound gap p99 ${s.gapP99Ms} ms, ${s.clears} clear(s).\nAgent audio: ${out}\n`,
  );
  await app.server.shutdown();
  process.exit(0);
}

/** Points the demo agent at another STT model (a new version, deployed). */
async function useSttModel(app: Awaited<ReturnType<typeof createApp>>, model: string): Promise<void> {
  const who = { keyId: 'demo', keyName: 'npm run demo', tenantId: null, platformAdmin: true, scopes: [] };
  const id = (await app.store.db.pool.query('select id from agents order by created_at limit 1')).rows[0].id as string;
  const agent = await app.store.agents.patch(who, null, id, { stt: { model } });
  await app.store.agents.deploy(who, null, id, agent.version);
}
