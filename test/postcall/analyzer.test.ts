// The post-call analyzer through the real Bedrock SDK (ConverseCommand)
// against the emulator's Converse: the request's shape (forced tool whose
// input schema wraps the agent's schema), every field of the deterministic
// answer, an invalid answer retried once with its errors then kept as an
// error, and the agent schema rules the admin API enforces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { BedrockEmulator } from '../../src/providers/emulators/bedrock.js';
import { analysisRequest, analyze, ANALYSIS_TOOL, toolSchema } from '../../src/postcall/analyzer.js';
import { checkAnalysisConfig, compileDataSchema } from '../../src/postcall/schema.js';
import { memoryEcho } from '../../src/providers/emulators/bedrock-converse.js';
import { memoryPrompt } from '../../src/postcall/memory.js';
import type { AgentConfig } from '../../src/store/types.js';

const SCHEMA = {
  type: 'object',
  required: ['partySize', 'name'],
  additionalProperties: false,
  properties: { partySize: { type: 'integer', minimum: 1, maximum: 20 }, name: { type: 'string', maxLength: 100 }, outdoor: { type: 'boolean' } },
};
const agent = (schema: Record<string, unknown> = SCHEMA): AgentConfig => ({
  name: 'A', prompt: 'p', analysis: { outcomes: ['booked', 'question', 'other'], rubric: 'Polite and brief.', schema },
});
const TRANSCRIPT = [
  { speaker: 'agent' as const, text: 'Hello! How can I help?' },
  { speaker: 'caller' as const, text: 'I would like to book a table for two. My name is Ada.' },
  { speaker: 'agent' as const, text: 'Done, a table for two.' },
  { speaker: 'caller' as const, text: 'Thanks, that is great.' },
];

