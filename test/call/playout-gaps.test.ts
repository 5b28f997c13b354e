// Every gap in the agent's voice explained, server side (issue 14, need 1):
// a slot with nothing to send inside the agent's speech is a pause,
// attributed to what it waited for and counted once per run; a frame that
// goes out more than 10 ms after its slot is a late frame, classed by how
// late. Slots are driven by hand on a manual clock.
import { afterEach, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import { PAUSE_REASONS, type PauseReason } from '../../src/call/gaps.js';
import { audio, fakeCall, type FakeCall } from './fake-call.js';

async function metric(name: string, label: string, value: string): Promise<number> {
  const text = await registry.metrics();
  const m = new RegExp(`^${name}\\{${label}="${value}"\\} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

const pauses = (c: FakeCall) => Object.fromEntries(PAUSE_REASONS.map((r, i) => [r, c.session.playout.gaps.pauses[i]]).filter(([, n]) => n)) as Partial<Record<PauseReason, number>>;

let call: FakeCall | null = null;
afterEach(async () => {
  await call?.close();
  call = null;
});

describe('playout pauses', () => {
  it('a run of empty slots while TTS audio is still coming is one tts_audio pause, counted when audio resumes', async () => {
    const c = (call = await fakeCall());
    const before = await metric('aybiza_playout_pauses_total', 'reason', 'tts_audio');
    const beforeHist = await metric('aybiza_playout_pause_seconds_count', 'reason', 'tts_audio');
    c.session.say('Hello there, how are you?');
    c.session.flush();
    c.tts.onAudio(audio(3)); // the first frame goes out at once
    expect(c.framesSent()).toBe(1);
    c.slot();
    c.slot();
    expect(c.framesSent()).toBe(3);
    // Nothing queued, the segment's audio is not complete: three empty slots.
    c.slot();
    c.slot();
    c.slot();
    expect(c.session.playout.gaps.pausing).toBe(true);
    expect(pauses(c)).toEqual({}); // counted once it ends
    c.tts.onAudio(audio(2)); // audio again: sent at once, the pause ends
    expect(c.framesSent()).toBe(4);
    expect(pauses(c)).toEqual({ tts_audio: 1 });
    expect(c.session.playout.gaps.pauseMs[PAUSE_REASONS.indexOf('tts_audio')]).toBe(60);
    expect(await metric('aybiza_playout_pauses_total', 'reason', 'tts_audio')).toBe(before + 1);
    expect(await metric('aybiza_playout_pause_seconds_count', 'reason', 'tts_audio')).toBe(beforeHist + 1);
    // The segment completes and plays out: the silence after it is not a pause.
    c.tts.onFlushed?.(1);
    for (let i = 0; i < 10; i++) c.slot();
    c.echoMarks();
    for (let i = 0; i < 10; i++) c.slot();
    expect(c.framesSent()).toBe(5);
    expect(c.session.playout.gaps.pausing).toBe(false);
    expect(pauses(c)).toEqual({ tts_audio: 1 });
  });

  it('attributes each pause inside a reply to what it waited for', async () => {
    const c = (call = await fakeCall());
    const s = c.session;
    s.beginReply(); // the LLM is streaming
    s.say('One.');
    s.flush();
    c.tts.onAudio(audio(1));
    c.tts.onFlushed?.(1);
    // The first sentence has played; the LLM has not produced the next one.
    c.slot();
    c.slot();
    s.say('Two.');
    s.flush();
    c.tts.onAudio(audio(1));
    c.tts.onFlushed?.(1);
    expect(pauses(c)).toEqual({ llm_tokens: 1 });
    // Text said but not flushed, then a flush the stream deferred (its flush window).
    c.slot();
    s.say('Three.');
    c.slot();
    s.flush();
    c.ttsStream.flushDeferred = true;
    c.slot();
    c.slot();
    c.ttsStream.flushDeferred = false;
    c.tts.onAudio(audio(1));
    c.tts.onFlushed?.(1);
    expect(pauses(c)).toEqual({ llm_tokens: 1, flush_window: 1 }); // 1 unflushed slot, 2 in the flush window
    // A tool call runs.
    s.replyState('tool');
    c.slot();
    c.slot();
    c.slot();
    s.replyState('llm_tokens');
    s.say('Four.');
    s.flush();
    c.tts.onAudio(audio(3));
    c.tts.onFlushed?.(1);
    expect(pauses(c)).toEqual({ llm_tokens: 1, flush_window: 1, tool: 1 });
    // Output held while a suspected barge-in is checked, then resumed.
    s.pause();
    c.slot();
    c.slot();
    s.resume();
    c.slot();
    expect(pauses(c)).toEqual({ llm_tokens: 1, flush_window: 1, tool: 1, barge_in_check: 1 });
    // The reply has said everything: its end is no pause.
    s.replyState(null);
    for (let i = 0; i < 5; i++) c.slot();
    c.echoMarks();
    for (let i = 0; i < 5; i++) c.slot();
    expect(pauses(c)).toEqual({ llm_tokens: 1, flush_window: 1, tool: 1, barge_in_check: 1 });
    expect(s.playout.gaps.summary().pauses.tool).toEqual({ count: 1, ms: 60 });
  });

  it('silence before a reply starts and after the greeting is not a pause', async () => {
    const c = (call = await fakeCall());
    const s = c.session;
    s.say('Hello, thanks for calling.');
    s.flush();
    c.tts.onAudio(audio(2));
    c.tts.onFlushed?.(1);
    c.slot();
    c.slot(); // the greeting has been sent
    s.beginReply(); // the caller spoke: the reply's LLM round runs
    for (let i = 0; i < 10; i++) c.slot();
    s.say('We open at nine.');
    s.flush();
    c.tts.onAudio(audio(2));
    c.slot();
    expect(c.framesSent()).toBe(4);
    expect(pauses(c)).toEqual({});
  });
});

describe('late frames', () => {
  it('counts a frame sent more than 10 ms after its slot, by how late the slot ran', async () => {
    const c = (call = await fakeCall());
    const read = () => Promise.all(['le_25ms', 'le_50ms', 'gt_50ms'].map((s) => metric('aybiza_playout_late_frames_total', 'stall', s)));
    const before = await read();
    c.session.say('A long enough sentence to fill some frames.');
    c.session.flush();
    c.tts.onAudio(audio(8)); // first frame at once
    c.slot(5); // on time (within 10 ms)
    c.slot(12);
    c.slot(30);
    c.slot(80);
    c.slot(26);
    expect(c.session.playout.gaps.lateFrames).toEqual([1, 2, 1]);
    // A late slot with nothing to send is no late frame.
    c.tts.onFlushed?.(1);
    for (let i = 0; i < 4; i++) c.slot();
    c.echoMarks();
    c.slot(90);
    c.slot(90);
    expect(c.session.playout.gaps.lateFrames).toEqual([1, 2, 1]);
    const after = await read();
    expect(after.map((v, i) => v - before[i])).toEqual([1, 2, 1]);
    expect(c.session.playout.gaps.summary().lateFrames).toEqual({ le_25ms: 1, le_50ms: 2, gt_50ms: 1 });
  });
});
