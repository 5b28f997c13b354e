// The `server` stage is only our time (issue 14, need 2): conversational
// waits on the way to the first frame (a barge-in hold, the false-
// interruption window, a tool, an LLM round after a tool, earlier speech
// still playing) are their own spans, stored with the turn, and e2e is still
// the exact sum of the stages, the waits and server.
import { afterEach, describe, expect, it } from 'vitest';
import { TurnTimeline, type TimelinePoint, type TurnLatencies } from '../../src/pipeline/timeline.js';
import { Conversation } from '../../src/pipeline/conversation.js';
import { registry } from '../../src/metrics/index.js';
import type { LanguageModel, LlmEvent } from '../../src/providers/types.js';
import { audio, fakeCall, type FakeCall } from '../call/fake-call.js';

const sum = (l: TurnLatencies) =>
  (l.eou ?? 0) + (l.llm_ttft ?? 0) + (l.first_sentence ?? 0) + (l.tts_ttfb ?? 0) + (l.server ?? 0) +
  (l.barge_in_check ?? 0) + (l.false_interruption ?? 0) + (l.tool ?? 0) + (l.llm_round2 ?? 0) + (l.earlier_speech ?? 0);

/** A timeline with these points marked. */
function timeline(points: Partial<Record<TimelinePoint, number>>): TurnTimeline {
  const t = new TurnTimeline();
  for (const [k, v] of Object.entries(points)) t.mark(k as TimelinePoint, v);
  return t;
}

describe('TurnTimeline spans', () => {
  it('a hold between the first audio byte and the first frame is a wait, not server time', () => {
    const t = timeline({ speechEnd: 0, commit: 400, llmRequest: 401, firstToken: 900, llmFirstOutput: 900, firstSentence: 1000, ttsRequest: 1001, ttsFirstByte: 1100 });
    t.span('barge_in_check', 1050, 1300); // caller noise from 1050, quiet at 1300
    t.span('false_interruption', 1300, 1750);
    t.mark('firstFrameSent', 1752);
    const l = t.latencies();
    // The hold before the first byte overlaps tts_ttfb: only what it added counts.
    expect(l).toMatchObject({ eou: 400, llm_ttft: 499, first_sentence: 100, tts_ttfb: 99, barge_in_check: 200, false_interruption: 450, server: 4 });
    expect(sum(l)).toBe(l.e2e);
  });

  it('a tool round: the first round is llm_ttft, then the tool and the second LLM round are their own spans', () => {
    // The first round only asked for a tool (its end is its first output).
    const t = timeline({ speechEnd: 0, commit: 500, llmRequest: 500, llmFirstOutput: 900, firstToken: 2500, firstSentence: 2600, ttsRequest: 2600, ttsFirstByte: 2700, firstFrameSent: 2700 });
    t.span('tool', 901, 2101);
    t.span('llm_round2', 2102, 2500);
    t.span('tool', 3000, 3500); // after the first frame: not on the critical path
    const l = t.latencies();
    expect(l).toMatchObject({ llm_ttft: 400, tool: 1200, llm_round2: 398, first_sentence: 100, tts_ttfb: 100, server: 2 });
    expect(sum(l)).toBe(l.e2e);
  });

  it('exports the waits as turn-latency stages and leaves absent ones out', async () => {
    const t = timeline({ speechEnd: 0, commit: 10, llmRequest: 10, firstToken: 20, firstSentence: 30, ttsRequest: 30, ttsFirstByte: 40 });
    t.span('earlier_speech', 40, 140);
    t.mark('firstFrameSent', 140);
    const { latencies } = t.observe({ e2eMs: 1500, serverMs: 10 });
    expect(latencies.earlier_speech).toBe(100);
    expect(latencies.server).toBe(0);
    expect(latencies.tool).toBeUndefined();
    expect(await registry.metrics()).toMatch(/aybiza_turn_latency_seconds_count\{stage="earlier_speech"\} [1-9]/);
  });
});

