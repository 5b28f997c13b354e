// The per-turn timeline measures what the providers were configured to take:
// this checks the instrumentation (which interval each stage covers), with
// room for scheduling noise; speed itself is measured by `npm run load`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import type { Conversation } from '../../src/pipeline/conversation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('turn latency timeline', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ...IN_PROCESS, EMULATOR_LLM_TTFT_MS: '300', EMULATOR_TTS_TTFB_MS: '150', EMULATOR_STT_FINAL_DELAY_MS: '100', EMULATOR_PHRASES: 'What time do you open?' }, { preemptive: false });
    // Stages measured one after another; with preemptive generation (test/pipeline/preemptive.test.ts)
    // the model's wait would start before the commit.
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('measures the configured provider delays per stage, and e2e is their sum plus our own time', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    while (c.stats.frames === 0) await sleep(10);
    await sleep(4000); // greeting
    const conv = (([...t.app.twilio.sessions.values()].pop()!) as unknown as { conversation: Conversation }).conversation;
    c.speak(synthesize('what time do you open'));
    const t0 = Date.now();
    while (conv.turns.length === 0 && Date.now() - t0 < 20_000) await sleep(20);
    const l = conv.turns[0].latencies;
    // Each stage covers at least its provider's configured delay, and not the
    // next stage's too (the upper bounds are the configured delay plus less
    // than any other stage's, not a speed target: speed is measured by
    // `npm run load`, on a machine a test cannot reserve).
    expect(l.llm_ttft).toBeGreaterThanOrEqual(300);
    expect(l.llm_ttft).toBeLessThan(300 + 250);
    expect(l.tts_ttfb).toBeGreaterThanOrEqual(150);
    expect(l.tts_ttfb).toBeLessThan(150 + 250);
    // The STT final comes endpointing (300 ms) + 100 ms after speech ends; the turn commits then.
    expect(l.eou).toBeGreaterThanOrEqual(300);
    const sum = l.eou + l.llm_ttft + l.first_sentence + l.tts_ttfb + l.server;
    expect(Math.abs(sum - l.e2e)).toBeLessThanOrEqual(1); // rounding only
    expect(l.server).toBeGreaterThanOrEqual(0);
    // e2e holds at least every configured delay (STT endpointing 300 + final 100, LLM 300, TTS 150).
    expect(l.e2e).toBeGreaterThanOrEqual(300 + 100 + 300 + 150);
    await c.hangup();
  });
});
