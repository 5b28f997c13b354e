// The flush policy of Conversation.speak(): a reply's later sentences are
// flushed while the model is still streaming (synthesis stays ahead of
// playback), not held for the end of the reply. A conversation against the
// emulators through the real Twilio protocol, with a model slower than speech.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import type { CallSession } from '../../src/call/session.js';
import type { LanguageModel, LlmEvent, LlmRequest } from '../../src/providers/types.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import { waitFor } from '../providers/helpers.js';
import type { Conversation } from '../../src/pipeline/conversation.js';

const SENTENCES = ['First I need a table.', 'It is for four people.', 'We will come at eight.', 'One of us is vegetarian.', 'A window seat would be nice.', 'Please confirm by text.'];

describe('flush policy', () => {
  let t: TestApp;
  beforeAll(async () => {
    // About two sentences of tokens a second: the model stays ahead of the voice, but not by the whole reply.
    t = await startTestApp({ ...IN_PROCESS, EMULATOR_PHRASES: SENTENCES.join(' '), EMULATOR_LLM_TOKENS_PER_S: '10' }, { greeting: '' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a long reply has later sentences flushed before the model\'s stream ends', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await waitFor(() => t.app.twilio.sessions.size > 0 && 'conversation' in [...t.app.twilio.sessions.values()].pop()!, 10_000, 'the call');
    const session = [...t.app.twilio.sessions.values()].pop()! as CallSession;
    const conv = (session as unknown as { conversation: Conversation }).conversation;
    // Watch when the model's stream ends and when the session flushes.
    const inner = conv as unknown as { opts: { llm: LanguageModel } };
    const llm = inner.opts.llm;
    let streamEnded = false;
    inner.opts = { ...inner.opts, llm: { name: llm.name, stream: (req: LlmRequest, signal?: AbortSignal) => watched(llm.stream(req, signal)) } };
    async function* watched(events: AsyncIterable<LlmEvent>): AsyncIterable<LlmEvent> {
      streamEnded = false;
      yield* events;
      streamEnded = true;
    }
    const flushes: { beforeStreamEnd: boolean }[] = [];
    const flush = session.flush.bind(session);
    session.flush = () => {
      const id = flush();
      if (id !== null) flushes.push({ beforeStreamEnd: !streamEnded });
      return id;
    };
    let requested = false;
    const stream = inner.opts.llm.stream;
    inner.opts.llm.stream = (req, signal) => {
      requested = true;
      return stream(req, signal);
    };
    c.speak(synthesize('I need a table for four at eight please'));
    await waitFor(() => requested && streamEnded, 30_000, 'the model to finish its reply');
    // Before: the first two sentences at once, everything else after the stream ended.
    expect(flushes.filter((f) => f.beforeStreamEnd).length).toBeGreaterThanOrEqual(3);
    await c.hangup(); // the rest of the reply need not be heard
  });
});