describe('the conversation records its waits', () => {
  let call: FakeCall | null = null;
  afterEach(async () => {
    await call?.close();
    call = null;
  });

  /** The caller says one sentence (1 s of speech, then the STT's final); the LLM gets to stream. */
  async function callerTurn(c: FakeCall): Promise<void> {
    const ev = c.session.events;
    ev.onSpeechStart?.(c.now.t);
    c.now.t += 1000;
    ev.onSpeechEnd?.(c.now.t);
    ev.onTranscript?.({ text: 'When do you open?', isFinal: true, speechFinal: true, fromFinalize: false, start: 0, duration: 1, confidence: 1 });
    await new Promise((r) => setImmediate(r));
  }

  /** An LLM that says one sentence, then waits for `release` before ending its reply. */
  function gatedLlm(): { llm: LanguageModel; release: () => void } {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const llm: LanguageModel = {
      name: 'gated',
      async *stream(): AsyncIterable<LlmEvent> {
        yield { type: 'text', text: 'We open at nine in the morning. ' };
        await gate;
      },
    };
    return { llm, release };
  }

  it('a suspected barge-in holding the first frame lands in barge_in_check and false_interruption, not server', async () => {
    const { llm, release } = gatedLlm();
    const c = (call = await fakeCall(llm));
    const conv = new Conversation(c.session, { llm, calls: c.calls, turn: { silenceMs: 0, slowSilenceMs: 0, sttGraceMs: 0 }, falseInterruptionMs: 300, bargeInMinMs: 10_000 });
    const ev = c.session.events;
    // The caller's turn.
    await callerTurn(c); // the LLM streams its first sentence; it is flushed to TTS
    // The caller makes a noise before the audio arrives: output is held.
    c.now.t += 100;
    ev.onSpeechStart?.(c.now.t);
    c.now.t += 50;
    c.tts.onAudio(audio(5)); // TTS first byte: held, not sent
    expect(c.framesSent()).toBe(0);
    c.now.t += 150;
    ev.onSpeechEnd?.(c.now.t); // the noise ends 200 ms into the hold
    c.now.t += 300;
    conv.tick(); // no words within the window: a false interruption, the reply resumes at once
    expect(c.framesSent()).toBe(1);
    release();
    await new Promise((r) => setImmediate(r));
    c.tts.onFlushed?.(1);
    for (let i = 0; i < 6; i++) c.slot();
    c.echoMarks();
    expect(conv.turns).toHaveLength(1);
    const l = conv.turns[0].latencies as TurnLatencies;
    // Held from the noise (150 ms before the first byte) until the resume; the part before the first byte is tts_ttfb's.
    expect(l.barge_in_check).toBe(150);
    expect(l.false_interruption).toBe(300);
    expect(l.tts_ttfb).toBe(150);
    expect(l.server).toBe(0); // the manual clock stands still while our code runs
    expect(Math.abs(sum(l) - l.e2e!)).toBeLessThan(0.5);
    expect(c.turns[0].latencies).toMatchObject({ barge_in_check: 150, false_interruption: 300 }); // stored with the turn
  });

  it('a confirmed barge-in clears the held audio without sending any of it', async () => {
    const { llm, release } = gatedLlm();
    const c = (call = await fakeCall(llm));
    const conv = new Conversation(c.session, { llm, calls: c.calls, turn: { silenceMs: 0, slowSilenceMs: 0, sttGraceMs: 0 }, falseInterruptionMs: 10_000, bargeInMinMs: 200 });
    const ev = c.session.events;
    await callerTurn(c);
    c.tts.onAudio(audio(10)); // the reply's audio
    c.slot();
    const before = c.framesSent();
    expect(before).toBeGreaterThan(0);
    // The caller talks over it: output is held, then the sustained speech confirms the barge-in.
    ev.onSpeechStart?.(c.now.t);
    c.slot();
    c.slot();
    expect(c.framesSent()).toBe(before); // held
    c.now.t += 250;
    conv.tick(); // confirmed: clear, then release the hold
    expect(c.framesSent()).toBe(before); // not a frame of the interrupted reply after the hold
    for (let i = 0; i < 5; i++) c.slot();
    expect(c.framesSent()).toBe(before);
    release();
  });

  it('a reply whose first audio waits behind the greeting still playing gets earlier_speech, not server time', async () => {
    const { llm, release } = gatedLlm();
    const c = (call = await fakeCall(llm));
    const conv = new Conversation(c.session, { llm, calls: c.calls, turn: { silenceMs: 0, slowSilenceMs: 0, sttGraceMs: 0 } });
    const ev = c.session.events;
    // The greeting: 20 frames queued, 2 sent.
    c.session.say('Hello, thanks for calling. How can I help you today?');
    c.session.flush();
    c.tts.onAudio(audio(20));
    c.tts.onFlushed?.(1);
    c.slot();
    // The caller answers over the greeting (no reply in flight: no barge-in).
    ev.onSpeechStart?.(c.now.t);
    c.now.t += 500;
    ev.onSpeechEnd?.(c.now.t);
    ev.onTranscript?.({ text: 'I would like a table.', isFinal: true, speechFinal: true, fromFinalize: false, start: 0, duration: 1, confidence: 1 });
    await new Promise((r) => setImmediate(r));
    c.tts.onAudio(audio(3)); // the reply's first audio, behind 18 greeting frames
    const sent = c.framesSent();
    for (let i = 0; i < 18; i++) c.slot();
    expect(c.framesSent()).toBe(sent + 18); // still the greeting
    c.slot(); // the reply's first frame
    release();
    await new Promise((r) => setImmediate(r));
    c.tts.onFlushed?.(1);
    for (let i = 0; i < 6; i++) c.slot();
    c.echoMarks();
    expect(conv.turns).toHaveLength(1);
    const l = conv.turns[0].latencies as TurnLatencies;
    expect(l.earlier_speech).toBe(19 * 20);
    expect(l.server).toBe(0);
    expect(Math.abs(sum(l) - l.e2e!)).toBeLessThan(0.5);
  });
});
