// Metering in the provider clients, against the emulators over real sockets
// through the official SDKs: what a call's meter counts equals what the
// service received (STT audio, replays after a drop included; TTS text) or
// reported (Bedrock's ConverseStream metadata usage, parsed by the SDK).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { BedrockLlm, estimateTokens } from '../../src/providers/bedrock/llm.js';
import { deepgramClient } from '../../src/providers/deepgram/client.js';
import { DeepgramStt } from '../../src/providers/deepgram/stt.js';
import { FluxStt } from '../../src/providers/deepgram/flux.js';
import { DeepgramTts } from '../../src/providers/deepgram/tts.js';
import type { LlmEvent } from '../../src/providers/types.js';
import { CallUsage } from '../../src/usage/meter.js';
import { priceCall } from '../../src/usage/cost.js';
import { loadPrices } from '../../src/usage/prices.js';
import { sendFrames, sleep, utteranceFrames, waitFor } from '../providers/helpers.js';

describe('usage metering in the provider clients (emulators, official SDKs)', () => {
  let emu: Emulators;
  let llm: BedrockLlm;
  let client: ReturnType<typeof deepgramClient>;
  beforeAll(async () => {
    emu = await startEmulators({
      bedrock: { ttftMs: 20, tokensPerSecond: 2000 },
      deepgram: { sttFinalDelayMs: 50, ttsFirstByteMs: 10, ttsRealtimeFactor: 0.01, phrases: ['Book a table for two.'] },
    });
    llm = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, models: ['model-m'], ttftDeadlineMs: 2000 });
    client = deepgramClient({ apiKey: 'test-key', url: emu.deepgramUrl });
  });
  afterAll(async () => {
    llm?.client.destroy();
    await emu?.close();
  });

  it('Bedrock: the metadata usage the SDK parsed is what the meter counts, per model; it grows with the prompt', async () => {
    const usage = new CallUsage();
    const events: LlmEvent[] = [];
    const short = { system: 'Be brief.', messages: [{ role: 'user' as const, content: [{ text: 'Hello there.' }] }] };
    const long = { system: 'Be brief. '.repeat(200), messages: [{ role: 'user' as const, content: [{ text: 'Hello there, I have a long question about your opening hours.' }] }] };
    for (const req of [short, long]) for await (const e of llm.stream({ ...req, usage })) events.push(e);
    const meta = events.filter((e): e is Extract<LlmEvent, { type: 'metadata' }> => e.type === 'metadata');
    expect(meta).toHaveLength(2);
    expect(meta[1].inputTokens! - meta[0].inputTokens!).toBeGreaterThan(400); // 1,800 more characters of system prompt
    expect(meta[0].outputTokens).toBeGreaterThan(5);
    const sent = emu.bedrock.usageSent.get('model-m')!;
    const m = usage.metered('twilio', 'inbound', 0).llm;
    expect(m).toEqual([{ model: 'model-m', inputTokens: sent.inputTokens, outputTokens: sent.outputTokens, requests: 2, estimatedRequests: 0 }]);
    expect(m[0].inputTokens).toBe(meta[0].inputTokens! + meta[1].inputTokens!);
    expect(m[0].outputTokens).toBe(meta[0].outputTokens! + meta[1].outputTokens!);
  });

  it('Bedrock: a stream aborted before its end (a barge-in) reports no usage and the meter counts none', async () => {
    const usage = new CallUsage();
    const ac = new AbortController();
    const before = emu.bedrock.usageSent.get('model-m')?.responses ?? 0;
    setTimeout(() => ac.abort(), 5); // inside the 20 ms to the first token
    for await (const _ of llm.stream({ system: 's', messages: [{ role: 'user', content: [{ text: 'Tell me everything about your menu please.' }] }], usage }, ac.signal)) {
      /* nothing arrives */
    }
    await sleep(50);
    expect(usage.metered('sip', 'inbound', 0).llm).toEqual([]);
    expect(emu.bedrock.usageSent.get('model-m')?.responses ?? 0).toBe(before);
  });

  it('Bedrock: a reply cut after it began (a barge-in) is billed by the service, so it is counted as an estimate from its characters', async () => {
    const usage = new CallUsage();
    const ac = new AbortController();
    const text = 'Tell me everything about your menu please, starters first.';
    let first = '';
    for await (const e of llm.stream({ system: 'Be brief.', messages: [{ role: 'user', content: [{ text }] }], usage }, ac.signal)) {
      if (e.type !== 'text') continue;
      first = e.text;
      ac.abort(); // the caller spoke over the first words
      break;
    }
    expect(first.length).toBeGreaterThan(0);
    // Every string of the request (system, the role, the text) / 4, rounded up; what arrived / 4.
    const input = Math.ceil(('Be brief.'.length + 'user'.length + text.length) / 4);
    expect(estimateTokens({ modelId: 'x', system: [{ text: 'Be brief.' }], messages: [{ role: 'user', content: [{ text }] }] })).toBe(input);
    expect(usage.metered('twilio', 'inbound', 0).llm).toEqual([{ model: 'model-m', inputTokens: input, outputTokens: Math.ceil(first.length / 4), requests: 1, estimatedRequests: 1 }]);
    // Priced like reported tokens, and the line says how many of its requests were estimated.
    const { usage: lines } = priceCall(loadPrices(undefined), usage.metered('twilio', 'inbound', 1000));
    expect(lines.llm[0]).toMatchObject({ model: 'model-m', requests: 1, estimatedRequests: 1 });
  });

  it('Nova-3: the audio streamed is what Deepgram received; a replay after a dropped socket is counted again', async () => {
    const usage = new CallUsage();
    const before = emu.deepgram.stats.sttAudioBytes;
    emu.deepgram.faults.sttDropAfterMs = 700;
    const finals: string[] = [];
    const reconnects: number[] = [];
    const s = await new DeepgramStt(client, false).open({ usage }, { onTranscript: (t) => t.isFinal && t.text && finals.push(t.text), onReconnected: (r) => reconnects.push(r.replayedMs) });
    const frames = utteranceFrames('this sentence is long enough to be cut in the middle of it', 1200);
    await sendFrames((f) => s.send(f), frames, 3);
    await waitFor(() => finals.length > 0, 10_000, 'final after reconnect');
    await s.close();
    await sleep(100);
    expect(reconnects).toHaveLength(1);
    expect(usage.sttModel).toBe('nova-3');
    // What the socket accepted: the messages in flight when it dropped (at most two batches, 200 ms) never reached Deepgram.
    const received = emu.deepgram.stats.sttAudioBytes - before;
    expect(usage.sttAudioBytes).toBeGreaterThanOrEqual(received);
    expect(usage.sttAudioBytes - received).toBeLessThanOrEqual(1600);
    // More than the call's audio: the replay is streamed (and billed) twice.
    expect(usage.sttAudioBytes).toBeGreaterThan(frames.length * 160);
  });

  it('Flux: every 80 ms message counted, as Deepgram received them', async () => {
    const usage = new CallUsage();
    const before = emu.deepgram.stats.fluxAudioBytes;
    const s = await new FluxStt(client).open({ model: 'flux-general-en', usage }, { onTranscript: () => {}, onTurn: () => {} });
    await sendFrames((f) => s.send(f), utteranceFrames('book a table', 400));
    await s.close();
    await sleep(100);
    expect(usage.sttModel).toBe('flux-general-en');
    expect(usage.sttAudioBytes).toBeGreaterThan(0);
    expect(usage.sttAudioBytes).toBe(emu.deepgram.stats.fluxAudioBytes - before);
  });

  it('Nova-3 without a drop: exactly what Deepgram received', async () => {
    const usage = new CallUsage();
    const before = emu.deepgram.stats.sttAudioBytes;
    const s = await new DeepgramStt(client, true).open({ usage }, { onTranscript: () => {} });
    const frames = utteranceFrames('a short one here', 3000);
    // With the silence gate on, the long quiet tail is held back: less is streamed than the call's audio.
    for (let i = 0; i < frames.length; i++) {
      s.send(frames[i], false, i < frames.length - 150);
      if (i % 5 === 4) await sleep(1);
    }
    await s.close();
    await sleep(100);
    expect(usage.sttAudioBytes).toBe(emu.deepgram.stats.sttAudioBytes - before);
    expect(usage.sttAudioBytes).toBeLessThan(frames.length * 160);
  });

  it('Aura: the characters of every Speak message, as Deepgram received them', async () => {
    const tts = new DeepgramTts(client);
    const usage = new CallUsage();
    const before = emu.deepgram.stats.ttsCharacters;
    let flushed = 0;
    const s = await tts.open({ voice: 'aura-2-asteria-en', usage }, { onAudio: () => {}, onFlushed: () => flushed++ });
    const texts = ['Hello there.', 'We open at nine ', 'and close at ten.'];
    for (const t of texts) s.speak(t);
    s.flush();
    await waitFor(() => flushed === 1, 5000, 'Flushed');
    await s.close();
    await tts.close();
    expect(usage.ttsModel).toBe('aura-2-asteria-en');
    // Each Speak ends in whitespace (the stream adds a space where the text has none).
    expect(usage.ttsCharacters).toBe('Hello there. We open at nine and close at ten. '.length);
    expect(usage.ttsCharacters).toBe(emu.deepgram.stats.ttsCharacters - before);
  });
});
