// `aybiza call` against `aybiza serve` (what `npm start` runs), as separate processes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnServer, type Spawned } from '../helpers/spawn-server.js';
import { freePort } from '../helpers/app.js';

describe('aybiza call against aybiza serve', () => {
  let srv: Spawned;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    srv = await spawnServer({ PORT: String(port), EMULATORS: 'on', EMULATOR_TTS_RTF: '0.05' });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('hears the greeting of the demo agent, in whole frames, with marks echoed, and records it', () => {
    const wav = path.join(srv.dataDir, 'heard.wav');
    const r = spawnSync(process.execPath, [CLI, 'call', '--json', '--seconds', '5', '--record', wav], {
      env: { ...process.env, PORT: String(port), DATA_DIR: srv.dataDir },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(summary.outcome).toBe('connected');
    expect(summary.nonSilentFrames).toBeGreaterThan(50);
    expect(summary.partialFrames).toBe(0);
    expect(summary.marksEchoed).toBeGreaterThan(0);
    expect(summary.timeToFirstAudioMs).toBeGreaterThan(0);
    expect(fs.statSync(wav).size).toBeGreaterThan(44 + summary.framesReceived * 320 * 0.9);
  });
});
