// EMULATOR_PROFILE (issue 16 need 4): which latencies the emulators take, how
// an EMULATOR_* variable overrides the profile, and that the emulators' delays
// are drawn within the profile's documented bounds (the delay-picking
// functions, not wall time).
import { describe, expect, it } from 'vitest';
import { ConfigError, emulatorSettings, loadConfig } from '../../src/config.js';
import { BedrockEmulator, DEFAULT_BEDROCK_EMULATOR } from '../../src/providers/emulators/bedrock.js';
import { DEFAULT_DEEPGRAM_EMULATOR, DeepgramEmulator } from '../../src/providers/emulators/deepgram.js';
import {
  EMULATOR_PROFILE, PUBLISHED_FLUX_END_OF_TURN_MS, describeEmulatorSettings, emulatorOptions, jitterBounds, jittered, seededRandom,
} from '../../src/providers/emulators/profiles.js';

const DRAWS = 2000;

function expectWithin(draws: number[], [lo, hi]: [number, number]): void {
  const eps = 1e-9; // 1000 / (1000 / r) need not give r back exactly
  expect(Math.min(...draws)).toBeGreaterThanOrEqual(lo - eps);
  expect(Math.max(...draws)).toBeLessThanOrEqual(hi + eps);
  // Jittered, not constant: the draws cover most of the range.
  expect(Math.max(...draws) - Math.min(...draws)).toBeGreaterThan((hi - lo) * 0.8);
}

describe('EMULATOR_PROFILE selection', () => {
  it('default: the values the emulators always had, without jitter', () => {
    const e = emulatorSettings({});
    expect(e).toMatchObject({ profile: 'default', sttFinalDelayMs: 250, llmTtftMs: 480, llmTokensPerSecond: 80, ttsFirstByteMs: 90, ttsRealtimeFactor: 0.1 });
    expect(Object.values(e.jitter).every((s) => s === 0)).toBe(true);
    expect(loadConfig({}).emulator).toEqual(e);
  });

  it('published: the documented defaults, with a spread per knob', () => {
    const e = emulatorSettings({ EMULATOR_PROFILE: 'published' });
    const p = EMULATOR_PROFILE.published;
    expect(e).toMatchObject({
      profile: 'published', sttFinalDelayMs: 150, fluxEndOfTurnMs: 260, llmTtftMs: 600, llmTokensPerSecond: 55, ttsFirstByteMs: 150,
    });
    expect(e.jitter).toEqual(p.jitter);
    expect(Object.values(e.jitter).every((s) => s > 0 && s < 1)).toBe(true);
    expect(PUBLISHED_FLUX_END_OF_TURN_MS).toBe(260);
    expect(loadConfig({ EMULATOR_PROFILE: ' Published ' }).emulator.profile).toBe('published');
  });

  it('an explicit EMULATOR_* value wins over the profile; the profile still sets the others and the spread', () => {
    const e = emulatorSettings({ EMULATOR_PROFILE: 'published', EMULATOR_LLM_TTFT_MS: '480', EMULATOR_TTS_TTFB_MS: '0' });
    expect(e.llmTtftMs).toBe(480);
    expect(e.ttsFirstByteMs).toBe(0);
    expect(e.sttFinalDelayMs).toBe(EMULATOR_PROFILE.published.sttFinalDelayMs);
    expect(e.jitter.llmTtft).toBe(EMULATOR_PROFILE.published.jitter.llmTtft);
    expect(emulatorSettings({ EMULATOR_STT_FINAL_DELAY_MS: '400' }).sttFinalDelayMs).toBe(400);
  });

  it('a bad value is a ConfigError naming EMULATOR_PROFILE and the allowed values', () => {
    for (const bad of ['fast', 'publish', 'true']) {
      let err: unknown;
      try {
        loadConfig({ EMULATOR_PROFILE: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('EMULATOR_PROFILE');
      expect((err as ConfigError).message).toMatch(/default, published/);
    }
    // A bad override is still caught under a profile.
    expect(() => emulatorSettings({ EMULATOR_PROFILE: 'published', EMULATOR_LLM_TTFT_MS: '-5' })).toThrow(ConfigError);
  });

  it('the demo and load line names the profile and its spread', () => {
    expect(describeEmulatorSettings(emulatorSettings({}))).toMatch(/^emulator profile default: .*LLM TTFT 480 ms,/);
    expect(describeEmulatorSettings(emulatorSettings({ EMULATOR_PROFILE: 'published' }))).toMatch(/^emulator profile published: .*LLM TTFT 600 ms ±25%/);
  });
});

describe('jitter', () => {
  it('draws uniformly within [v·(1−s), v·(1+s)]; spread 0 is the value itself', () => {
    const rnd = seededRandom(42);
    expectWithin(Array.from({ length: DRAWS }, () => jittered(200, 0.3, rnd)), [140, 260]);
    expect(jittered(200, 0, rnd)).toBe(200);
    expect(jitterBounds(100, 2)).toEqual([0, 200]); // a spread is capped at 100 %: never negative
  });

  it('is seeded: the same seed gives the same sequence', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const xs = Array.from({ length: 20 }, () => a());
    expect(Array.from({ length: 20 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('the emulators apply the profile', () => {
  const published = emulatorOptions(emulatorSettings({ EMULATOR_PROFILE: 'published' }));
  const p = EMULATOR_PROFILE.published;

  it('Bedrock: each request draws its TTFT and token rate within the published bounds', () => {
    const emu = new BedrockEmulator({ ...DEFAULT_BEDROCK_EMULATOR, ...published.bedrock });
    const draws = Array.from({ length: DRAWS }, () => emu.drawTiming());
    expectWithin(draws.map((d) => d.ttftMs), jitterBounds(p.llmTtftMs, p.jitter.llmTtft));
    expectWithin(draws.map((d) => 1000 / d.tokenGapMs), jitterBounds(p.llmTokensPerSecond, p.jitter.llmTokensPerSecond));
  });

  it('Deepgram: each final and each flush draws its delay within the published bounds', () => {
    const emu = new DeepgramEmulator({ ...DEFAULT_DEEPGRAM_EMULATOR, ...published.deepgram });
    expectWithin(Array.from({ length: DRAWS }, () => emu.drawSttFinalDelayMs()), jitterBounds(p.sttFinalDelayMs, p.jitter.sttFinal));
    expectWithin(Array.from({ length: DRAWS }, () => emu.drawTtsFirstByteMs()), jitterBounds(p.ttsFirstByteMs, p.jitter.ttsFirstByte));
  });

  it('default profile: the emulators keep their constant delays', () => {
    const d = emulatorOptions(emulatorSettings({}));
    const bedrock = new BedrockEmulator({ ...DEFAULT_BEDROCK_EMULATOR, ...d.bedrock });
    const deepgram = new DeepgramEmulator({ ...DEFAULT_DEEPGRAM_EMULATOR, ...d.deepgram });
    for (let i = 0; i < 50; i++) {
      expect(bedrock.drawTiming()).toEqual({ ttftMs: 480, tokenGapMs: 1000 / 80 });
      expect(deepgram.drawSttFinalDelayMs()).toBe(250);
      expect(deepgram.drawTtsFirstByteMs()).toBe(90);
    }
  });
});
