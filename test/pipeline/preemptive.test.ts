// Preemptive generation (issue 16 need 2): the LLM starts on an early
// end-of-turn signal (Flux EagerEndOfTurn; for Nova-3 a stable text while
// our VAD hears silence), nothing of it is played before the turn is
// confirmed, it is kept when the confirmed words match and aborted
// otherwise, and tools never run before the confirmation. Against the
// emulators, through the Twilio protocol and the official Flux SDK.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import type { Emulators } from '../../src/providers/emulators/index.js';
import { preemptiveTotal } from '../../src/metrics/index.js';
import { agentQuiet, concat, conversationOf, quiet, waitFor } from '../helpers/calls.js';
import { IN_PROCESS, ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { normaliseWords } from '../../src/pipeline/conversation.js';
import { TurnDetector, type TurnCommit } from '../../src/pipeline/turn-taking.js';
import { TurnTimeline } from '../../src/pipeline/timeline.js';
import type { SttTurn } from '../../src/providers/types.js';

const bedrockOf = (t: TestApp) => (t.app.providers as unknown as { emulators: Emulators }).emulators.bedrock.stats;
const deepgramOf = (t: TestApp) => (t.app.providers as unknown as { emulators: Emulators }).emulators.deepgram.stats;

async function outcomes(): Promise<{ used: number; discarded: number }> {
  const v = (await preemptiveTotal.get()).values;
  const of = (o: string) => v.find((x) => x.labels.outcome === o)?.value ?? 0;
  return { used: of('used'), discarded: of('discarded') };
}

/** A webhook tool server that records when it was called. */
async function toolServer(): Promise<{ server: http.Server; url: string; calls: number[] }> {
  const calls: number[] = [];
  const server = http.createServer((req, res) => {
    calls.push(Date.now());
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'shipped' })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/orders`, calls };
}
const lookupOrder = (url: string) => ({ name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { request: { type: 'string' } } }, url, timeoutMs: 2000 });

describe('preemptive generation: pieces', () => {
  it('normaliseWords: lowercase, no punctuation, single spaces', () => {
    expect(normaliseWords('  I would like, to book a TABLE.  ')).toBe('i would like to book a table');
    expect(normaliseWords("For two people at eight?")).toBe(normaliseWords('for two  people at eight'));
    expect(normaliseWords('For two people')).not.toBe(normaliseWords('For two people at eight.'));
  });

  it('Nova-3 trigger: the text stable for eagerStableMs while the VAD hears silence fires once per text; speech or a new word restarts it; the commit wins over it', () => {
    const eager: string[] = [];
    const commits: TurnCommit[] = [];
    const d = new TurnDetector((c) => commits.push(c), { silenceMs: 400, slowSilenceMs: 1400, sttGraceMs: 700, eagerStableMs: 200 }, (t) => eager.push(t));
    d.speechStart();
    d.transcript('book a', false, false, 0);
    d.tick(300);
    expect(eager).toEqual([]); // the caller is speaking
    d.transcript('book a table', false, false, 350);
    d.speechEnd(400);
    d.tick(500);
    expect(eager).toEqual([]); // stable for 150 ms only
    d.tick(560);
    expect(eager).toEqual(['book a table']);
    d.tick(700);
    expect(eager).toHaveLength(1); // once per text
    d.transcript('Book a table.', true, true, 720); // the final: new text, stable again from here
    d.tick(800); // 400 ms of silence with the endpoint: the commit, no second early signal
    expect(commits.map((c) => c.text)).toEqual(['Book a table.']);
    expect(eager).toHaveLength(1);
    const flux = new TurnDetector(() => {}); // no onEager (Flux signals it itself): nothing fires
    flux.transcript('hello', false, false, 0);
    flux.speechEnd(10);
    flux.tick(1000);
  });

  it('timeline: llm_start is the request time relative to the commit (negative when preemptive); llm_ttft counts from the commit', () => {
    const tl = new TurnTimeline();
    tl.mark('speechEnd', 1000);
    tl.mark('llmRequest', 1150);
    tl.mark('commit', 1300);
    tl.mark('llmFirstOutput', 1500);
    tl.mark('firstToken', 1500);
    tl.mark('firstSentence', 1560);
    tl.mark('ttsRequest', 1560);
    tl.mark('ttsFirstByte', 1650);
    tl.mark('firstFrameSent', 1652);
    const l = tl.latencies();
    expect(l.llm_start).toBe(-150);
    expect(l.llm_ttft).toBe(200);
    expect(l.eou! + l.llm_ttft! + l.first_sentence! + l.tts_ttfb! + l.server!).toBeCloseTo(l.e2e!, 6);
  });
});

describe('preemptive generation on Flux', () => {
  let t: TestApp;
  let tools: Awaited<ReturnType<typeof toolServer>>;
  beforeAll(async () => {
    tools = await toolServer();
    t = await startTestApp(
      // A slow first token: the caller resumes before any output of the early request.
      { EMULATOR_PHRASES: 'I would like to book a table.|Please lookup_order 42 for me.', ...IN_PROCESS, EMULATOR_FLUX_EOT_MS: '260', EMULATOR_LLM_TTFT_MS: '400', TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', ADMIN_API_KEY: 'admin-key-preemptive-test' },
      // eager at 0.4 (149 ms of silence in the emulator), the end at 0.8 (297 ms)
      { stt: { model: 'flux-general-en', eotThreshold: 0.8, eagerEotThreshold: 0.4, eotTimeoutMs: 3000 }, tools: [lookupOrder(tools.url)], greeting: 'Hi.' },
    );
  });
  afterAll(async () => {
    await t?.stop();
    tools?.server.close();
  });

  it('a confirmed early reply plays (used) and started before the end of turn; EagerEndOfTurn then TurnResumed aborts it unplayed, with no tool run before the confirmation', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    const seen: { event: SttTurn['event']; frames: number; at: number }[] = [];
    conv.sttTurnObserver = (e) => {
      if (e.event !== 'Update') seen.push({ event: e.event, frames: c.stats.frames, at: Date.now() });
    };
    const llm = bedrockOf(t);

    // Turn 1: eager, then the end of turn with the same words: the early request is the reply.
    let before = await outcomes();
    const requests1 = llm.requests;
    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(seen.map((s) => s.event)).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'EndOfTurn']);
    expect(conv.turns[0]).toMatchObject({ user: 'I would like to book a table.', interrupted: false });
    expect(conv.turns[0].agent).toContain('You said: I would like to book a table');
    expect(llm.requests - requests1).toBe(1); // one request, started early
    expect(await outcomes()).toEqual({ used: before.used + 1, discarded: before.discarded });
    expect(conv.turns[0].latencies.llm_start).toBeLessThan(0); // generation started before the end of turn
    await agentQuiet(c);

    // Turn 2: eager, the caller goes on (TurnResumed), eager again, the end.
    seen.length = 0;
    before = await outcomes();
    const aborted = llm.streamsAborted;
    c.speak(concat(synthesize('please look up my order'), quiet(200), synthesize('forty two please')));
    await waitFor(() => conv.turns.length === 2, 20_000, 'turn 2');
    expect(seen.map((s) => s.event)).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EagerEndOfTurn', 'EndOfTurn']);
    // Not a frame of agent audio from StartOfTurn to EndOfTurn: nothing of the early replies played.
    expect(new Set(seen.map((s) => s.frames)).size).toBe(1);
    await waitFor(() => llm.streamsAborted > aborted, 5000, 'the emulated Bedrock to see the aborted stream');
    // The first early request was discarded; the second one, confirmed, is the reply; its tool ran after the end of turn.
    expect(await outcomes()).toEqual({ used: before.used + 1, discarded: before.discarded + 1 });
    const endOfTurn = seen.find((s) => s.event === 'EndOfTurn')!.at;
    expect(tools.calls).toHaveLength(1);
    expect(tools.calls[0]).toBeGreaterThanOrEqual(endOfTurn);
    expect(conv.turns[1].agent).toContain('{"status":"shipped"}');
    // The history holds the confirmed turns only, each caller turn once.
    const userTexts = conv.history.filter((m) => m.role === 'user').flatMap((m) => m.content.filter((b) => 'text' in b).map((b) => (b as { text: string }).text));
    expect(userTexts).toEqual(['I would like to book a table.', 'Please lookup_order 42 for me.']);
    await c.hangup();
    const rec = (await t.app.store.calls.findCall('twilio', c.callSid))!;
    await t.app.store.calls.drain();
    const stored = (await t.app.store.calls.detail(null, rec.id)).turns;
    expect(stored[0].latencies.llm_start).toBeLessThan(0);
  });

  it('the agent field preemptive: a boolean, stored; anything else is a 422', async () => {
    const create = (preemptive: unknown) =>
      fetch(`${t.base}/v1/agents`, {
        method: 'POST', headers: { authorization: 'Bearer admin-key-preemptive-test', 'content-type': 'application/json' },
        body: JSON.stringify({ tenantId: t.tenantId, name: 'p', prompt: 'p', preemptive }),
      });
    const ok = await create(false);
    expect(ok.status).toBe(201);
    expect((await t.app.store.agents.get(null, ((await ok.json()) as { id: string }).id)).preemptive).toBe(false);
    expect((await create('yes')).status).toBe(422);
  });

  it('with preemptive: false no early request is made', async () => {
    const a = await t.app.store.agents.create(ADMIN, t.tenantId, {
      name: 'No preemption', prompt: 'You are a helpful receptionist.', greeting: 'Hi.', preemptive: false,
      stt: { model: 'flux-general-en', eotThreshold: 0.8, eagerEotThreshold: 0.4, eotTimeoutMs: 3000 },
    });
    const number = `+1415666${String(Math.floor(1000 + Math.random() * 8999))}`;
    await t.app.store.agents.addNumber(ADMIN, t.tenantId, number, a.id);
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    const seen: SttTurn['event'][] = [];
    const llm = bedrockOf(t);
    let requestsAtEndOfTurn = -1;
    const requests = llm.requests;
    conv.sttTurnObserver = (e) => {
      if (e.event !== 'Update') seen.push(e.event);
      if (e.event === 'EndOfTurn') requestsAtEndOfTurn = llm.requests;
    };
    const before = await outcomes();
    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => llm.requests > requests, 20_000, 'the request');
    await c.hangup(); // the turn is stored with what was heard of the reply
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(seen).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'EndOfTurn']);
    expect(requestsAtEndOfTurn).toBe(requests); // nothing asked before the end of turn
    expect(llm.requests - requests).toBe(1);
    expect(conv.turns[0].latencies.llm_start).toBeGreaterThanOrEqual(0);
    expect(await outcomes()).toEqual(before);
  });
});

describe('preemptive generation: a tool asked before the confirmation', () => {
  let t: TestApp;
  let tools: Awaited<ReturnType<typeof toolServer>>;
  beforeAll(async () => {
    tools = await toolServer();
    t = await startTestApp(
      { EMULATOR_PHRASES: 'Please lookup_order 42 for me.', EMULATOR_FLUX_EOT_MS: '600', ...IN_PROCESS, TOOLS_ALLOW_PRIVATE_NETWORKS: 'true' },
      // eager at 0.4 (343 ms of silence), the end at 0.99 (849 ms): the early stream reaches its tool request first
      { stt: { model: 'flux-general-en', eotThreshold: 0.99, eagerEotThreshold: 0.4, eotTimeoutMs: 3000 }, tools: [lookupOrder(tools.url)], greeting: 'Hi.' },
    );
  });
  afterAll(async () => {
    await t?.stop();
    tools?.server.close();
  });

  it('the early stream stops at its tool request (not run, discarded); the confirmed turn starts afresh and runs the tool once', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    let endOfTurn = 0;
    conv.sttTurnObserver = (e) => {
      if (e.event === 'EndOfTurn') endOfTurn = Date.now();
    };
    const before = await outcomes();
    c.speak(synthesize('please look up my order forty two'));
    await waitFor(() => tools.calls.length > 0, 20_000, 'the tool call');
    await c.hangup();
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(await outcomes()).toEqual({ used: before.used, discarded: before.discarded + 1 });
    expect(tools.calls).toHaveLength(1);
    expect(tools.calls[0]).toBeGreaterThanOrEqual(endOfTurn);
    expect(endOfTurn).toBeGreaterThan(0);
  });
});

describe('preemptive generation: the first clause synthesised before the confirmation', () => {
  let t: TestApp;
  let tools: Awaited<ReturnType<typeof toolServer>>;
  beforeAll(async () => {
    tools = await toolServer();
    t = await startTestApp(
      // A slow end of turn and a fast first token: the early reply's first clause is synthesised well before the end of turn.
      {
        EMULATOR_PHRASES: 'I would like to book a table.|Tomorrow at seven in the evening.|Please lookup_order 42 for me.',
        EMULATOR_FLUX_EOT_MS: '1500', EMULATOR_LLM_TTFT_MS: '100', TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', ...IN_PROCESS,
      },
      // eager at 0.3 (643 ms of silence in the emulator), the end at 0.8 (1714 ms)
      { stt: { model: 'flux-general-en', eotThreshold: 0.8, eagerEotThreshold: 0.3, eotTimeoutMs: 5000 }, tools: [lookupOrder(tools.url)], greeting: 'Hi.' },
    );
  });
  afterAll(async () => {
    await t?.stop();
    tools?.server.close();
  });

  it('confirmed: the held clause is the reply\'s first audio (TTS asked before the end of turn); resumed: synthesised, never played, no tool run', async () => {
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    const conv = conversationOf(t);
    const tts = deepgramOf(t);
    const seen: { event: SttTurn['event']; frames: number; flushes: number; at: number }[] = [];
    conv.sttTurnObserver = (e) => {
      if (e.event !== 'Update') seen.push({ event: e.event, frames: c.stats.frames, flushes: tts.flushes, at: Date.now() });
    };
    const events = () => seen.map((s) => s.event);

    // Turn 1: eager, the clause synthesised and held, the end of turn with the same words: it plays.
    let before = await outcomes();
    c.speak(synthesize('I would like to book a table please'));
    await waitFor(() => conv.turns.length === 1, 20_000, 'turn 1');
    expect(events()).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'EndOfTurn']);
    const [start1, , end1] = seen;
    expect(end1.flushes).toBeGreaterThan(start1.flushes); // synthesised before the end of turn…
    expect(end1.frames).toBe(start1.frames); // …and not a frame of it played before it
    expect(conv.turns[0]).toMatchObject({ user: 'I would like to book a table.', interrupted: false });
    expect(conv.turns[0].agent).toMatch(/^You said: I would like to book a table\. I can help with that\./);
    expect(conv.turns[0].latencies.tts_start).toBeLessThan(0);
    expect(conv.turns[0].latencies.llm_start).toBeLessThan(0);
    expect(await outcomes()).toEqual({ used: before.used + 1, discarded: before.discarded });
    await agentQuiet(c);

    // Turn 2: eager (clause synthesised), the caller goes on (TurnResumed): discarded unplayed; the confirmed turn plays.
    seen.length = 0;
    before = await outcomes();
    c.speak(concat(synthesize('tomorrow at seven'), quiet(1100), synthesize('in the evening')));
    await waitFor(() => conv.turns.length === 2, 20_000, 'turn 2');
    expect(events()).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EagerEndOfTurn', 'EndOfTurn']);
    const resumed = seen[2];
    expect(resumed.flushes).toBeGreaterThan(seen[0].flushes); // the discarded reply's clause was synthesised
    expect(new Set(seen.map((s) => s.frames)).size).toBe(1); // nothing played from StartOfTurn to EndOfTurn
    expect(await outcomes()).toEqual({ used: before.used + 1, discarded: before.discarded + 1 });
    expect(conv.turns[1].agent).toMatch(/^You said: Tomorrow at seven in the evening\./);
    await agentQuiet(c);

    // Turn 3: a tool phrase, eager then resumed: the early streams stop at their tool request; the tool runs after the end of turn only.
    seen.length = 0;
    c.speak(concat(synthesize('please look up my order'), quiet(1100), synthesize('forty two please')));
    await waitFor(() => conv.turns.length === 3, 20_000, 'turn 3');
    expect(events()).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EagerEndOfTurn', 'EndOfTurn']);
    expect(new Set(seen.map((s) => s.frames)).size).toBe(1);
    const endOfTurn = seen[seen.length - 1].at;
    expect(tools.calls).toHaveLength(1);
    expect(tools.calls[0]).toBeGreaterThanOrEqual(endOfTurn);
    expect(conv.turns[2].agent).toContain('{"status":"shipped"}');
    // The caller measured voice-to-voice once per utterance (each ended with the agent silent).
    expect(c.voiceToVoice).toHaveLength(3);
    expect(c.voiceToVoice.every((v) => v > 0)).toBe(true);
    await c.hangup();
  });
});