describe('post-call analyzer (Converse through the SDK, emulator)', () => {
  let emu: BedrockEmulator;
  let client: BedrockRuntimeClient;
  beforeAll(async () => {
    emu = new BedrockEmulator({ ttftMs: 1, tokensPerSecond: 1000 });
    const endpoint = await emu.listenOn();
    client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1, requestHandler: new NodeHttpHandler() });
  });
  afterAll(async () => {
    client?.destroy();
    await emu?.close();
  });

  it('asks for a forced tool call whose input schema holds the fixed fields and the agent schema as data', () => {
    const req = analysisRequest({ model: 'm', config: agent(), transcript: TRANSCRIPT });
    expect(req.toolConfig?.toolChoice).toEqual({ tool: { name: ANALYSIS_TOOL } });
    const json = req.toolConfig!.tools![0].toolSpec!.inputSchema!.json as { required: string[]; properties: Record<string, unknown> };
    expect(json.required).toEqual(['summary', 'sentiment', 'qualityScore', 'outcome', 'data']);
    expect(json.properties.data).toEqual(SCHEMA);
    expect(json.properties.outcome).toMatchObject({ enum: ['booked', 'question', 'other'] });
    expect(req.system![0].text).toContain('Polite and brief.');
    expect((req.messages![0].content![0] as { text: string }).text).toContain('Caller: I would like to book a table for two.');
    // Memory-only agents: no outcome, no data.
    expect((toolSchema({ name: 'A', prompt: 'p' }) as { required: string[] }).required).toEqual(['summary', 'sentiment', 'qualityScore']);
  });

  it('stores every field of a valid answer, with the token usage', async () => {
    const before = emu.stats.converseRequests;
    const a = await analyze(client, { model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0', config: agent(), transcript: TRANSCRIPT });
    expect(a.error).toBeUndefined();
    expect(a.summary).toBe('The caller said: I would like to book a table for two. My name is Ada. Thanks, that is great.');
    expect(a.sentiment).toEqual({ label: 'positive', score: 0.6 });
    expect(a.outcome).toBe('booked');
    expect(a.qualityScore).toBe(70); // 50 + 10 per agent line
    expect(a.data).toEqual({ partySize: 2, name: 'I would like to book a table for two. My name is Ada.', outdoor: false });
    expect(a.usage).toMatchObject({ model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0', requests: 1 });
    expect(a.usage.inputTokens).toBeGreaterThan(50);
    expect(a.usage.outputTokens).toBeGreaterThan(10);
    expect(emu.stats.converseRequests).toBe(before + 1);
  });

  it('an outcome not found in the transcript is the last listed; sentiment follows the caller', async () => {
    const a = await analyze(client, { model: 'm', config: agent(), transcript: [{ speaker: 'caller', text: 'This is terrible, I am upset.' }] });
    expect(a.outcome).toBe('other');
    expect(a.sentiment).toEqual({ label: 'negative', score: -0.6 });
  });

  it('an answer that does not validate is retried once with the errors, then taken', async () => {
    const a = await analyze(client, { model: 'm', config: agent({ ...SCHEMA, description: 'emulator:invalid-once' }), transcript: TRANSCRIPT });
    expect(a.error).toBeUndefined();
    expect(a.usage.requests).toBe(2);
    expect(a.data).toMatchObject({ partySize: 2 });
  });

  it('an answer still invalid after the retry is stored as an error, keeping the fields that validated', async () => {
    const a = await analyze(client, { model: 'm', config: agent({ ...SCHEMA, description: 'emulator:invalid-always' }), transcript: TRANSCRIPT });
    expect(a.usage.requests).toBe(2);
    expect(a.error).toMatch(/did not validate after a retry: data: \/ must be object/);
    expect(a.data).toBeNull();
    expect(a.outcome).toBe('booked');
    expect(a.summary).toContain('The caller said');
  });

  it('service errors are thrown (the queue retries them)', async () => {
    emu.faults.throttleNext = 1;
    await expect(analyze(client, { model: 'm', config: agent(), transcript: TRANSCRIPT })).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('agent schemas: compiled and bounded; unusable ones are a 422 naming analysis.schema', () => {
    expect(() => compileDataSchema(SCHEMA)).not.toThrow();
    const bad = (schema: Record<string, unknown>) => {
      try {
        checkAnalysisConfig({ analysis: { outcomes: ['a'], schema } });
        return null;
      } catch (err) {
        expect((err as { status: number }).status).toBe(422);
        return (err as Error).message;
      }
    };
    expect(bad(SCHEMA)).toBeNull();
    expect(bad({ type: 'array' })).toMatch(/^analysis\.schema: must have "type": "object"/);
    expect(bad({ type: 'object', properties: { a: { type: 'strin' } } })).toMatch(/^analysis\.schema: /);
    expect(bad({ type: 'object', requierd: ['a'] })).toMatch(/unknown keyword/);
    expect(bad({ type: 'object', properties: { a: { type: 'string', pattern: '(a+)+$' } } })).toMatch(/pattern is not supported/);
    expect(bad({ type: 'object', properties: { a: { $ref: 'https://example.com/s.json' } } })).toMatch(/\$ref may only point inside/);
    expect(bad({ type: 'object', properties: { a: { type: 'array', uniqueItems: true, items: { type: 'object' } } } })).toMatch(/unsafe/);
    let deep: Record<string, unknown> = { type: 'object' };
    for (let i = 0; i < 10; i++) deep = { type: 'object', properties: { x: deep } };
    expect(bad(deep)).toMatch(/nested deeper/);
    expect(bad({ type: 'object', description: 'x'.repeat(17_000) })).toMatch(/larger than 16 KiB/);
    // A $ref loop with nothing in between overflows Ajv's compiler: refused, not a crash.
    expect(bad({ type: 'object', $defs: { a: { $ref: '#/$defs/a' } }, properties: { a: { $ref: '#/$defs/a' } } })).toMatch(/^analysis\.schema: /);
    expect(bad({ type: 'object', properties: { a: { $ref: '#/nope' } } })).toMatch(/can't resolve reference/);
    // A property named like a forbidden keyword is a name, not the keyword.
    expect(bad({ type: 'object', properties: { pattern: { type: 'string' } } })).toBeNull();
    expect(() => checkAnalysisConfig({ analysis: { outcomes: ['Booked', 'booked'] } })).toThrow(/must not repeat/);
  });

  it('the emulated voice model echoes the memory section when asked "do you remember"', () => {
    const system = `You are helpful.${memoryPrompt([{ callId: 'c1', summary: 'The caller booked a table for two.', createdAt: '2026-11-30T10:00:00.000Z' }])}`;
    expect(memoryEcho(system, 'Do you remember me?')).toBe('Yes, I remember. The caller booked a table for two.');
    expect(memoryEcho(system, 'What time is it?')).toBeNull();
    expect(memoryEcho('You are helpful.', 'Do you remember me?')).toBeNull();
    // Bounded to about 1,000 tokens: the newest summaries that fit.
    const many = Array.from({ length: 40 }, (_, i) => ({ callId: `c${i}`, summary: `Summary ${i} ${'x'.repeat(200)}`, createdAt: '2026-11-30T10:00:00.000Z' }));
    const prompt = memoryPrompt(many);
    expect(prompt.length).toBeLessThanOrEqual(4200);
    expect(prompt).toContain('Summary 0 ');
    expect(prompt).not.toContain('Summary 39 ');
  });
});
