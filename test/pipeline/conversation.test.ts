// Conversations against the emulators, through the real Twilio protocol.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { registry } from '../../src/metrics/index.js';
import { IN_PROCESS, startTestApp, type TestApp } from '../helpers/app.js';
import { agentQuiet, conversationOf, waitFor } from '../helpers/calls.js';


describe('conversation pipeline', () => {
  let t: TestApp;
  let tool: http.Server;
  let toolCalls: unknown[] = [];
  beforeAll(async () => {
    tool = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        toolCalls.push({ auth: req.headers.authorization, body: JSON.parse(body) });
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'shipped' })), 50);
      });
    });
    await new Promise<void>((r) => tool.listen(0, '127.0.0.1', r));
    const port = (tool.address() as { port: number }).port;
    t = await startTestApp(
      // The tool server is on loopback: allowed only with the development flag.
      { EMULATOR_PHRASES: 'I would like to book a table.|Please lookup_order 42 for me.|Okay goodbye.', TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', ...IN_PROCESS },
      { tools: [{ name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { request: { type: 'string' } } }, url: `http://127.0.0.1:${port}/orders`, authHeader: 'Bearer tool-secret', timeoutMs: 2000 }] },
    );
  });
  afterAll(async () => {
    await t?.stop();
    tool?.close();
  });

  it('holds a multi-turn conversation with a tool round trip and end_call, and stores every turn', async () => {
    toolCalls = [];
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c); // greeting done
    const conv = conversationOf(t);
    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(conv.turns[0]).toMatchObject({ seq: 1, user: 'I would like to book a table.', interrupted: false });
    expect(conv.turns[0].agent).toContain('You said: I would like to book a table');
    await agentQuiet(c);
    c.speak(synthesize('please look up my order forty two'));
    await waitFor(() => conv.turns.length === 2, 20_000, 'turn 2 (tool)');
    expect(toolCalls).toEqual([{ auth: 'Bearer tool-secret', body: { request: 'Please lookup_order 42 for me.' } }]);
    expect(conv.turns[1].agent).toContain('{"status":"shipped"}');
    await agentQuiet(c);
    c.speak(synthesize('okay goodbye'));
    const code = await c.waitClosed();
    expect(code).toBe(1000); // the agent hung up after saying goodbye
    expect(conv.turns[2].agent).toMatch(/goodbye/i);
    const rec = (await t.app.store.calls.findCall('twilio', c.callSid))!;
    await waitFor(() => true);
    const detail = await t.app.store.calls.detail(null, rec.id);
    expect(detail.turns.map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(detail.turns[0].latencies).toHaveProperty('e2e');
    expect(detail.turns[0].latencies).toHaveProperty('server');
    expect(detail.endReason).toBe('agent ended the call');
    expect(detail.transcript.length).toBeGreaterThanOrEqual(6);
    const history = conv.history.map((m) => m.role).join(',');
    expect(history.startsWith('user,assistant')).toBe(true);
  });
});

describe('barge-in', () => {
  let t: TestApp;
  beforeAll(async () => {
    // A slow talker: long replies so there is time to interrupt.
    t = await startTestApp({ EMULATOR_PHRASES: 'Tell me everything about the menu.|Stop, just the prices.|Thanks.', EMULATOR_LLM_TOKENS_PER_S: '30', EMULATOR_TTS_RTF: '0.3', ...IN_PROCESS });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a barge-in clears the audio and keeps only what the caller heard in the history', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    const before = Number(/aybiza_barge_ins_total (\d+)/.exec(await registry.metrics())?.[1] ?? 0);
    c.speak(synthesize('tell me everything about the menu'));
    // wait until the agent has been talking for a while, then talk over it
    const framesBefore = c.stats.frames;
    await waitFor(() => c.stats.frames - framesBefore > 60, 20_000, 'agent reply audio');
    c.speak(synthesize('stop stop just the prices please'));
    await waitFor(() => conv.turns.length >= 1, 20_000, 'interrupted turn');
    const turn = conv.turns[0];
    expect(turn.interrupted).toBe(true);
    const full = 'You said: Tell me everything about the menu. I can help with that. What else would you like to know?';
    expect(turn.agent.length).toBeGreaterThan(0);
    expect(full.startsWith(turn.agent.replace(/\s+/g, ' '))).toBe(true);
    expect(turn.agent.length).toBeLessThan(full.length);
    await waitFor(() => c.stats.clears >= 1, 5000, 'clear reaches the caller');
    const assistant = conv.history.find((m) => m.role === 'assistant')!;
    expect(assistant.content).toEqual([{ text: turn.agent }]);
    expect(Number(/aybiza_barge_ins_total (\d+)/.exec(await registry.metrics())?.[1])).toBe(before + 1);
    await waitFor(() => conv.turns.length >= 2, 20_000, 'reply to the interruption');
    expect(conv.turns[1].user).toBe('Stop, just the prices.');
    await c.hangup();
  });

  it('a false interruption (a short noise, no words) does not throw the reply away', async () => {
    await t.stop();
    // The recogniser hears only a backchannel in the noise.
    t = await startTestApp({ EMULATOR_PHRASES: 'Tell me everything about the menu.|Mm-hmm.', EMULATOR_LLM_TOKENS_PER_S: '30', EMULATOR_TTS_RTF: '0.3', ...IN_PROCESS });
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    c.speak(synthesize('tell me everything about the menu'));
    const framesBefore = c.stats.frames;
    await waitFor(() => c.stats.frames - framesBefore > 40, 20_000, 'agent reply audio');
    // 120 ms of noise: a cough
    c.speak(synthesize('mm').subarray(0, 960));
    await waitFor(() => conv.turns.length >= 1, 30_000, 'reply finished');
    expect(conv.turns[0].interrupted).toBe(false);
    expect(conv.turns[0].agent).toContain('What else would you like to know?');
    expect(c.stats.clears).toBe(0);
    await c.hangup();
  });
});

describe('providers down', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ EMULATOR_PHRASES: 'Hello?', ...IN_PROCESS });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('apologises and hangs up cleanly when the language model stays down', async () => {
    const emu = (t.app.providers as unknown as { emulators: { bedrock: { faults: { throttleNext?: number } } } }).emulators;
    emu.bedrock.faults.throttleNext = 1000;
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const heardBefore = c.stats.nonSilent;
    c.speak(synthesize('hello is anybody there'));
    expect(await c.waitClosed()).toBe(1000);
    expect(c.stats.nonSilent - heardBefore).toBeGreaterThan(20); // the apology was spoken
    const rec = (await t.app.store.calls.findCall('twilio', c.callSid))!;
    await waitFor(() => true);
    expect((await t.app.store.calls.detail(null, rec.id)).endReason).toBe('provider failure');
    emu.bedrock.faults.throttleNext = 0;
  });
});
