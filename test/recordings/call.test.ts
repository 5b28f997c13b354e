// A recorded Twilio call, end to end: the stereo WAV's left channel is what
// the simulated caller sent and its right channel what it received, frame by
// frame (barge-in included: the agent's cut reply is in the file exactly as
// far as it was sent); mixed mode is mono; the API streams it (ranges,
// tenant isolation, scope) and the call detail and recording.ready event name it.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { DEFAULT_KEY_SCOPES } from '../../src/store/types.js';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { api } from '../helpers/api.js';
import { agentQuiet, waitFor } from '../helpers/calls.js';
import { audibleFrames, firstAudible, parseWav } from './wav.js';

async function recordedCall(t: TestApp, key: string, bargeIn: boolean): Promise<{ c: TwilioCaller; callId: string; wav: Buffer; detail: any; heardBeforeBargeIn: number }> {
  const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number, record: true });
  let heardBeforeBargeIn = 0;
  await c.dial();
  await agentQuiet(c);
  c.speak(synthesize('tell me everything about the menu'));
  if (bargeIn) {
    const framesBefore = c.stats.frames;
    await waitFor(() => c.stats.frames - framesBefore > 60, 20_000, 'agent reply audio');
    // What the caller had heard of the agent when its interruption became audible (its leading silence is sent first).
    const interruption = synthesize('stop stop just the prices please');
    c.speak(interruption);
    const lead = firstAudible(interruption);
    const sentBefore = c.sent.length;
    await waitFor(() => c.sent.length >= sentBefore + lead, 5000, 'the interruption');
    heardBeforeBargeIn = audibleFrames(c.received).length;
    await waitFor(() => c.stats.clears >= 1, 20_000, 'the barge-in clear');
  }
  await agentQuiet(c, 600);
  await c.hangup();
  const calls = await api(t.base, 'GET', '/v1/calls?limit=1', key);
  const callId = calls.body.items[0].id as string;
  let detail: any = null;
  const t0 = Date.now();
  while (Date.now() - t0 < 15_000) {
    detail = (await api(t.base, 'GET', `/v1/calls/${callId}`, key)).body;
    if (detail.recording?.durationMs > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(detail.recording).toBeDefined();
  const res = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('audio/wav');
  return { c, callId, wav: Buffer.from(await res.arrayBuffer()), detail, heardBeforeBargeIn };
}

describe('dual recording of a call with a barge-in', () => {
  let t: TestApp;
  let key: string;
  beforeAll(async () => {
    t = await startTestApp(
      { EMULATOR_PHRASES: 'Tell me everything about the menu.|Stop, just the prices.|Thanks.', EMULATOR_LLM_TOKENS_PER_S: '30', EMULATOR_TTS_RTF: '0.3' },
      { recording: { enabled: true, channels: 'dual' } },
    );
    // A key made without explicit scopes: it must carry recordings:read.
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'rec', [...DEFAULT_KEY_SCOPES])).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  let callId = '';
  let wav: Buffer;

  it('left is what the caller sent and right what it received, sample by sample', async () => {
    const r = await recordedCall(t, key, true);
    callId = r.callId;
    wav = r.wav;
    const w = parseWav(wav);
    expect(w.format).toBe(7);
    expect(w.channels).toBe(2);
    expect(w.rate).toBe(8000);
    expect(w.dataBytes).toBe(wav.length - 58);
    // Where a side sent nothing the recording holds silence; everything else is the same frames in the same order.
    const sent = audibleFrames(r.c.sent);
    const heardByCaller = audibleFrames(r.c.received);
    expect(sent.length).toBeGreaterThan(50);
    expect(heardByCaller.length).toBeGreaterThan(100);
    const left = audibleFrames(w.left);
    const right = audibleFrames(w.right!);
    expect(left.length).toBe(sent.length);
    expect(left.findIndex((f, i) => !f.equals(sent[i]))).toBe(-1);
    expect(right.length).toBe(heardByCaller.length);
    expect(right.findIndex((f, i) => !f.equals(heardByCaller[i]))).toBe(-1);
    // One timeline: the interruption starts while the agent is talking, and the agent stops soon after.
    const firstSpeech = firstAudible(w.left);
    const interruption = firstAudible(w.left, firstSpeech + Math.ceil(synthesize('tell me everything about the menu').length / 160) + 5);
    expect(interruption).toBeGreaterThan(firstSpeech);
    const agentAt = (i: number) => !w.right!.subarray(i * 160, i * 160 + 160).every((b) => b === 0xff);
    // Aligned: the agent audio before the interruption in the file is what the caller had heard when it
    // cut in. The bound (1.5 s) allows for this test's own timers on a loaded machine (the caller, the
    // server and this check share one event loop); a timeline without the silences would be off by the
    // greeting-to-reply gaps, seconds. The exact alignment is checked frame by frame in recorder.test.ts.
    const agentBefore = audibleFrames(w.right!.subarray(0, interruption * 160)).length;
    expect(Math.abs(agentBefore - r.heardBeforeBargeIn)).toBeLessThanOrEqual(75);
    // The cut reply: within 3 s of the interruption (VAD, turn detection) the agent's channel falls silent for 300 ms.
    const silentRun = (i: number) => [...Array(15).keys()].every((k) => !agentAt(i + k));
    const cut = [...Array(150).keys()].map((k) => interruption + k).find(silentRun);
    expect(cut).toBeDefined();
    expect(r.detail.recording).toEqual({ channels: 'dual', durationMs: (w.dataBytes / 2 / 8), bytes: wav.length, url: `/v1/calls/${callId}/recording` });
  });

  it('ranges: 206 with Content-Range, a suffix, 416 on a bad range', async () => {
    const auth = { authorization: `Bearer ${key}` };
    const part = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { ...auth, range: 'bytes=0-99' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 0-99/${wav.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(wav.subarray(0, 100))).toBe(true);
    const tail = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { ...auth, range: 'bytes=-1000' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(wav.subarray(wav.length - 1000))).toBe(true);
    const open = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { ...auth, range: 'bytes=1000-' } });
    expect(Buffer.from(await open.arrayBuffer()).equals(wav.subarray(1000))).toBe(true);
    for (const bad of [`bytes=${wav.length}-`, 'bytes=50-10', 'bytes=abc', 'items=0-1', 'bytes=-0']) {
      const r = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { ...auth, range: bad } });
      expect(r.status, bad).toBe(416);
      expect(r.headers.get('content-range')).toBe(`bytes */${wav.length}`);
    }
  });

  it('tenant-isolated and scoped', async () => {
    const other = await t.app.store.tenants.create(ADMIN, 'Other', null);
    const otherKey = (await t.app.store.tenants.createKey(ADMIN, other.id, 'o', [...DEFAULT_KEY_SCOPES])).key;
    expect((await api(t.base, 'GET', `/v1/calls/${callId}/recording`, otherKey)).status).toBe(404);
    const noScope = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'n', ['calls:read'])).key;
    expect((await api(t.base, 'GET', `/v1/calls/${callId}/recording`, noScope)).status).toBe(403);
    expect((await api(t.base, 'GET', '/v1/calls/call_nonexistent/recording', key)).status).toBe(404);
  });

  it('the recording.ready event is in the outbox once, with the call id', async () => {
    // Events are stored only for subscribers: subscribe, record another call, and look.
    const hook = await api(t.base, 'POST', '/v1/webhooks', key, { url: 'https://hooks.example.com/aybiza', events: ['recording.ready'] });
    expect(hook.status).toBe(201);
    const r = await recordedCall(t, key, false);
    const t0 = Date.now();
    let got: { body: string }[] = [];
    while (Date.now() - t0 < 5000 && got.length === 0) {
      got = (await t.app.store.db.pool.query("select body from webhook_events where type = 'recording.ready' and tenant_id = $1", [t.tenantId])).rows;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(got.length).toBe(1);
    const ev = JSON.parse(got[0].body);
    expect(ev.data).toMatchObject({ callId: r.callId, channels: 'dual', bytes: r.wav.length, url: `/v1/calls/${r.callId}/recording` });
  });
});

