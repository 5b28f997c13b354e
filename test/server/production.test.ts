// NODE_ENV=production refuses to start when providers would silently be
// emulated, when no database was chosen, or without AYBIZA_ENCRYPTION_KEY
// (issue 13 item 16); with everything set it starts.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { CLI, spawnServer, tempDir } from '../helpers/spawn-server.js';

const KEY = 'a'.repeat(64);
const dbUrl = () => {
  const u = process.env.TEST_DATABASE_URL;
  if (!u) throw new Error('TEST_DATABASE_URL is not set: run through test/run.sh');
  return u;
};

/** The environment without anything that could hand the child credentials from this machine. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('AWS_') || k.startsWith('DEEPGRAM_') || k.startsWith('BEDROCK_') || k === 'DATABASE_URL' || k === 'REDIS_URL' || k === 'EMULATORS' || k === 'AYBIZA_ENCRYPTION_KEY') continue;
    env[k] = v;
  }
  const home = tempDir('prod-home-');
  // The default chain reads shared files under HOME and asks the EC2 metadata service:
  // point both at nothing so this machine's own credentials never count.
  return { ...env, HOME: home, AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'), AWS_CONFIG_FILE: path.join(home, 'none'), AWS_EC2_METADATA_DISABLED: 'true' };
}

describe('production guards', () => {
  let emu: Emulators;
  let full: Record<string, string>;
  beforeAll(async () => {
    emu = await startEmulators();
    full = {
      ...cleanEnv(),
      NODE_ENV: 'production', TWILIO_AUTH_TOKEN: 'prod-token', DATABASE_URL: dbUrl(), AYBIZA_ENCRYPTION_KEY: KEY,
      DEEPGRAM_API_KEY: 'fake-deepgram-key', DEEPGRAM_URL: emu.deepgramUrl,
      AWS_ACCESS_KEY_ID: 'AKIAFAKE', AWS_SECRET_ACCESS_KEY: 'fake-secret', AWS_REGION: 'us-east-1', BEDROCK_ENDPOINT: emu.bedrockUrl,
      PORT: '0', HOST: '127.0.0.1', SIP_PORT: '0', LOG_LEVEL: 'info',
    };
  });
  afterAll(async () => {
    await emu?.close();
  });

  const refuse = (env: Record<string, string>) =>
    spawnSync(process.execPath, [CLI, 'serve'], { env: { ...env, DATA_DIR: tempDir('prod-') }, encoding: 'utf8', timeout: 60_000 });
  const without = (...names: string[]) => Object.fromEntries(Object.entries(full).filter(([k]) => !names.includes(k)));

  it.each([
    ['DATABASE_URL', ['DATABASE_URL']],
    ['AYBIZA_ENCRYPTION_KEY', ['AYBIZA_ENCRYPTION_KEY']],
    ['DEEPGRAM_API_KEY', ['DEEPGRAM_API_KEY']],
    ['AWS_ACCESS_KEY_ID', ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']],
  ])('refuses to start without %s (exit 1, message names it)', (name, drop) => {
    const r = refuse(without(...drop));
    expect(r.status).toBe(1);
    expect(r.stderr + r.stdout).toContain(name);
    expect(r.stdout).not.toMatch(/"msg":"listening"/);
  });

  it('EMULATORS=auto with no Deepgram key is refused even when a Deepgram URL is set', () => {
    const r = refuse({ ...without('DEEPGRAM_API_KEY'), DEEPGRAM_URL: emu.deepgramUrl });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('DEEPGRAM_API_KEY');
  });

  it('starts with everything set, on the real provider paths (not emulated)', async () => {
    const srv = await spawnServer({ ...full, DATA_DIR: tempDir('prod-') });
    try {
      expect((await fetch(`${srv.base}/healthz`)).status).toBe(200);
      const text = srv.logs.join('\n');
      expect(text).not.toContain('EMULATED');
      expect(text).toContain('speech: Deepgram');
      expect(text).toContain('LLM: Bedrock');
    } finally {
      expect(await srv.stop('SIGTERM')).toBe(0);
    }
  });

  it('finds AWS credentials through the SDK default chain (a shared credentials file, no AWS_* keys in the environment)', async () => {
    const home = tempDir('prod-aws-');
    const file = path.join(home, 'credentials');
    fs.writeFileSync(file, '[default]\naws_access_key_id = AKIAFROMFILE\naws_secret_access_key = fake-secret\n');
    const srv = await spawnServer({ ...without('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'), AWS_SHARED_CREDENTIALS_FILE: file, DATA_DIR: tempDir('prod-') });
    try {
      expect(srv.logs.join('\n')).toContain('LLM: Bedrock');
      expect(srv.logs.join('\n')).not.toContain('EMULATED');
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  it('DATABASE_URL=embedded opts into the embedded database knowingly', async () => {
    const srv = await spawnServer({ ...full, DATABASE_URL: 'embedded', DATA_DIR: tempDir('prod-') });
    try {
      expect((await fetch(`${srv.base}/readyz`)).status).toBe(200);
      expect(srv.logs.join('\n')).toContain('DATABASE_URL=embedded');
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  it('DATABASE_URL=embedded is accepted outside production too', () => {
    const r = refuse({ ...cleanEnv(), DATABASE_URL: 'embedded', PORT: 'bad' });
    // Stops on PORT, not on DATABASE_URL: the value parsed.
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('PORT');
    expect(r.stderr).not.toContain('DATABASE_URL');
  });
});
