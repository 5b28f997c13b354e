// Deepgram Flux (listen v2): our client (src/providers/deepgram/flux.ts)
// through the official SDK against the emulator (src/providers/emulators/
// flux.ts) over real sockets, and the emulator's wire messages checked
// against the shapes of ../shared/reference/deepgram-flux.md §4–§6.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startEmulators, type Emulators } from '../../src/providers/emulators/index.js';
import { deepgramClient } from '../../src/providers/deepgram/client.js';
import { DEFAULT_EAGER_EOT_THRESHOLD, FluxStt, eagerThreshold } from '../../src/providers/deepgram/flux.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import type { SttOptions, SttTurn } from '../../src/providers/types.js';
import { sleep, waitFor } from './helpers.js';
import { emulatorSettings } from '../../src/config.js';
import { emulatorOptions } from '../../src/providers/emulators/profiles.js';

const FRAME = 160;
const PHRASE = 'Book a table for two.';
const quiet = (ms: number) => new Uint8Array((ms / 1000) * 8000).fill(0xff);
const speech = (text: string) => synthesize(text);

/** Sends audio in 20 ms frames, faster than real time (Flux and the emulator run on audio time). */
async function play(send: (f: Uint8Array) => void, ...parts: Uint8Array[]): Promise<void> {
  let n = 0;
  for (const audio of parts) {
    for (let i = 0; i + FRAME <= audio.length; i += FRAME) {
      send(audio.subarray(i, i + FRAME));
      if (++n % 10 === 0) await sleep(1);
    }
  }
}

