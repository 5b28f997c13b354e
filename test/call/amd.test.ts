// Answering-machine detection on our own audio: the greeting classifier
// (src/call/amd.ts) on generated answers, and the AnswerScreen
// (src/pipeline/voicemail.ts) on a call: a person gets the agent's greeting
// only after the verdict; a machine gets the voicemail message after its
// beep (or after its greeting's closing silence), then the call hangs up;
// a machine without a message is hung up on; no verdict in time starts the
// conversation. Behaviour only: no wall-clock timing is asserted.
import { afterEach, describe, expect, it } from 'vitest';
import { ulawEncode } from '../../src/media/g711.js';
import { MediaChannel } from '../../src/media/media-channel.js';
import { GreetingClassifier, soundsLikeVoicemail, type AmdDecision } from '../../src/call/amd.js';
import { AnswerScreen, voicemailMessage } from '../../src/pipeline/voicemail.js';
import { Conversation } from '../../src/pipeline/conversation.js';
import type { AnsweredBy } from '../../src/outbound/types.js';
import { speak } from '../../bench/vad/corpus.js';
import { buildAmdCorpus } from '../../bench/amd/corpus.js';
import { audio, fakeCall, type FakeCall } from './fake-call.js';

const RATE = 8000;
const silence = (ms: number) => new Int16Array((ms * RATE) / 1000);
function tone(hz: number, ms: number, amp = 0.2): Int16Array {
  return Int16Array.from({ length: (ms * RATE) / 1000 }, (_, i) => Math.round(amp * 32767 * Math.sin((2 * Math.PI * hz * i) / RATE)));
}
function join(...parts: Int16Array[]): Uint8Array {
  const pcm = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) pcm.set(p, at), (at += p.length);
  return ulawEncode(pcm).slice();
}
const GREETING = "Hi, you've reached Anna. I can't come to the phone right now. Please leave a message after the tone.";
const hello = () => join(silence(600), speak('en-us', 170, 50, 'Hello?'), silence(5000));
const voicemail = (beep: boolean) => join(silence(500), speak('en', 160, 45, GREETING), silence(400), beep ? tone(1000, 600) : silence(0), silence(3000));

function classify(bytes: Uint8Array, clf = new GreetingClassifier()): AmdDecision | null {
  const ch = new MediaChannel();
  ch.detectBeep(true);
  for (let i = 0; i + 160 <= bytes.length; i += 160) {
    const d = clf.frame(ch.process(bytes.subarray(i, i + 160)));
    if (d) return ch.close(), d;
  }
  ch.close();
  return clf.decision;
}

describe('greeting classifier', () => {
  it('a short answer then silence is a person; a long greeting a machine; both within the analysis time', () => {
    const h = classify(hello());
    expect(h).toMatchObject({ result: 'human', cause: 'after_greeting_silence' });
    const m = classify(voicemail(false));
    expect(m?.result).toBe('machine');
    expect(['long_greeting', 'max_words']).toContain(m?.cause);
    expect(h!.atMs).toBeLessThanOrEqual(4000);
    expect(m!.atMs).toBeLessThanOrEqual(4000);
  });

  it('a beep is a machine; silence is unknown; nothing at all is unknown at the deadline', () => {
    expect(classify(join(silence(300), tone(1400, 500), silence(1000)))).toMatchObject({ result: 'machine', cause: 'beep' });
    expect(classify(join(silence(5000)))).toMatchObject({ result: 'unknown', cause: 'initial_silence' });
    const c = new GreetingClassifier({ initialSilenceMs: 10_000, totalAnalysisMs: 3000 });
    expect(classify(join(silence(5000)), c)).toMatchObject({ result: 'unknown', cause: 'max_time', atMs: 3000 });
  });

  it('the transcript breaks ties: a voicemail phrase is a machine at once, unless transcripts are off', () => {
    const c = new GreetingClassifier();
    expect(c.transcript('Hello?')).toBeNull();
    expect(c.transcript('Hi, you have reached Sam', false)).toMatchObject({ result: 'machine', cause: 'transcript' });
    expect(c.transcript('anything')).toBeNull(); // decided once
    expect(new GreetingClassifier({ transcript: false }).transcript('please leave a message')).toBeNull();
    for (const t of ['Leave me a message', 'I am not available right now', 'after the beep', 'the voicemail of', "I can't come to the phone"]) expect(soundsLikeVoicemail(t)).toBe(true);
    for (const t of ['Hello?', 'Hi, this is Sam', 'Yes, speaking', 'who is this?']) expect(soundsLikeVoicemail(t)).toBe(false);
  });

  it('gets most of a small generated set right (people and machines, noise, beeps)', () => {
    const items = buildAmdCorpus(6, 99);
    const right = items.filter((it) => classify(it.ulaw)?.result === it.truth).length;
    expect(right).toBeGreaterThanOrEqual(10);
  });
});

