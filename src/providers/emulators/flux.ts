// The Flux half of the Deepgram emulator: /v2/listen as described in
// ../shared/reference/deepgram-flux.md (§4–§6, checklist §10), so the
// unmodified @deepgram/sdk (listen.v2) works against it. Everything runs on
// audio time, never wall time, as Flux does: a turn ends only while audio
// keeps arriving. Speech is found by energy; the transcript of turn n is the
// n-th phrase of the emulator's list, revealed word by word while the caller
// speaks. End-of-turn confidence rises with the silence after the last
// speech, reaching 0.7 (Flux's default eot_threshold) after fluxEndOfTurnMs
// of silence (EMULATOR_FLUX_EOT_MS; default 260, Deepgram's figure): that
// knob is the emulated model's end-of-turn latency, on audio time.
import crypto from 'node:crypto';
import type { WebSocket } from 'ws';
import { guard } from '../../guard.js';
import { alawDecodeInto, ulawDecodeInto } from '../../media/g711.js';

export interface FluxEmulatorOptions {
  /** Silence (audio ms) after the last speech at which the EOT confidence reaches 0.7: drawn once per turn (a profile may jitter it). */
  drawEndOfTurnMs: () => number;
  phrases: string[];
  /** Frames whose RMS exceeds this (16-bit PCM) count as speech. */
  speechRms: number;
}

export interface FluxStats {
  fluxConnections: number;
  fluxAudioBytes: number;
  fluxConfigures: number;
}

const MODELS = new Set(['flux-general-en', 'flux-general-multi']);
/** Bytes per sample of the raw encodings the emulator decodes (opus/ogg-opus are not emulated). */
const ENCODINGS: Record<string, number> = { mulaw: 1, alaw: 1, linear16: 2, linear32: 4 };
const RATES = new Set([8000, 16000, 24000, 44100, 48000]);
/** One TurnInfo per 0.24 s of audio (the grid of captured fixtures, reference §6.1). */
const UPDATE_EVERY_S = 0.24;
/** The default eot_threshold: the confidence `fluxEndOfTurnMs` of silence earns. */
const DEFAULT_EOT = 0.7;
/** Speech frames in a row that make an onset (as the v1 emulator). */
const ONSET_FRAMES = 3;
/** Words revealed per second of speech in Update transcripts. */
const WORDS_PER_S = 2.5;
const IDLE_CLOSE_MS = 10_000;
/** Deepgram's figure: "~260ms end-of-turn detection" (developers.deepgram.com/docs/flux/quickstart). */
export const DEFAULT_FLUX_END_OF_TURN_MS = 260;

export interface FluxThresholds {
  eot_threshold: number;
  eager_eot_threshold?: number;
  eot_timeout_ms: number;
}

/** Range checks of reference §2 (current limits); null when valid. */
export function thresholdsError(t: FluxThresholds): string | null {
  if (!(t.eot_threshold >= 0.5 && t.eot_threshold <= 1)) return 'eot_threshold must be between 0.5 and 1.0';
  if (t.eager_eot_threshold !== undefined) {
    if (!(t.eager_eot_threshold >= 0.3 && t.eager_eot_threshold <= 0.9)) return 'eager_eot_threshold must be between 0.3 and 0.9';
    if (t.eager_eot_threshold > t.eot_threshold) return 'eager_eot_threshold must not exceed eot_threshold';
  }
  if (!(Number.isInteger(t.eot_timeout_ms) && t.eot_timeout_ms >= 500 && t.eot_timeout_ms <= 60_000)) return 'eot_timeout_ms must be an integer between 500 and 60000';
  return null;
}

const num = (v: string | null): number | undefined => (v === null || v.trim() === '' ? undefined : Number(v));

/** Validates the upgrade's query (reference §2, checked before the upgrade as Deepgram does). */
export function fluxParams(q: URLSearchParams): { error: string } | { encoding: string; rate: number; thresholds: FluxThresholds } {
  const model = q.get('model');
  if (!model || !MODELS.has(model)) return { error: `Invalid model: ${model ?? '(none)'}` };
  const encoding = q.get('encoding') ?? 'linear16';
  if (!(encoding in ENCODINGS)) return { error: `Unsupported encoding: ${encoding}` };
  const rate = num(q.get('sample_rate')) ?? 16000;
  if (!RATES.has(rate)) return { error: `Unsupported sample_rate: ${q.get('sample_rate')}` };
  const thresholds: FluxThresholds = { eot_threshold: num(q.get('eot_threshold')) ?? DEFAULT_EOT, eot_timeout_ms: num(q.get('eot_timeout_ms')) ?? 5000 };
  const eager = num(q.get('eager_eot_threshold'));
  if (eager !== undefined) thresholds.eager_eot_threshold = eager;
  const err = thresholdsError(thresholds);
  return err ? { error: err } : { encoding, rate, thresholds };
}

