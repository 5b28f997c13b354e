// A call through providers in their own process, reached only through
// DEEPGRAM_URL, BEDROCK_ENDPOINT and AWS keys from the configuration: nothing
// in the clients depends on running beside the emulators.
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/spawn-server.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import type { Conversation } from '../../src/pipeline/conversation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('providers reached by URL (aybiza emulators in another process)', () => {
  let t: TestApp;
  let emulators: ChildProcess;
  beforeAll(async () => {
    emulators = spawn(process.execPath, [CLI, 'emulators'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, EMULATOR_LLM_TTFT_MS: '300', EMULATOR_TTS_TTFB_MS: '150', EMULATOR_STT_FINAL_DELAY_MS: '100', EMULATOR_PHRASES: 'What time do you open?', LOG_LEVEL: 'warn' },
    });
    const urls = await new Promise<{ deepgramUrl: string; bedrockUrl: string }>((resolve) =>
      readline.createInterface({ input: emulators.stdout! }).once('line', (l) => resolve(JSON.parse(l))),
    );
    t = await startTestApp({ ...IN_PROCESS,
      EMULATORS: 'auto', DEEPGRAM_URL: urls.deepgramUrl, DEEPGRAM_API_KEY: 'test', BEDROCK_ENDPOINT: urls.bedrockUrl,
      AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1',
    }, { preemptive: false }); // the whole LLM wait after the commit (preemptive generation: test/pipeline/preemptive.test.ts)
  });
  afterAll(async () => {
    await t?.stop();
    emulators?.kill();
  });

  it('completes a conversational turn', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    while (c.stats.frames === 0) await sleep(10);
    await sleep(4000);
    const conv = (([...t.app.twilio.sessions.values()].pop()!) as unknown as { conversation: Conversation }).conversation;
    c.speak(synthesize('what time do you open'));
    const t0 = Date.now();
    while (conv.turns.length === 0 && Date.now() - t0 < 15_000) await sleep(20);
    expect(conv.turns.length).toBe(1);
    expect(conv.turns[0].user).toBe('What time do you open?');
    expect(conv.turns[0].agent).toContain('You said: What time do you open');
    expect(conv.turns[0].latencies.llm_ttft).toBeGreaterThanOrEqual(300);
    await c.hangup();
  });
});