describe('Deepgram Flux (listen v2) through the SDK', () => {
  let emu: Emulators;
  beforeAll(async () => {
    emu = await startEmulators({ deepgram: { phrases: [PHRASE, 'Yes.'], fluxEndOfTurnMs: 260 } });
  });
  afterAll(async () => {
    await emu?.close();
  });

  async function open(opts: Partial<SttOptions> = {}) {
    const turns: SttTurn[] = [];
    const s = await new FluxStt(deepgramClient({ apiKey: 'k', url: emu.deepgramUrl })).open({ model: 'flux-general-en', ...opts }, { onTranscript: () => {}, onTurn: (t) => turns.push(t) });
    return { s, turns, events: () => turns.filter((t) => t.event !== 'Update').map((t) => t.event) };
  }

  it('a turn: StartOfTurn, Updates with the growing transcript, EndOfTurn (trigger model) with the phrase', async () => {
    // eot_threshold 0.5: the default eager threshold (0.5) would come no earlier, so none is sent and no eager events come.
    const { s, turns, events } = await open({ eotThreshold: 0.5 });
    await play((f) => s.send(f), quiet(500), speech('could you book a table for two people'), quiet(1000));
    await waitFor(() => events().includes('EndOfTurn'), 10_000, 'EndOfTurn');
    expect(events()).toEqual(['StartOfTurn', 'EndOfTurn']);
    const end = turns.find((t) => t.event === 'EndOfTurn')!;
    expect(end).toMatchObject({ text: PHRASE, trigger: 'model', turnIndex: 0 });
    expect(end.confidence).toBeGreaterThanOrEqual(0.5);
    expect(turns.find((t) => t.event === 'StartOfTurn')!.text).not.toBe('');
    expect(turns.some((t) => t.event === 'Update' && t.text.length > 0)).toBe(true);
    await s.close();
  });

  it('EagerEndOfTurn then TurnResumed when the caller goes on, in order, and one EndOfTurn at the real end', async () => {
    const { s, turns, events } = await open({ eagerEotThreshold: 0.4, eotThreshold: 0.8 });
    // 0.4 is reached after 149 ms of silence, 0.8 after 297 ms (fluxEndOfTurnMs 260 at 0.7): a 200 ms pause is eager only.
    await play((f) => s.send(f), quiet(300), speech('book a table'), quiet(200), speech('for two please'), quiet(1000));
    await waitFor(() => events().includes('EndOfTurn'), 10_000, 'EndOfTurn');
    expect(events()).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EagerEndOfTurn', 'EndOfTurn']);
    const eager = turns.filter((t) => t.event === 'EagerEndOfTurn');
    expect(turns.find((t) => t.event === 'EndOfTurn')!.text).toBe(eager[eager.length - 1].text); // §6.3
    await s.close();
  });

  it('without an eager threshold from the agent, eager_eot_threshold 0.5 is sent: EagerEndOfTurn with the whole text, then EndOfTurn', async () => {
    expect(eagerThreshold({})).toBe(DEFAULT_EAGER_EOT_THRESHOLD);
    expect(eagerThreshold({ eotThreshold: 0.5 })).toBeUndefined();
    expect(eagerThreshold({ eotThreshold: 0.9, eagerEotThreshold: 0.3 })).toBe(0.3);
    const { s, turns, events } = await open();
    await play((f) => s.send(f), quiet(300), speech('could you book a table for two people'), quiet(1000));
    await waitFor(() => events().includes('EndOfTurn'), 10_000, 'EndOfTurn');
    expect(events()).toEqual(['StartOfTurn', 'EagerEndOfTurn', 'EndOfTurn']);
    expect(turns.find((t) => t.event === 'EagerEndOfTurn')!.text).toBe(PHRASE);
    await s.close();
  });

  it('eot_timeout_ms ends a turn the model never ends (eot_threshold 1.0): trigger timeout', async () => {
    const { s, turns } = await open({ eotThreshold: 1, eotTimeoutMs: 600 });
    await play((f) => s.send(f), speech('hello there'), quiet(1000));
    await waitFor(() => turns.some((t) => t.event === 'EndOfTurn'), 10_000, 'EndOfTurn');
    expect(turns.find((t) => t.event === 'EndOfTurn')!.trigger).toBe('timeout');
    await s.close();
  });

  it('a dropped socket: a new session (counted, told to the pipeline), turns go on with indices and times continuous', async () => {
    emu.deepgram.faults.sttDropAfterMs = 1000;
    const reconnected: number[] = [];
    const turns: SttTurn[] = [];
    const before = emu.deepgram.stats.fluxConnections;
    const s = await new FluxStt(deepgramClient({ apiKey: 'k', url: emu.deepgramUrl })).open(
      { model: 'flux-general-en' },
      { onTranscript: () => {}, onTurn: (t) => turns.push(t), onReconnected: (r) => reconnected.push(r.attempt) },
    );
    await play((f) => s.send(f), speech('hello'), quiet(900)); // one turn, then the drop at 1 s of audio
    await waitFor(() => reconnected.length === 1, 10_000, 'reconnect');
    await play((f) => s.send(f), quiet(200), speech('yes that is right'), quiet(800));
    await waitFor(() => turns.filter((t) => t.event === 'EndOfTurn').length === 2, 10_000, 'second EndOfTurn');
    const ends = turns.filter((t) => t.event === 'EndOfTurn');
    expect(ends.map((t) => t.turnIndex)).toEqual([0, 1]);
    expect(ends[1].start).toBeGreaterThan(ends[0].end);
    expect(emu.deepgram.stats.fluxConnections - before).toBe(2);
    await s.close();
  });

  it('refuses bad parameters before the upgrade (the SDK fails to open)', async () => {
    await expect(open({ eotThreshold: 0.7, eagerEotThreshold: 0.8 })).rejects.toThrow();
    await expect(open({ model: 'flux-general-xx' })).rejects.toThrow();
  });
});

describe('Flux emulator latency knob (EMULATOR_FLUX_EOT_MS)', () => {
  it('reaches the emulator from the environment, and sets the silence (audio time) that ends a turn', async () => {
    expect(emulatorOptions(emulatorSettings({ EMULATOR_FLUX_EOT_MS: '600' })).deepgram.fluxEndOfTurnMs).toBe(600);
    expect(emulatorOptions(emulatorSettings({})).deepgram.fluxEndOfTurnMs).toBe(260);
    const ends = async (eotMs: number) => {
      const emu = await startEmulators({ deepgram: { phrases: [PHRASE], fluxEndOfTurnMs: eotMs } });
      const turns: SttTurn[] = [];
      const s = await new FluxStt(deepgramClient({ apiKey: 'k', url: emu.deepgramUrl })).open({ model: 'flux-general-en' }, { onTranscript: () => {}, onTurn: (t) => turns.push(t) });
      await play((f) => s.send(f), speech('book a table'), quiet(400), speech('for two'), quiet(1500));
      await waitFor(() => turns.filter((t) => t.event === 'Update').some((t) => t.end >= 2.5), 10_000, 'all audio processed');
      await s.close();
      await emu.close();
      return turns.filter((t) => t.event === 'EndOfTurn').length;
    };
    expect(await ends(260)).toBe(2); // a 400 ms pause ends the turn
    expect(await ends(600)).toBe(1); // not with a slower end-of-turn model
  });
});

