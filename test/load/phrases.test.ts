// `npm run load`'s emulators transcribe phrases that never end the call: the
// STT emulator's default fourth phrase says goodbye, and the LLM emulator
// answers a goodbye with end_call — so with the defaults our agent hung every
// load call up after its fourth utterance while the naive server kept its
// calls, and the load's CPU per call-second counted time with the calls gone.
import { describe, expect, it } from 'vitest';
import { LOAD_PHRASES } from '../../src/commands/load.js';
import { DEFAULT_DEEPGRAM_EMULATOR } from '../../src/providers/emulators/deepgram.js';
import { reply } from '../../src/providers/emulators/bedrock.js';
import { BUILTIN_TOOLS } from '../../src/pipeline/tools.js';

const answer = (text: string) =>
  reply({ messages: [{ role: 'user', content: [{ text }] }], toolConfig: { tools: BUILTIN_TOOLS.map((toolSpec) => ({ toolSpec })) } } as Parameters<typeof reply>[0]);

describe('load: the emulated conversation goes on for the whole window', () => {
  it('the default phrases include one the LLM emulator ends the call on (why the load sets its own)', () => {
    expect(DEFAULT_DEEPGRAM_EMULATOR.phrases.some((p) => answer(p).toolUse?.name === 'end_call')).toBe(true);
  });

  it('no load phrase makes the LLM emulator call a tool; each gets a spoken answer', () => {
    const phrases = LOAD_PHRASES.split('|');
    expect(phrases.length).toBeGreaterThanOrEqual(3);
    for (const p of phrases) {
      const a = answer(p);
      expect(a.toolUse).toBeUndefined();
      expect(a.text).toMatch(/\w/);
    }
  });
});