describe('AnswerScreen on a call', () => {
  let c: FakeCall | null = null;
  afterEach(async () => {
    await c?.close();
    c = null;
  });

  async function screened(opts: { message?: string; mode?: 'detect' | 'detect_message_end'; detect?: boolean; verdictTimeoutMs?: number } = {}) {
    c = await fakeCall();
    c.session.agent.config.greeting = 'Hi, this is the clinic calling about your appointment.';
    const spoken: string[] = [];
    c.ttsStream.speak = (t: string) => void spoken.push(t);
    const verdicts: { result: AnsweredBy; raw?: string; source: string }[] = [];
    const decisionMs: (number | undefined)[] = [];
    const screen = new AnswerScreen(c.session, {
      message: opts.message, mode: opts.mode, detect: opts.detect === false ? undefined : {}, verdictTimeoutMs: opts.verdictTimeoutMs,
      events: {
        answeredBy: (result, d) => {
          verdicts.push({ result, raw: d?.raw, source: d?.source ?? '' });
          decisionMs.push(d?.decisionMs);
        },
      },
    });
    const conv = new Conversation(c.session, { llm: { name: 'fake', async *stream() {} }, calls: c.calls });
    conv.start();
    return { screen, conv, spoken, verdicts, decisionMs };
  }

  /** Feeds audio as 20 ms frames; returns the frame index at which `when` first held. */
  function feed(bytes: Uint8Array, when?: () => boolean): number {
    let at = -1;
    for (let i = 0; i + 160 <= bytes.length; i += 160) {
      c!.session.inbound(bytes.subarray(i, i + 160));
      if (at < 0 && when?.()) at = i / 160;
    }
    return at;
  }

  it('a person: the greeting waits for the verdict, then plays; their "Hello?" is not a turn', async () => {
    const { spoken, verdicts, screen } = await screened({ message: 'Please call us back.' });
    expect(spoken).toEqual([]);
    const bytes = hello();
    const verdictAt = feed(bytes, () => verdicts.length > 0);
    expect(verdictAt).toBeGreaterThan(0);
    await Promise.resolve();
    await screen.converse;
    await new Promise((r) => setImmediate(r));
    expect(verdicts).toEqual([{ result: 'human', raw: 'after_greeting_silence', source: 'aybiza' }]);
    expect(spoken).toEqual(['Hi, this is the clinic calling about your appointment.']);
    expect(c!.turns).toEqual([]);
    expect(c!.session.isEnded).toBe(false);
    expect(c!.session.screening).toBeNull();
  });

  it('a machine: no greeting; the message after the beep, then the hang-up once it was heard', async () => {
    const { spoken, verdicts } = await screened({ message: 'This is the clinic. Please call us back at 555 0100.' });
    const bytes = voicemail(true);
    const spokenAt = feed(bytes, () => spoken.length > 0);
    const beepEndFrame = Math.floor((bytes.length - 3000 * 8) / 160);
    expect(verdicts[0]).toMatchObject({ result: 'machine', source: 'aybiza' });
    expect(spoken).toEqual(['This is the clinic. Please call us back at 555 0100.']);
    // After the beep has ended (a frame or two of detection delay), not during the greeting.
    expect(spokenAt).toBeGreaterThanOrEqual(beepEndFrame);
    expect(spokenAt).toBeLessThan(beepEndFrame + 5);
    expect(c!.session.isEnded).toBe(false);
    c!.tts.onAudio(audio(10));
    c!.tts.onFlushed?.(1);
    for (let i = 0; i < 12; i++) c!.slot();
    c!.echoMarks();
    await new Promise((r) => setImmediate(r));
    expect(c!.session.isEnded).toBe(true);
    expect(c!.turns).toEqual([]);
  });

  it('a machine without a beep: the message after the greeting\'s closing silence; detect_message_end reports then', async () => {
    const { spoken, verdicts, decisionMs } = await screened({ message: 'Call us back.', mode: 'detect_message_end' });
    const bytes = voicemail(false);
    const verdictAt = feed(bytes.subarray(0, bytes.length - 2000 * 8), () => verdicts.length > 0);
    expect(spoken).toEqual(['Call us back.']);
    expect(verdicts).toEqual([{ result: 'machine', raw: 'machine_end_silence', source: 'aybiza' }]);
    // Reported at the end of the greeting, not at the classification; decisionMs counts from the answer.
    expect(verdictAt * 20).toBeGreaterThan(6000);
    expect(decisionMs[0]).toBe((verdictAt + 1) * 20);
  });

  it('the transcript breaks the tie on a call: a voicemail phrase is a machine before the audio says so', async () => {
    const { screen, verdicts, spoken } = await screened({ message: 'Call us back.' });
    feed(join(silence(500), speak('en', 160, 45, 'Hi, this is Sam.')).subarray(0, 8 * 1200));
    expect(verdicts).toEqual([]);
    screen.transcript('Hi, this is Sam, please leave a message', false);
    expect(verdicts).toEqual([{ result: 'machine', raw: 'transcript', source: 'aybiza' }]);
    expect(spoken).toEqual([]);
  });

  it('detect_message_end: a machine that hangs up during its greeting is still reported', async () => {
    const { verdicts } = await screened({ message: 'Call us back.', mode: 'detect_message_end' });
    feed(voicemail(false).subarray(0, 8 * 3500));
    expect(verdicts).toEqual([]);
    await c!.session.end('callee hung up');
    expect(verdicts).toEqual([{ result: 'machine', raw: 'machine_end_other', source: 'aybiza' }]);
  });

  it('a machine with no message is hung up on; a carrier verdict (Twilio) drives the same screen', async () => {
    await screened({ detect: false });
    expect(c!.session.screening).not.toBeNull();
    const s = c!.session.screening as AnswerScreen;
    s.answered('machine', { source: 'twilio', raw: 'machine_start' });
    await new Promise((r) => setImmediate(r));
    expect(c!.session.isEnded).toBe(true);
  });

  it('the message takes the dial\'s variables; a placeholder without one is dropped, not spoken', () => {
    expect(voicemailMessage({ voicemail: { message: 'Hi {{name}}, your {{thing}} is ready.' }, variables: { name: 'Anna' } })).toBe('Hi Anna, your is ready.');
    expect(voicemailMessage({ voicemail: { message: 'Call {{ name }} back.' }, variables: { name: '{{x}}' } })).toBe('Call {{x}} back.');
    expect(voicemailMessage({})).toBeUndefined();
  });

  it('no verdict in time: unknown, and the conversation starts', async () => {
    const { spoken, verdicts } = await screened({ detect: false, verdictTimeoutMs: 30 });
    await new Promise((r) => setTimeout(r, 80));
    expect(verdicts).toEqual([{ result: 'unknown', raw: 'timeout', source: 'twilio' }]);
    expect(spoken).toHaveLength(1);
  });
});