describe('Flux emulator wire messages (reference shapes)', () => {
  let emu: Emulators;
  beforeAll(async () => {
    emu = await startEmulators({ deepgram: { phrases: [PHRASE], fluxEndOfTurnMs: 260 } });
  });
  afterAll(async () => {
    await emu?.close();
  });

  function connect(query: string): Promise<{ ws: WebSocket; msgs: Record<string, unknown>[]; closed: Promise<number>; binary: () => number }> {
    const ws = new WebSocket(`${emu.deepgramUrl.replace('http', 'ws')}/v2/listen?${query}`, { headers: { Authorization: 'Token k' } });
    const msgs: Record<string, unknown>[] = [];
    let binary = 0;
    ws.on('message', (d, isBinary) => (isBinary ? binary++ : msgs.push(JSON.parse(d.toString()) as Record<string, unknown>)));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    return new Promise((resolve, reject) => {
      ws.on('open', () => resolve({ ws, msgs, closed, binary: () => binary }));
      ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} ${String(res.headers['dg-error'])}`)));
    });
  }

  const TURN_INFO_KEYS = ['type', 'request_id', 'sequence_id', 'event', 'turn_index', 'audio_window_start', 'audio_window_end', 'transcript', 'words', 'end_of_turn_confidence'];

  it('Connected first; one sequence_id counter; TurnInfo fields; trigger only on EndOfTurn; Updates on a 0.24 s audio grid; CloseStream: no EndOfTurn, close without a code', async () => {
    const { ws, msgs, closed, binary } = await connect('model=flux-general-en&encoding=mulaw&sample_rate=8000');
    await waitFor(() => msgs.length === 1, 5000, 'Connected');
    expect(msgs[0]).toEqual({ type: 'Connected', request_id: expect.stringMatching(/^[0-9a-f-]{36}$/), sequence_id: 0 });
    const audio = Buffer.concat([Buffer.from(speech('book a table for two')), Buffer.from(quiet(1000)), Buffer.from(speech('and one more'))]);
    for (let i = 0; i < audio.length; i += 640) ws.send(audio.subarray(i, i + 640)); // 80 ms messages
    await waitFor(() => msgs.some((m) => m.event === 'EndOfTurn') && msgs.some((m) => m.event === 'StartOfTurn' && m.turn_index === 1), 5000, 'turns');
    ws.send(JSON.stringify({ type: 'CloseStream' }));
    expect(await closed).toBe(1005);
    expect(binary()).toBe(0);
    msgs.forEach((m, i) => expect(m.sequence_id).toBe(i));
    const infos = msgs.filter((m) => m.type === 'TurnInfo');
    for (const m of infos) {
      expect(Object.keys(m).filter((k) => k !== 'trigger').sort()).toEqual([...TURN_INFO_KEYS].sort());
      expect(m.request_id).toBe(msgs[0].request_id);
      expect(['Update', 'StartOfTurn', 'EagerEndOfTurn', 'TurnResumed', 'EndOfTurn']).toContain(m.event);
      expect('trigger' in m).toBe(m.event === 'EndOfTurn');
      for (const w of m.words as Record<string, unknown>[]) expect(Object.keys(w).sort()).toEqual(['confidence', 'end', 'start', 'word']);
      if (m.event === 'StartOfTurn' || m.event === 'EndOfTurn') expect(m.transcript).not.toBe('');
    }
    const updates = infos.filter((m) => m.event === 'Update' && m !== infos[infos.length - 1]);
    for (const u of updates) expect(Math.round(((u.audio_window_end as number) / 0.24) * 1000) % 1000).toBe(0);
    const end = infos.find((m) => m.event === 'EndOfTurn')!;
    expect(end).toMatchObject({ trigger: 'model', turn_index: 0, transcript: PHRASE });
    expect(infos.filter((m) => m.event === 'EndOfTurn')).toHaveLength(1); // the second turn was cut by CloseStream
    const second = infos.filter((m) => m.turn_index === 1);
    expect(second[0].audio_window_start).toBeGreaterThanOrEqual(end.audio_window_end as number - 0.001);
  });

  it('Configure: partial update echoed in ConfigureSuccess; an out-of-range threshold gets ConfigureFailure and the stream goes on', async () => {
    const { ws, msgs, closed } = await connect('model=flux-general-en&encoding=mulaw&sample_rate=8000&keyterm=PIN&eot_threshold=0.7');
    ws.send(JSON.stringify({ type: 'Configure', thresholds: { eot_threshold: 0.8 }, keyterms: ['Acme'] }));
    ws.send(JSON.stringify({ type: 'Configure', thresholds: { eager_eot_threshold: 0.95 } }));
    await waitFor(() => msgs.length === 3, 5000, 'replies');
    expect(msgs[1]).toEqual({ type: 'ConfigureSuccess', request_id: msgs[0].request_id, thresholds: { eot_threshold: 0.8, eot_timeout_ms: 5000 }, keyterms: ['Acme'], sequence_id: 1 });
    expect(msgs[2]).toMatchObject({ type: 'ConfigureFailure', request_id: msgs[0].request_id, sequence_id: 2, code: 'INVALID_THRESHOLD' });
    ws.send(Buffer.from(quiet(480)));
    await waitFor(() => msgs.length === 5, 5000, 'Updates after the failure');
    expect(msgs[3]).toMatchObject({ type: 'TurnInfo', event: 'Update', transcript: '', sequence_id: 3 });
    ws.close();
    await closed;
  });

  it.each([
    ['KeepAlive', JSON.stringify({ type: 'KeepAlive' })],
    ['Finalize', JSON.stringify({ type: 'Finalize' })],
    ['not JSON', 'hello'],
  ])('%s is fatal on v2: Error UNPARSABLE_CLIENT_MESSAGE, then a close without a code', async (_name, text) => {
    const { ws, msgs, closed } = await connect('model=flux-general-en&encoding=mulaw&sample_rate=8000');
    ws.send(text);
    expect(await closed).toBe(1005);
    expect(msgs[1]).toMatchObject({ type: 'Error', sequence_id: 1, code: 'UNPARSABLE_CLIENT_MESSAGE', description: expect.any(String) });
  });

  it('ForceEndTurn ends the turn now with trigger manual', async () => {
    const { ws, msgs, closed } = await connect('model=flux-general-en&encoding=linear16&sample_rate=16000');
    const pcm = Buffer.alloc(16000 * 2 * 0.5); // 0.5 s of a loud 16 kHz tone: speech to the energy detector
    for (let i = 0; i < pcm.length / 2; i++) pcm.writeInt16LE(Math.round(6000 * Math.sin(i / 5)), i * 2);
    ws.send(pcm);
    await waitFor(() => msgs.some((m) => m.event === 'StartOfTurn'), 5000, 'StartOfTurn');
    ws.send(JSON.stringify({ type: 'ForceEndTurn' }));
    await waitFor(() => msgs.some((m) => m.event === 'EndOfTurn'), 5000, 'EndOfTurn');
    expect(msgs.find((m) => m.event === 'EndOfTurn')).toMatchObject({ trigger: 'manual', turn_index: 0 });
    ws.close();
    await closed;
  });

  it.each([
    ['model=nova-3&encoding=mulaw&sample_rate=8000', 'model'],
    ['model=flux-general-en&encoding=mulaw&sample_rate=11025', 'sample_rate'],
    ['model=flux-general-en&eot_threshold=0.4', 'eot_threshold'],
    ['model=flux-general-en&eot_threshold=0.6&eager_eot_threshold=0.7', 'eager_eot_threshold'],
    ['model=flux-general-en&eot_timeout_ms=100', 'eot_timeout_ms'],
  ])('refuses %s with 400 and dg-error', async (query, what) => {
    await expect(connect(query)).rejects.toThrow(new RegExp(`HTTP 400 .*${what}`, 'i'));
  });
});
