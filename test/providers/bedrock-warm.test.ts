// Warming the Bedrock connection (issue 13 item 18): no model invocation,
// at most one warm-up request per connection, whatever the number of calls.
// The emulator counts ConverseStream invocations and other requests apart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { BedrockLlm } from '../../src/providers/bedrock/llm.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import { waitFor } from './helpers.js';

describe('Bedrock warm-up', () => {
  let emu: Emulators;
  beforeAll(async () => {
    emu = await startEmulators({ bedrock: { ttftMs: 20, tokensPerSecond: 400 } });
  });
  afterAll(async () => {
    await emu?.close();
  });

  it('opens one keep-alive connection without invoking a model, however often it is asked, and the first turn reuses it', async () => {
    const s = emu.bedrock.stats;
    const before = { requests: s.requests, other: s.otherRequests, conns: s.connections };
    const llm = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, models: ['model-a'], ttftDeadlineMs: 2000 });
    try {
      await Promise.all([llm.warm(), llm.warm(), llm.warm()]); // calls starting together
      for (let i = 0; i < 10; i++) await llm.warm(); // and one after another
      expect(s.requests - before.requests).toBe(0);
      expect(s.otherRequests - before.other).toBe(1);
      expect(s.connections - before.conns).toBe(1);
      for await (const _ of llm.stream({ messages: [{ role: 'user', content: [{ text: 'Hello' }] }] })) void _;
      expect(s.requests - before.requests).toBe(1);
      expect(s.connections - before.conns).toBe(1); // the turn used the warmed connection
    } finally {
      llm.client.destroy();
    }
  });
});

describe('calls do not invoke the model to warm', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ...IN_PROCESS }); // reads the Bedrock emulator's request log
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('N calls that end after the greeting cause zero ConverseStream requests', async () => {
    const emulators = (t.app.providers as unknown as { emulators: Emulators }).emulators;
    const s = emulators.bedrock.stats;
    for (let i = 0; i < 4; i++) {
      const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
      expect((await c.dial()).outcome).toBe('connected');
      await waitFor(() => c.stats.frames > 20, 10_000);
      await c.hangup();
      await waitFor(() => t.app.twilio.sessions.size === 0, 10_000);
    }
    // Since the server started (its start-up warm-up included): no model invoked, one warm-up request.
    expect(s.requests).toBe(0);
    expect(s.otherRequests).toBeLessThanOrEqual(1);
  });
});
