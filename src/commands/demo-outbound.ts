// `npm run demo -- --outbound`: the agent places the call. A server on
// embedded defaults with the Twilio REST emulator; POST /v1/calls through
// the admin API dials an emulated callee over the official `twilio`
// library, the callee answers by opening a Media Stream like Twilio, and
// the demo prints the status as it changes and the transcript. Options:
// --to NUMBER (default +14155550123; ending in 0666 an answering machine
// with a beep, 0486 busy, 0408 no answer), --amd detect|detect_message_end
// (with a voicemail message left on a machine).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../app.js';
import { loadConfig } from '../config.js';
import { setLogLevel } from '../log.js';
import { OutboundDialer } from '../outbound/dialer.js';
import type { Emulators } from '../providers/emulators/index.js';
import type { Principal } from '../store/types.js';
import { parseArgs } from './args.js';
import { freePort } from './child.js';

const CALLEE = ['Yes, this is Sam.', 'Yes, Tuesday at three still works for me. Thank you, goodbye.'];
const ADMIN: Principal = { keyId: 'demo', keyName: 'npm run demo -- --outbound', tenantId: null, platformAdmin: true, scopes: [] };
const VOICEMAIL = 'Hi Sam, this is Riley from the Bay clinic, confirming your appointment on Tuesday at three. Call us back if you need to change it. Goodbye.';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runOutbound(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const to = String(a.to ?? '+14155550123');
  const amd = a.amd === undefined ? 'off' : String(a.amd);
  if (!['off', 'detect', 'detect_message_end'].includes(amd)) throw new Error('--amd must be detect or detect_message_end');
  setLogLevel('warn');
  const port = await freePort();
  const config = loadConfig({
    ...process.env, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: `http://127.0.0.1:${port}`, SIP_PORT: '0', EMULATORS: 'on',
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-demo-')), TWILIO_AUTH_TOKEN: 'demo-token', LOG_LEVEL: 'warn',
    EMULATOR_PHRASES: ['Hello?', ...CALLEE].join('|'),
  });
  process.stdout.write('Starting a server on embedded defaults (PGlite, in-process state, emulated Deepgram, Bedrock and Twilio REST API)…\n');
  const app = await createApp(config);
  await app.server.listen();
  // The emulated callee's lines (the emulated STT hears them as EMULATOR_PHRASES, in order).
  (app.providers as { emulators?: Emulators | null }).emulators!.twilioRest.opts.script = CALLEE;

  // A tenant that may call the US, an agent whose prompt and greeting take variables, a key to call the API with.
  const tenant = await app.store.tenants.create(ADMIN, 'Bay clinic', null, { allowedCountries: ['US'] });
  const agent = await app.store.agents.create(ADMIN, tenant.id, {
    name: 'Appointment reminders',
    prompt: 'You are Riley from the Bay clinic, calling {{name}} to confirm their appointment on {{date}}. Be brief and friendly.',
    greeting: 'Hi {{name}}, this is Riley from the Bay clinic, calling to confirm your appointment on {{date}}. Does that still work for you?',
  });
  const { key } = await app.store.tenants.createKey(ADMIN, tenant.id, 'demo', ['calls:write', 'calls:read']);
  const body = {
    agentId: agent.id, to, from: '+14155550100', via: 'twilio', variables: { name: 'Sam', date: 'Tuesday at three' },
    ...(amd === 'off' ? {} : { amd, voicemail: { message: VOICEMAIL } }),
  };
  process.stdout.write(`POST /v1/calls ${JSON.stringify(body)}\n`);
  const res = await fetch(`http://127.0.0.1:${port}/v1/calls`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const call = (await res.json()) as { id: string; status: string; externalId: string; error?: { code: string; message: string } };
  if (res.status !== 201) throw new Error(`POST /v1/calls answered ${res.status}: ${JSON.stringify(call)}`);
  process.stdout.write(`  → ${res.status} ${call.id}, CallSid ${call.externalId} (Twilio REST emulator)\n`);

  // The row is what any node reads: print its status as it moves.
  const dialer = OutboundDialer.for(app.store);
  const t0 = Date.now();
  let seen = '';
  const watch = setInterval(() => {
    void dialer.records.get(call.id).then((c) => {
      const now = `${c?.status}${c?.answeredBy ? ` (answered by ${c.answeredBy})` : ''}`;
      if (c && now !== seen) process.stdout.write(`  ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${(seen = now)}\n`);
    });
  }, 50);
  const done = await dialer.whenFinal(call.id, 120_000);
  clearInterval(watch);
  await sleep(100);
  const detail = await app.store.calls.detail(null, call.id);
  process.stdout.write('\nTranscript\n');
  for (const s of detail.transcript) process.stdout.write(`  ${s.speaker === 'caller' ? 'callee' : 'agent '}  ${s.text}\n`);
  const secs = done.answeredAt && done.endedAt ? ((Date.parse(done.endedAt) - Date.parse(done.answeredAt)) / 1000).toFixed(1) : '0';
  process.stdout.write(`\nCall ended: ${done.status} (${done.endReason}), answered by ${done.answeredBy ?? 'not screened'}, ${secs} s after the answer, ${detail.turns.length} turn(s).\n`);
  await app.server.shutdown();
  process.exit(0);
}
