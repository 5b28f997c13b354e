// `aybiza call`: a simulated Twilio caller against a running server.
//   --url URL        server base URL (default http://127.0.0.1:$PORT)
//   --public-url URL the server's PUBLIC_URL, which signatures cover (default $PUBLIC_URL, else --url, else http://localhost:$PORT)
//   --to NUMBER      dialled number (default the demo number +15555550100)
//   --wav FILE       caller speech (8 kHz mono WAV) sent after the greeting
//   --say TEXT       caller speech generated with espeak-ng (or a speech-like tone if absent)
//   --seconds N      hang up after N seconds (default: 6, or speech length + 8)
//   --record FILE    write what the caller heard to a WAV file
//   --json           print only the JSON summary
// The auth token is TWILIO_AUTH_TOKEN, or the one the server generated in DATA_DIR.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { TwilioCaller } from '../twilio/caller.js';
import { readWavAsUlaw, ulawToWav } from '../media/wav.js';
import { synthesize } from '../providers/emulators/voice.js';
import { parseArgs, numberArg } from './args.js';
import { DEMO_NUMBER } from '../store/seed.js';
import { setLogSink } from '../log.js';

/** Caller speech from espeak-ng (8 kHz μ-law via sox-free WAV parsing), or a speech-like stand-in. */
export function speech(text: string): Uint8Array {
  const r = spawnSync('espeak-ng', ['-v', 'en-us', '-s', '160', '--stdout', text], { maxBuffer: 64 * 1024 * 1024 });
  if (r.status === 0 && r.stdout.length > 44) {
    const wav = r.stdout as Buffer;
    // espeak-ng writes 22050 Hz PCM16: resample to 8 kHz by linear interpolation.
    const rate = wav.readUInt32LE(24);
    const data = wav.subarray(44);
    const n = Math.floor(data.length / 2);
    const out = new Int16Array(Math.floor((n * 8000) / rate));
    for (let i = 0; i < out.length; i++) {
      const x = (i * rate) / 8000;
      const j = Math.floor(x);
      const a = data.readInt16LE(Math.min(n - 1, j) * 2);
      const b = data.readInt16LE(Math.min(n - 1, j + 1) * 2);
      out[i] = Math.round(a + (b - a) * (x - j));
    }
    const bytes = Buffer.alloc(44 + out.length * 2);
    return readWavAsUlaw(Buffer.concat([header(out.length), Buffer.from(out.buffer)]).subarray(0, bytes.length));
  }
  return synthesize(text);
}

function header(samples: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + samples * 2, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(16000, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(samples * 2, 40);
  return h;
}

function authToken(): string {
  if (process.env.TWILIO_AUTH_TOKEN) return process.env.TWILIO_AUTH_TOKEN;
  const file = path.join(path.resolve(process.env.DATA_DIR ?? './data'), 'twilio-auth-token');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`no TWILIO_AUTH_TOKEN and no ${file}: start the server first, or set TWILIO_AUTH_TOKEN`);
  }
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['json']);
  setLogSink((line) => process.stderr.write(line + '\n'));
  const port = process.env.PORT ?? '8080';
  const url = String(a.url ?? `http://127.0.0.1:${port}`);
  // Signatures cover the server's PUBLIC_URL (by default http://localhost:$PORT), not where we connect.
  const publicUrl = String(a['public-url'] ?? process.env.PUBLIC_URL ?? (a.url ? url : `http://localhost:${port}`));
  const caller = new TwilioCaller({ baseUrl: url, publicUrl, authToken: authToken(), to: String(a.to ?? DEMO_NUMBER), record: !!a.record });
  let voice: Uint8Array | null = null;
  if (a.wav) voice = readWavAsUlaw(fs.readFileSync(String(a.wav)));
  else if (a.say) voice = speech(String(a.say));
  const seconds = numberArg(a.seconds, 'seconds', voice ? voice.length / 8000 + 8 : 6, 1, 3600);
  const { outcome, twiml } = await caller.dial();
  if (outcome === 'connected') {
    if (voice) {
      // Speak after the greeting has started playing and gone quiet (as a person would).
      const t0 = Date.now();
      while (caller.stats.frames === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 2500));
      caller.speak(voice);
    }
    const end = Date.now() + seconds * 1000;
    const closed = caller.waitClosed().then(() => true);
    while (Date.now() < end && !(await Promise.race([closed, new Promise<false>((r) => setTimeout(() => r(false), 100))]))) {
      /* in call */
    }
    if (caller.summary().closeCode === null) await caller.hangup();
  }
  if (a.record) fs.writeFileSync(String(a.record), ulawToWav(caller.audio()));
  const summary = { ...caller.summary(outcome), callSid: caller.callSid, ...(outcome !== 'connected' ? { twiml } : {}) };
  process.stdout.write(JSON.stringify(summary, null, a.json ? 0 : 2) + '\n');
  process.exit(0);
}