describe('mixed recording', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ EMULATOR_PHRASES: 'Hello there.|Thanks.' }, { recording: { enabled: true, channels: 'mixed' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('is mono: both sides summed, the caller verbatim where the agent was quiet', async () => {
    const key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'rec', [...DEFAULT_KEY_SCOPES])).key;
    const r = await recordedCall(t, key, false);
    const w = parseWav(r.wav);
    expect(w.format).toBe(7);
    expect(w.channels).toBe(1);
    expect(r.detail.recording.channels).toBe('mixed');
    // μ-law has two zeros (0x7f, 0xff): a sum with silence re-encodes 0x7f as 0xff.
    const norm = (b: Buffer) => Buffer.from(b.map((x) => (x === 0x7f ? 0xff : x)));
    // The caller's first words, frame by frame and in order, in the mono track (the agent was quiet then).
    const mono = audibleFrames(w.left).map(norm);
    let at = 0;
    for (const f of audibleFrames(r.c.sent).slice(0, 20).map(norm)) {
      at = mono.findIndex((m, i) => i >= at && m.equals(f));
      expect(at).toBeGreaterThanOrEqual(0);
      at++;
    }
    // The file is in DATA_DIR/recordings/<tenant>/<call>.wav.
    expect(fs.existsSync(path.join(t.app.config.dataDir, 'recordings', t.tenantId, `${r.callId}.wav`))).toBe(true);
  });
});
