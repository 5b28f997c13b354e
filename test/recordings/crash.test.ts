// A server killed with SIGKILL in the middle of a recorded call leaves a WAV
// that a player accepts (header sizes within the file; soxi reads it) and
// that holds the call up to the crash: the agent's greeting as the caller
// received it, the caller's speech as it was sent.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { api } from '../helpers/api.js';
import { freePort } from '../helpers/app.js';
import { agentQuiet, waitFor } from '../helpers/calls.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';
import { audibleFrames, parseWav } from './wav.js';

const ADMIN = 'admin-key-recording-crash';

describe('a killed server', () => {
  let srv: Spawned | null = null;
  afterAll(async () => {
    if (srv && srv.child.exitCode === null && srv.child.signalCode === null) await srv.stop('SIGKILL');
  });

  it('leaves a playable WAV holding the audio up to the crash', async () => {
    const port = await freePort();
    srv = await spawnServer({
      PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, TWILIO_AUTH_TOKEN: 'test-auth-token', ADMIN_API_KEY: ADMIN, EMULATORS: 'on', LOG_LEVEL: 'info',
      EMULATOR_PHRASES: 'Tell me about the menu.|Thanks.', EMULATOR_STT_FINAL_DELAY_MS: '50', EMULATOR_LLM_TTFT_MS: '60', EMULATOR_LLM_TOKENS_PER_S: '30',
      EMULATOR_TTS_TTFB_MS: '30', EMULATOR_TTS_RTF: '0.3', WORKERS: '1',
    }, 120_000);
    const tenant = (await api(srv.base, 'POST', '/v1/tenants', ADMIN, { name: 'Crash' })).body;
    const agent = (await api(srv.base, 'POST', '/v1/agents', ADMIN, {
      tenantId: tenant.id, name: 'Agent', prompt: 'You are a helpful receptionist.', greeting: 'Hello! Thanks for calling. How can I help you today?',
      recording: { enabled: true, channels: 'dual' },
    })).body;
    const number = `+1415555${String(Math.floor(1000 + Math.random() * 8999))}`;
    expect((await api(srv.base, 'POST', '/v1/phone-numbers', ADMIN, { number, agentId: agent.id })).status).toBe(201);

    const c = new TwilioCaller({ baseUrl: srv.base, authToken: 'test-auth-token', to: number, record: true });
    await c.dial();
    await agentQuiet(c);
    c.speak(synthesize('tell me about the menu'));
    const before = c.stats.frames;
    // Killed while the agent's reply is playing.
    await waitFor(() => c.stats.frames - before > 100, 20_000, 'the reply');
    const callId = (await api(srv.base, 'GET', '/v1/calls?limit=1', ADMIN)).body.items[0].id as string;
    srv.child.kill('SIGKILL');
    await srv.exit;
    await c.waitClosed();

    const file = path.join(srv.dataDir, 'recordings', tenant.id, `${callId}.wav`);
    const wav = fs.readFileSync(file);
    const w = parseWav(wav);
    expect(w.format).toBe(7);
    expect(w.channels).toBe(2);
    // Written up to the last second before the kill (a chunk is one second).
    expect(w.dataBytes).toBeGreaterThan(2 * 8000 * 3);
    expect(w.dataBytes).toBeLessThanOrEqual(wav.length - 58);
    const soxi = execFileSync('soxi', ['-D', file]).toString().trim();
    expect(Number(soxi)).toBeCloseTo(w.dataBytes / 2 / 8000, 2);
    // What is in the file is what happened, in order: a prefix of each side's own capture.
    const right = audibleFrames(w.right!);
    const received = audibleFrames(c.received);
    expect(right.length).toBeGreaterThan(50);
    expect(right.every((f, i) => f.equals(received[i]))).toBe(true);
    const left = audibleFrames(w.left);
    const sent = audibleFrames(c.sent);
    expect(left.length).toBeGreaterThan(10);
    expect(left.every((f, i) => f.equals(sent[i]))).toBe(true);
  }, 180_000);
});
