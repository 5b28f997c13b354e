// Conversations on an agent whose STT is Deepgram Flux (stt.model
// flux-general-en): the turn commits on Flux's EndOfTurn, an
// EagerEndOfTurn followed by TurnResumed does not, and barge-in still
// works. Against the emulators, through the Twilio protocol and the
// official SDK (listen v2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { agentQuiet, concat, conversationOf, quiet, waitFor } from '../helpers/calls.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import type { SttTurn } from '../../src/providers/types.js';
import { TurnDetector, type TurnCommit } from '../../src/pipeline/turn-taking.js';

describe('TurnDetector.modelEndOfTurn (Flux EndOfTurn)', () => {
  it('commits at once with the VAD speech end; before the VAD hangover ends, the last speech frame; no words, no commit', () => {
    const commits: TurnCommit[] = [];
    const d = new TurnDetector((c) => commits.push(c));
    d.speechStart();
    d.transcript('book a', false, false);
    d.speechEnd(1000);
    d.modelEndOfTurn('Book a table.', 1260, 1000);
    expect(commits).toEqual([{ text: 'Book a table.', speechEndMs: 1000, commitMs: 1260, reason: 'endpoint' }]);
    expect(d.text).toBe('');
    d.speechStart(); // the VAD's hangover has not ended the speech yet
    d.modelEndOfTurn('Yes.', 2300, 2040);
    expect(commits[1]).toMatchObject({ text: 'Yes.', speechEndMs: 2040, commitMs: 2300 });
    d.tick(5000);
    d.modelEndOfTurn('  ', 5000);
    expect(commits).toHaveLength(2);
  });
});

describe('conversation on Flux', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      { ...IN_PROCESS, EMULATOR_PHRASES: 'I would like to book a table.|For two people at eight.', EMULATOR_FLUX_EOT_MS: '260' },
      // eager at 0.4 (149 ms of silence in the emulator), the end at 0.8 (297 ms)
      { stt: { model: 'flux-general-en', eotThreshold: 0.8, eagerEotThreshold: 0.4, eotTimeoutMs: 3000 } },
    );
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a turn commits on EndOfTurn and the agent replies; an EagerEndOfTurn followed by TurnResumed commits nothing', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c); // greeting done
    const conv = conversationOf(t);
    const seen: { event: SttTurn['event']; turnsThen: number; replying: boolean }[] = [];
    conv.sttTurnObserver = (e) => {
      if (e.event !== 'Update') seen.push({ event: e.event, turnsThen: conv.turns.length, replying: (conv as unknown as { reply: unknown }).reply !== null });
    };

    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(conv.turns[0]).toMatchObject({ seq: 1, user: 'I would like to book a table.', interrupted: false });
    expect(conv.turns[0].agent).toContain('You said: I would like to book a table');
    expect(seen.map((s) => s.event)).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'EndOfTurn']);
    expect(conv.turns[0].latencies.eou).toBeGreaterThan(0); // measured from the caller's last speech, not from the commit
    await agentQuiet(c);

    // A 200 ms pause mid-sentence: eager, then the caller goes on.
    seen.length = 0;
    c.speak(concat(synthesize('for two people'), quiet(200), synthesize('at eight please')));
    await waitFor(() => conv.turns.length === 2, 20_000, 'turn 2');
    expect(seen.map((s) => s.event)).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EagerEndOfTurn', 'EndOfTurn']);
    const resumed = seen.find((s) => s.event === 'TurnResumed')!;
    expect(resumed).toMatchObject({ turnsThen: 1, replying: false }); // the eager signal started no reply
    expect(conv.turns[1]).toMatchObject({ seq: 2, user: 'For two people at eight.' });
    expect(conv.turns).toHaveLength(2); // one turn for the whole sentence
    await c.hangup();
  });
});

describe('barge-in on Flux', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      { ...IN_PROCESS, EMULATOR_PHRASES: 'Tell me everything about the menu.|Stop, just the prices.|Thanks.', EMULATOR_LLM_TOKENS_PER_S: '30', EMULATOR_TTS_RTF: '0.3' },
      { stt: { model: 'flux-general-en' } },
    );
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('the caller talking over the agent: Flux words confirm the barge-in our VAD started; the reply is cut and the new turn answered', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    c.speak(synthesize('tell me everything about the menu'));
    const framesBefore = c.stats.frames;
    await waitFor(() => c.stats.frames - framesBefore > 60, 20_000, 'agent reply audio');
    c.speak(synthesize('stop stop just the prices please'));
    await waitFor(() => conv.turns.length >= 1, 20_000, 'interrupted turn');
    expect(conv.turns[0].interrupted).toBe(true);
    const full = 'You said: Tell me everything about the menu. I can help with that. What else would you like to know?';
    expect(full.startsWith(conv.turns[0].agent.replace(/\s+/g, ' '))).toBe(true);
    expect(conv.turns[0].agent.length).toBeLessThan(full.length);
    await waitFor(() => c.stats.clears >= 1, 5000, 'clear reaches the caller');
    await waitFor(() => conv.turns.length >= 2, 20_000, 'reply to the interruption');
    expect(conv.turns[1].user).toBe('Stop, just the prices.');
    await c.hangup();
  });
});
