// The official Bedrock runtime client, through our LanguageModel, against the
// emulator over real sockets (HTTP/1.1 keep-alive, and the SDK's default h2c).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockRuntimeClient, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { BedrockLlm } from '../../src/providers/bedrock/llm.js';
import type { ChatMessage, LlmEvent } from '../../src/providers/types.js';
import { sleep, waitFor } from './helpers.js';

const TOOLS = [{ name: 'lookup_order', description: 'Find an order', inputSchema: { type: 'object', properties: { request: { type: 'string' } } } }];

async function collect(it: AsyncIterable<LlmEvent>): Promise<LlmEvent[]> {
  const out: LlmEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('Bedrock client against the emulator', () => {
  let emu: Emulators;
  let llm: BedrockLlm;
  beforeAll(async () => {
    emu = await startEmulators({ bedrock: { ttftMs: 30, tokensPerSecond: 400 } });
    llm = new BedrockLlm({
      region: 'us-east-1',
      endpoint: emu.bedrockUrl,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      models: ['model-a', 'model-b'],
      ttftDeadlineMs: 1500,
    });
  });
  afterAll(async () => {
    llm?.client.destroy();
    await emu?.close();
  });

  it('streams text with the system prompt and history, reusing one keep-alive connection', async () => {
    const conns = emu.bedrock.stats.connections;
    const messages: ChatMessage[] = [{ role: 'user', content: [{ text: 'What are your opening hours?' }] }];
    const ev = await collect(llm.stream({ system: 'Be brief.', messages }));
    const text = ev.filter((e) => e.type === 'text').map((e) => (e as { text: string }).text).join('');
    expect(text).toContain('You said: What are your opening hours');
    expect(ev.filter((e) => e.type === 'text').length).toBeGreaterThan(3);
    expect(ev.find((e) => e.type === 'stop')).toEqual({ type: 'stop', reason: 'end_turn' });
    expect(ev.find((e) => e.type === 'metadata')).toMatchObject({ model: 'model-a', attempts: 1 });
    await collect(llm.stream({ system: 'Be brief.', messages }));
    await collect(llm.stream({ system: 'Be brief.', messages }));
    expect(emu.bedrock.stats.connections - conns).toBe(1);
  });

  it('completes a tool-use round trip', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: [{ text: 'Please lookup order 42.' }] }];
    const first = await collect(llm.stream({ system: 's', messages, tools: TOOLS }));
    const use = first.find((e) => e.type === 'toolUse') as Extract<LlmEvent, { type: 'toolUse' }>;
    expect(use).toMatchObject({ name: 'lookup_order', input: { request: 'Please lookup order 42.' } });
    expect(first.find((e) => e.type === 'stop')).toEqual({ type: 'stop', reason: 'tool_use' });
    const preText = first.filter((e) => e.type === 'text').map((e) => (e as { text: string }).text).join('');
    messages.push({ role: 'assistant', content: [{ text: preText }, { toolUse: { toolUseId: use.toolUseId, name: use.name, input: use.input } }] });
    messages.push({ role: 'user', content: [{ toolResult: { toolUseId: use.toolUseId, content: [{ json: { status: 'shipped' } }], status: 'success' } }] });
    const second = await collect(llm.stream({ system: 's', messages, tools: TOOLS }));
    const text = second.filter((e) => e.type === 'text').map((e) => (e as { text: string }).text).join('');
    expect(text).toContain('{"status":"shipped"}');
    expect(second.find((e) => e.type === 'stop')).toEqual({ type: 'stop', reason: 'end_turn' });
  });

  it('abort mid-stream stops the server-side stream', async () => {
    const slow = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'l', secretAccessKey: 'l' }, models: ['m'], ttftDeadlineMs: 5000 });
    const before = emu.bedrock.stats.streamsAborted;
    emu.bedrock.opts.tokensPerSecond = 20;
    const ac = new AbortController();
    const got: LlmEvent[] = [];
    try {
      for await (const e of slow.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'tell me a long story about everything' }] }] }, ac.signal)) {
        got.push(e);
        if (got.length === 2) ac.abort();
      }
    } finally {
      emu.bedrock.opts.tokensPerSecond = 400;
    }
    await waitFor(() => emu.bedrock.stats.streamsAborted > before, 3000, 'server saw the abort');
    expect(got.filter((e) => e.type === 'stop')).toEqual([]);
    slow.client.destroy();
  });

  it('a consumer that stops reading without aborting (break) stops the server-side stream too', async () => {
    const slow = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'l', secretAccessKey: 'l' }, models: ['m'], ttftDeadlineMs: 5000 });
    const before = emu.bedrock.stats.streamsAborted;
    emu.bedrock.opts.tokensPerSecond = 20;
    try {
      for await (const e of slow.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'tell me a long story about everything' }] }] })) {
        if (e.type === 'text') break;
      }
      await waitFor(() => emu.bedrock.stats.streamsAborted > before, 3000, 'server saw the stream closed');
    } finally {
      emu.bedrock.opts.tokensPerSecond = 400;
      slow.client.destroy();
    }
  });

  it('429 throttling → the next model in the chain answers', async () => {
    emu.bedrock.faults.throttleModels = ['model-a'];
    try {
      const ev = await collect(llm.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
      expect(ev.find((e) => e.type === 'metadata')).toMatchObject({ model: 'model-b', attempts: 2 });
      expect(ev.some((e) => e.type === 'text')).toBe(true);
    } finally {
      emu.bedrock.faults.throttleModels = [];
    }
  });

  it('a missed time-to-first-token deadline falls back too', async () => {
    const quick = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'l', secretAccessKey: 'l' }, models: ['slow-model', 'model-b'], ttftDeadlineMs: 300 });
    emu.bedrock.faults.slowFirstByteMs = 2000;
    const ev = await collect(quick.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
    expect(ev.find((e) => e.type === 'metadata')).toMatchObject({ model: 'model-b', attempts: 2 });
    quick.client.destroy();
  });

  it('a malformed frame (bad CRC) surfaces as an error, not garbage text', async () => {
    emu.bedrock.faults.malformedFrame = true;
    await expect(collect(llm.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'hello there' }] }] }))).rejects.toThrow();
  });

  it('the SDK default HTTP/2 (h2c) handler works against the same port', async () => {
    const client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'l', secretAccessKey: 'l' }, maxAttempts: 1 });
    const resp = await client.send(new ConverseStreamCommand({ modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0', messages: [{ role: 'user', content: [{ text: 'over h2' }] }] }));
    let text = '';
    for await (const e of resp.stream!) text += e.contentBlockDelta?.delta?.text ?? '';
    expect(text).toContain('over h2');
    client.destroy();
    await sleep(10);
  });
});