type State = 'initial' | 'ongoing' | 'awaiting';

/** One /v2/listen connection, after a valid upgrade. */
export function fluxListen(ws: WebSocket, params: { encoding: string; rate: number; thresholds: FluxThresholds }, keyterms: string[], o: FluxEmulatorOptions, stats: FluxStats, dropAfterMs?: number): void {
  stats.fluxConnections++;
  const requestId = crypto.randomUUID();
  const th = { ...params.thresholds };
  const bps = ENCODINGS[params.encoding];
  const rate = params.rate;
  const frameSamples = rate / 50; // 20 ms (44.1 kHz: 882)
  const frameBytes = frameSamples * bps;
  const pcm = new Int16Array(frameSamples);
  let pending: Buffer = Buffer.alloc(0);
  let seq = 0;
  let samples = 0; // audio time
  let turnIndex = 0;
  let phraseIndex = 0;
  let state: State = 'initial';
  let turnStart = 0; // s
  let speechS = 0; // speech heard in this turn
  let speechEnd = 0; // s: end of the last speech frame
  let speechFrames = 0;
  let silenceS = 0;
  let inSpeech = false;
  let confidence = 0;
  let eotMs = o.drawEndOfTurnMs();
  let nextUpdate = UPDATE_EVERY_S;
  let stateEventInSlot = false;
  let closing = false;
  let idle: NodeJS.Timeout | null = null;
  let keys = keyterms.slice();

  const now = () => samples / rate;
  const send = (m: Record<string, unknown>) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ ...m, sequence_id: seq++ }));
  };
  const fatal = (code: string, description: string) => {
    send({ type: 'Error', code, description });
    closing = true;
    ws.close(); // no status code: the client sees 1005, as from the service
  };
  // A bug of ours on one connection (counted by the guard) ends that connection only.
  const broken = () => ws.terminate();
  const armIdle = () => {
    if (idle) clearTimeout(idle);
    idle = setTimeout(guard('timer', () => fatal('NET-0001', `No audio received for ${IDLE_CLOSE_MS / 1000} seconds.`), broken), IDLE_CLOSE_MS);
  };
  const words = () => o.phrases[phraseIndex % o.phrases.length].split(/\s+/).filter(Boolean);
  const visible = (): string[] => {
    if (state === 'initial') return [];
    const all = words();
    return state === 'ongoing' ? all.slice(0, Math.max(1, Math.ceil(speechS * WORDS_PER_S))) : all;
  };
  const turnInfo = (event: string, extra: Record<string, unknown> = {}) => {
    const w = visible();
    const end = state === 'initial' ? turnStart : Math.max(speechEnd, turnStart);
    const step = w.length ? (end - turnStart) / w.length : 0;
    send({
      type: 'TurnInfo', request_id: requestId, event, turn_index: turnIndex,
      audio_window_start: round(turnStart), audio_window_end: round(now()),
      transcript: w.join(' '),
      words: w.map((word, i) => ({ word, confidence: 0.95, start: round(turnStart + i * step), end: round(turnStart + (i + 1) * step) })),
      end_of_turn_confidence: round(confidence),
      ...extra,
    });
    if (event !== 'Update') stateEventInSlot = true;
  };
  const endTurn = (trigger: 'model' | 'timeout' | 'manual') => {
    if (state !== 'initial') state = 'awaiting'; // the whole phrase is the turn's text
    turnInfo('EndOfTurn', { trigger });
    turnIndex++;
    phraseIndex++;
    state = 'initial';
    turnStart = now();
    speechS = 0;
    confidence = 0;
    eotMs = o.drawEndOfTurnMs();
  };

  const frame = (f: Buffer) => {
    const n = decode(f, params.encoding, pcm);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
    const loud = Math.sqrt(sum / Math.max(1, n)) > o.speechRms;
    const frameS = n / rate;
    samples += n;
    if (loud) {
      speechFrames++;
      silenceS = 0;
      confidence = 0.01;
      if (!inSpeech && speechFrames >= ONSET_FRAMES) {
        inSpeech = true;
        if (state === 'initial') {
          state = 'ongoing';
          turnStart = Math.max(turnStart, now() - ONSET_FRAMES * frameS);
          speechS = ONSET_FRAMES * frameS;
          speechEnd = now();
          turnInfo('StartOfTurn');
        } else if (state === 'awaiting') {
          state = 'ongoing';
          turnInfo('TurnResumed');
        }
      } else if (inSpeech) speechS += frameS;
      if (inSpeech) speechEnd = now();
    } else {
      speechFrames = 0;
      inSpeech = false;
      if (state !== 'initial') {
        silenceS += frameS;
        confidence = Math.min(0.99, (DEFAULT_EOT * silenceS * 1000) / Math.max(1, eotMs));
        if (confidence >= th.eot_threshold) endTurn('model');
        else if (silenceS * 1000 >= th.eot_timeout_ms) endTurn('timeout');
        else if (state === 'ongoing' && th.eager_eot_threshold !== undefined && confidence >= th.eager_eot_threshold) {
          state = 'awaiting';
          turnInfo('EagerEndOfTurn');
        }
      }
    }
    if (now() >= nextUpdate - 1e-9) {
      if (!stateEventInSlot) turnInfo('Update');
      stateEventInSlot = false;
      nextUpdate += UPDATE_EVERY_S;
    }
  };

  const configure = (msg: Record<string, unknown>) => {
    stats.fluxConfigures++;
    const fail = (code: string, description: string) => send({ type: 'ConfigureFailure', request_id: requestId, code, description });
    const t = msg.thresholds;
    if (t !== undefined && (typeof t !== 'object' || t === null || Array.isArray(t))) return fail('INVALID_CONFIGURE', 'thresholds must be an object');
    const next = { ...th };
    for (const [k, v] of Object.entries((t ?? {}) as Record<string, unknown>)) {
      if (k !== 'eot_threshold' && k !== 'eager_eot_threshold' && k !== 'eot_timeout_ms') return fail('INVALID_CONFIGURE', `unknown threshold ${k.slice(0, 40)}`);
      if (typeof v !== 'number' || !Number.isFinite(v)) return fail('INVALID_THRESHOLD', `${k} must be a number`);
      next[k] = v;
    }
    const err = thresholdsError(next);
    if (err) return fail('INVALID_THRESHOLD', err);
    const kt = msg.keyterms;
    if (kt !== undefined && (!Array.isArray(kt) || kt.length > 100 || kt.some((k) => typeof k !== 'string'))) return fail('INVALID_CONFIGURE', 'keyterms must be an array of at most 100 strings');
    Object.assign(th, next);
    if (kt !== undefined) keys = (kt as string[]).slice(); // replaces the list; [] clears it
    send({ type: 'ConfigureSuccess', request_id: requestId, thresholds: { ...th }, keyterms: keys });
  };

  send({ type: 'Connected', request_id: requestId });
  armIdle();
  ws.on('ping', guard('provider', armIdle, broken)); // Deepgram's advice for an idle v2 socket
  ws.on('message', guard('provider', (data: Buffer, isBinary: boolean) => {
    if (closing) return;
    armIdle();
    if (isBinary) {
      const buf = data as Buffer;
      stats.fluxAudioBytes += buf.length;
      pending = pending.length ? Buffer.concat([pending, buf]) : buf;
      let off = 0;
      for (; off + frameBytes <= pending.length; off += frameBytes) {
        frame(pending.subarray(off, off + frameBytes));
        if (dropAfterMs !== undefined && now() * 1000 >= dropAfterMs) return void ws.terminate();
      }
      pending = Buffer.from(pending.subarray(off));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return fatal('UNPARSABLE_CLIENT_MESSAGE', 'Client message was not valid JSON.');
    }
    const type = typeof msg === 'object' && msg !== null ? (msg as { type?: unknown }).type : undefined;
    if (type === 'Configure') configure(msg as Record<string, unknown>);
    else if (type === 'ForceEndTurn') endTurn('manual');
    else if (type === 'CloseStream') {
      // Decode what is buffered, the last Updates, no EndOfTurn; close without a code.
      const whole = pending.length - (pending.length % bps);
      if (whole > 0) frame(pending.subarray(0, whole));
      pending = Buffer.alloc(0);
      if (now() > nextUpdate - UPDATE_EVERY_S + 1e-9) turnInfo('Update');
      closing = true;
      ws.close();
    } else fatal('UNPARSABLE_CLIENT_MESSAGE', `Unknown or invalid client message type: ${String(type).slice(0, 40)}`); // KeepAlive and Finalize are v1 only
  }, broken));
  ws.on('close', guard('provider', () => {
    if (idle) clearTimeout(idle);
  }));
}

const round = (s: number) => Math.round(s * 1000) / 1000;

function decode(f: Buffer, encoding: string, pcm: Int16Array): number {
  if (encoding === 'mulaw') return ulawDecodeInto(f, pcm);
  if (encoding === 'alaw') return alawDecodeInto(f, pcm);
  const bps = ENCODINGS[encoding];
  const n = Math.floor(f.length / bps);
  for (let i = 0; i < n; i++) pcm[i] = bps === 2 ? f.readInt16LE(i * 2) : f.readInt32LE(i * 4) >> 16;
  return n;
}
