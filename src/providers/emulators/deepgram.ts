// A local Deepgram: live STT on /v1/listen, TTS on /v1/speak (WebSocket and
// REST), speaking the wire protocol of ../shared/reference/deepgram.md closely
// enough that the unmodified @deepgram/sdk works against it.
// STT segments the μ-law audio by energy and answers each utterance with the
// next phrase of a configurable list; TTS answers with speech-like audio.
import http from 'node:http';
import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ulawDecodeInto } from '../../media/g711.js';
import { log } from '../../log.js';
import { synthesize } from './voice.js';
import { DEFAULT_FLUX_END_OF_TURN_MS, fluxListen, fluxParams } from './flux.js';
import { jittered, seededRandom } from './profiles.js';

export interface DeepgramEmulatorOptions {
  /** Wall-clock delay from the end of the endpointing window to the final result. */
  sttFinalDelayMs: number;
  /** What the "recogniser" hears, one phrase per utterance, cycling. */
  phrases: string[];
  /** Time to the first audio byte after a Flush. */
  ttsFirstByteMs: number;
  /** Synthesis speed: seconds of work per second of audio (0.1 = 10× faster than real time). */
  ttsRealtimeFactor: number;
  /** Frames whose RMS exceeds this (16-bit PCM) count as speech. */
  speechRms: number;
  /** Flux (/v2/listen): audio ms of silence after speech until EndOfTurn at the default eot_threshold (./flux.ts). */
  fluxEndOfTurnMs?: number;
  /** Relative spread per request of sttFinalDelayMs and ttsFirstByteMs (EMULATOR_PROFILE, see profiles.ts); absent: constant. */
  jitter?: { sttFinal?: number; ttsFirstByte?: number; fluxEndOfTurn?: number };
  /** Seed of the jitter's generator (default 1). */
  seed?: number;
}

export const DEFAULT_DEEPGRAM_EMULATOR: DeepgramEmulatorOptions = {
  sttFinalDelayMs: 250,
  phrases: ['Hello, I would like to book a table for two.', 'Tomorrow at seven in the evening.', 'Yes, that is right.', 'Thank you, goodbye.'],
  ttsFirstByteMs: 90,
  ttsRealtimeFactor: 0.1,
  speechRms: 400,
};

export interface DeepgramFaults {
  /** Abruptly drop the next STT connection after this many ms of received audio. */
  sttDropAfterMs?: number;
  /** Abruptly drop the next TTS connection when it receives its next Speak. */
  ttsDropOnSpeak?: boolean;
  /** Flushes per connection per window, instead of Deepgram's 20 (a service counting differently). */
  ttsFlushLimit?: number;
}

const ULAW_BYTES_PER_S = 8000;
/** Deepgram's TTS flush limit: Flush messages per connection per window. */
const FLUSH_LIMIT = 20;
const FLUSH_WINDOW_MS = 60_000;

function reject(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ err_code: code, err_msg: message, request_id: crypto.randomUUID() });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ndg-error: ${message}\r\n` +
      `dg-request-id: ${crypto.randomUUID()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function authorised(req: http.IncomingMessage): boolean {
  const auth = req.headers['authorization'];
  if (typeof auth === 'string' && /^(Token|Bearer)\s+\S+/i.test(auth)) return true;
  const proto = req.headers['sec-websocket-protocol'];
  return typeof proto === 'string' && /^(token|bearer)\s*,\s*\S+/i.test(proto);
}

export class DeepgramEmulator {
  readonly server: http.Server;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private readonly sockets = new Set<WebSocket>();
  private readonly random: () => number;
  faults: DeepgramFaults = {};
  /** Handler for /__emulator/* (fault injection), set by startEmulators. */
  control?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /**
   * Counters the tests (and `npm run load`, through /__emulator/faults) read:
   * `ttsOpen` is TTS connections open now, `flushWarnings` flushes refused
   * for the per-connection limit.
   */
  readonly stats = { sttConnections: 0, sttAudioBytes: 0, ttsCharacters: 0, ttsConnections: 0, ttsOpen: 0, flushes: 0, flushWarnings: 0, clears: 0, keepAlives: 0, finalizes: 0, fluxConnections: 0, fluxAudioBytes: 0, fluxConfigures: 0 };

  constructor(readonly opts: DeepgramEmulatorOptions = DEFAULT_DEEPGRAM_EMULATOR) {
    this.random = seededRandom(opts.seed ?? 1);
    this.server = http.createServer((req, res) => this.rest(req, res));
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (!authorised(req)) return reject(socket, 401, 'INVALID_AUTH', 'Invalid credentials.');
      const q = url.searchParams;
      if (url.pathname === '/v2/listen') return this.flux(req, socket, head, q);
      if (url.pathname !== '/v1/listen' && url.pathname !== '/v1/speak') return reject(socket, 404, 'NOT_FOUND', 'Not found.');
      if (url.pathname === '/v1/listen' && q.has('keywords') && (q.get('model') ?? '').startsWith('nova-3')) {
        return reject(socket, 400, 'INVALID_QUERY_PARAMETER', 'Keywords are not supported for Nova-3. Please use `keyterm` instead.');
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws);
        ws.on('close', () => this.sockets.delete(ws));
        if (url.pathname === '/v1/listen') this.listen(ws, q);
        else this.speak(ws, q);
      });
    });
    this.wss.on('headers', (headers, req) => {
      headers.push(`dg-request-id: ${crypto.randomUUID()}`);
      const proto = req.headers['sec-websocket-protocol'];
      if (typeof proto === 'string' && /^(token|bearer)/i.test(proto)) headers.push(`sec-websocket-protocol: ${proto.split(',')[0].trim()}`);
    });
  }

  /** One utterance's delay from the end of the endpointing window to its final, within the profile's bounds. */
  drawSttFinalDelayMs(): number {
    return jittered(this.opts.sttFinalDelayMs, this.opts.jitter?.sttFinal ?? 0, this.random);
  }

  /** One flush's (or REST request's) time to first byte, within the profile's bounds. */
  drawTtsFirstByteMs(): number {
    return jittered(this.opts.ttsFirstByteMs, this.opts.jitter?.ttsFirstByte ?? 0, this.random);
  }

  async listenOn(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
    const a = this.server.address() as { port: number };
    return `http://${host}:${a.port}`;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- REST TTS ----
  private rest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/__emulator/') && this.control) return this.control(req, res);
    if (req.method !== 'POST' || url.pathname !== '/v1/speak') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ err_code: 'NOT_FOUND', err_msg: 'Not found.' }));
      return;
    }
    if (!authorised(req)) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.' }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let text = '';
      try {
        text = String((JSON.parse(Buffer.concat(chunks).toString()) as { text?: unknown }).text ?? '');
      } catch {
        /* handled below */
      }
      if (!text) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ err_code: 'Bad Request', err_msg: 'text is required' }));
        return;
      }
      const audio = synthesize(text);
      setTimeout(() => {
        res.writeHead(200, {
          'content-type': 'audio/basic',
          'dg-request-id': crypto.randomUUID(),
          'dg-model-name': url.searchParams.get('model') ?? 'aura-2-thalia-en',
          'dg-char-count': String(text.length),
        });
        res.end(Buffer.from(audio));
      }, this.drawTtsFirstByteMs());
    });
  }

  // ---- live STT, Flux (listen v2: ./flux.ts) ----
  private flux(req: http.IncomingMessage, socket: Duplex, head: Buffer, q: URLSearchParams): void {
    const params = fluxParams(q);
    if ('error' in params) return reject(socket, 400, 'INVALID_QUERY_PARAMETER', params.error);
    const dropAfterMs = this.faults.sttDropAfterMs;
    this.faults.sttDropAfterMs = undefined;
    const eotMs = this.opts.fluxEndOfTurnMs ?? DEFAULT_FLUX_END_OF_TURN_MS;
    const drawEndOfTurnMs = () => jittered(eotMs, this.opts.jitter?.fluxEndOfTurn ?? 0, this.random);
    const o = { drawEndOfTurnMs, phrases: this.opts.phrases, speechRms: this.opts.speechRms };
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.on('close', () => this.sockets.delete(ws));
      fluxListen(ws, params, q.getAll('keyterm'), o, this.stats, dropAfterMs);
    });
  }

  // ---- live STT ----
  private listen(ws: WebSocket, q: URLSearchParams): void {
    this.stats.sttConnections++;
    const o = this.opts;
    const endpointingMs = q.get('endpointing') === 'false' ? Infinity : Number(q.get('endpointing') ?? 10);
    const utteranceEndMs = q.has('utterance_end_ms') ? Number(q.get('utterance_end_ms')) : 0;
    const interim = q.get('interim_results') === 'true';
    const vadEvents = q.get('vad_events') === 'true';
    const dropAfterMs = this.faults.sttDropAfterMs;
    this.faults.sttDropAfterMs = undefined;
    const pcm = new Int16Array(8000);
    const hash = crypto.createHash('sha256');
    let bytes = 0; // audio timeline, 1 byte = 1 sample
    let phraseIndex = 0;
    let inSpeech = false;
    let speechFrames = 0;
    let silenceMs = 0;
    let uttStart = 0; // seconds
    let uttEnd = 0;
    let lastFinalEnd = 0;
    let lastInterimAt = 0;
    let pendingFinal: NodeJS.Timeout | null = null;
    let utteranceEndTimer: NodeJS.Timeout | null = null;
    let idle: NodeJS.Timeout | null = null;
    let closing = false;
    const send = (m: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m));
    const armIdle = () => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => ws.close(1011, 'NET-0001'), 10_000);
    };
    armIdle();
    const phrase = () => o.phrases[phraseIndex % o.phrases.length];
    const results = (text: string, start: number, end: number, isFinal: boolean, speechFinal: boolean, fromFinalize: boolean) => {
      const words = text.split(/\s+/).filter(Boolean);
      const step = words.length ? (end - start) / words.length : 0;
      send({
        channel: {
          alternatives: [{
            transcript: text,
            confidence: text ? 0.98 : 0,
            words: words.map((w, i) => ({ word: w.toLowerCase().replace(/[^\w']/g, ''), start: start + i * step, end: start + (i + 1) * step, confidence: 0.98, punctuated_word: w })),
          }],
        },
        metadata: { model_info: { name: 'general-nova-3', version: 'emulated', arch: 'nova-3' }, request_id: crypto.randomUUID(), model_uuid: 'emulated' },
        type: 'Results', channel_index: [0, 1], duration: Math.max(0, end - start), start, is_final: isFinal, from_finalize: fromFinalize, speech_final: speechFinal,
      });
    };
    const emitFinal = (fromFinalize: boolean) => {
      if (pendingFinal) clearTimeout(pendingFinal);
      pendingFinal = null;
      const text = phrase();
      phraseIndex++;
      results(text, lastFinalEnd, Math.max(uttEnd, lastFinalEnd), true, !fromFinalize, fromFinalize);
      lastFinalEnd = Math.max(uttEnd, lastFinalEnd);
      if (utteranceEndMs > 0 && interim) {
        if (utteranceEndTimer) clearTimeout(utteranceEndTimer);
        const lastWordEnd = uttEnd;
        utteranceEndTimer = setTimeout(() => send({ type: 'UtteranceEnd', channel: [0, 1], last_word_end: lastWordEnd }), Math.max(0, utteranceEndMs - Math.min(endpointingMs, utteranceEndMs)));
      }
    };
    const finishStream = () => {
      if (closing) return;
      closing = true;
      if (pendingFinal || inSpeech) {
        uttEnd = bytes / ULAW_BYTES_PER_S;
        emitFinal(true);
      }
      send({ type: 'Metadata', transaction_key: 'deprecated', request_id: crypto.randomUUID(), sha256: hash.digest('hex'), created: new Date().toISOString(), duration: bytes / ULAW_BYTES_PER_S, channels: 1 });
      ws.close(1000);
    };
    ws.on('message', (data, isBinary) => {
      if (closing) return;
      armIdle();
      if (!isBinary) {
        let msg: { type?: string };
        try {
          msg = JSON.parse(data.toString()) as { type?: string };
        } catch {
          ws.close(1008, 'DATA-0000');
          return;
        }
        if (msg.type === 'KeepAlive') this.stats.keepAlives++;
        else if (msg.type === 'Finalize') {
          this.stats.finalizes++;
          if (inSpeech || pendingFinal) {
            uttEnd = bytes / ULAW_BYTES_PER_S;
            inSpeech = false;
            emitFinal(true);
          }
        } else if (msg.type === 'CloseStream') finishStream();
        return;
      }
      const buf = data as Buffer;
      if (buf.length === 0) return finishStream();
      hash.update(buf);
      for (let off = 0; off < buf.length; off += 160) {
        const frame = buf.subarray(off, Math.min(off + 160, buf.length));
        const n = ulawDecodeInto(frame, pcm);
        let sum = 0;
        for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
        const rms = Math.sqrt(sum / Math.max(1, n));
        const frameMs = (n / ULAW_BYTES_PER_S) * 1000;
        const t = bytes / ULAW_BYTES_PER_S;
        bytes += n;
        this.stats.sttAudioBytes += n;
        if (rms > o.speechRms) {
          speechFrames++;
          silenceMs = 0;
          if (!inSpeech && speechFrames >= 3) {
            inSpeech = true;
            if (pendingFinal) {
              clearTimeout(pendingFinal); // speech resumed inside the endpointing window: same utterance
              pendingFinal = null;
            } else {
              uttStart = t - 0.04;
              lastInterimAt = t;
              if (vadEvents) send({ type: 'SpeechStarted', channel: [0], timestamp: Math.max(0, uttStart) });
            }
          }
          if (inSpeech && interim && t - lastInterimAt >= 1) {
            lastInterimAt = t;
            const words = phrase().split(/\s+/);
            const share = Math.min(words.length - 1, Math.max(1, Math.round((t - uttStart) * 2.5)));
            results(words.slice(0, share).join(' '), lastFinalEnd, t, false, false, false);
          }
        } else {
          speechFrames = 0;
          if (inSpeech) {
            silenceMs += frameMs;
            // As the service does, the last interim before the endpoint carries every
            // word heard so far (the final then confirms it): sent 100 ms into the silence.
            if (interim && silenceMs >= 100 && silenceMs - frameMs < 100 && silenceMs < Math.min(endpointingMs, 60_000)) {
              results(phrase(), lastFinalEnd, t, false, false, false);
            }
            if (silenceMs >= Math.min(endpointingMs, 60_000) && silenceMs >= 20) {
              inSpeech = false;
              uttEnd = t - silenceMs / 1000;
              pendingFinal = setTimeout(() => emitFinal(false), this.drawSttFinalDelayMs());
            }
          }
        }
        if (dropAfterMs !== undefined && (bytes / ULAW_BYTES_PER_S) * 1000 >= dropAfterMs) {
          ws.terminate();
          return;
        }
      }
    });
    ws.on('close', () => {
      for (const t of [pendingFinal, utteranceEndTimer, idle]) if (t) clearTimeout(t);
    });
  }

  // ---- live TTS ----
  private speak(ws: WebSocket, q: URLSearchParams): void {
    this.stats.ttsConnections++;
    this.stats.ttsOpen++;
    const connection = this.stats.ttsConnections;
    const o = this.opts;
    const model = q.get('model') ?? 'aura-asteria-en';
    const encoding = q.get('encoding') ?? 'linear16';
    let text = '';
    let sequence = 0;
    let clearSeq = 0;
    let generation = 0;
    const flushTimes: number[] = [];
    /** Flushes being synthesised, in order; the first is sending. */
    const synth: { seq: number; audio: Uint8Array; at: number; ttfbMs: number }[] = [];
    let offset = 0;
    // First byte after ttsFirstByteMs, then 100 ms chunks at the real-time factor.
    // The first byte does not depend on how much text the Flush covers:
    // Deepgram publishes Aura-2's time to first byte as one figure ("around
    // 90ms" steady state, deepgram.com/learn/engineering-real-time-low-latency-voice-ai-at-scale)
    // and no relation to the text's length for the WebSocket (its REST
    // chunking guide only says total processing grows with length,
    // developers.deepgram.com/docs/text-chunking-for-tts-optimization). So
    // here a shorter first piece gets its audio sooner only by being sent
    // sooner; whether Aura itself answers a shorter Flush faster can only be
    // measured against the service.
    const chunk = 800;
    const chunkMs = Math.max(1, Math.round(100 * o.ttsRealtimeFactor));
    const next = (gen: number) => (): void => {
      const job = synth[0];
      if (gen !== generation || !job || ws.readyState !== ws.OPEN) return;
      if (offset < job.audio.length) {
        ws.send(job.audio.subarray(offset, offset + chunk));
        offset += chunk;
        later(chunkMs, next(gen));
        return;
      }
      send({ type: 'Flushed', sequence_id: job.seq });
      synth.shift();
      offset = 0;
      // The service synthesises ahead: a queued flush's first byte is due ttsFirstByteMs after its Flush.
      if (synth.length) later(Math.max(0, synth[0].at + synth[0].ttfbMs - Date.now()), next(gen));
    };
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    };
    const send = (m: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m));
    send({ type: 'Metadata', request_id: crypto.randomUUID(), model_name: model, model_version: 'emulated', model_uuid: 'emulated' });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.close(1003, 'MESSAGE-0000');
        return;
      }
      let msg: { type?: string; text?: unknown };
      try {
        msg = JSON.parse(data.toString()) as { type?: string; text?: unknown };
      } catch {
        ws.close(1008, 'DATA-0000');
        return;
      }
      switch (msg.type) {
        case 'Speak':
          if (this.faults.ttsDropOnSpeak) {
            this.faults.ttsDropOnSpeak = false;
            ws.terminate();
            return;
          }
          text += String(msg.text ?? '');
          this.stats.ttsCharacters += String(msg.text ?? '').length;
          return;
        case 'Flush': {
          // Deepgram processes at most 20 Flush messages per 60 s per connection; a
          // further one is not processed and gets this Warning (the message as the
          // service sends it, deepgram-python-sdk#617: warn_code/warn_msg, not the
          // code/description of the SDK's types).
          const now = Date.now();
          while (flushTimes.length && now - flushTimes[0] > FLUSH_WINDOW_MS) flushTimes.shift();
          if (flushTimes.length >= (this.faults.ttsFlushLimit ?? FLUSH_LIMIT)) {
            this.stats.flushWarnings++;
            log.warn('Flush limit exceeded (emulated Deepgram TTS): flush not processed', { connection, limit: FLUSH_LIMIT, windowMs: FLUSH_WINDOW_MS });
            send({ type: 'Warning', warn_code: 'EXCESSIVE_FLUSH', warn_msg: 'Rate limit exceeded for flushes. Please try again later.' });
            return;
          }
          flushTimes.push(now);
          this.stats.flushes++;
          // One flush after another, as the service does: a flush's audio, then
          // its Flushed, then the next flush's audio.
          synth.push({ seq: sequence++, audio: encoding === 'mulaw' ? synthesize(text) : new Uint8Array(0), at: now, ttfbMs: this.drawTtsFirstByteMs() });
          text = '';
          if (synth.length === 1) later(synth[0].ttfbMs, next(generation));
          return;
        }
        case 'Clear':
          this.stats.clears++;
          text = '';
          generation++;
          synth.length = 0;
          offset = 0;
          send({ type: 'Cleared', sequence_id: clearSeq++ });
          return;
        case 'Close':
          ws.close(1000);
          return;
        default:
          send({ type: 'Warning', description: `Unknown message type ${String(msg.type)}`, code: 'UNKNOWN_MESSAGE' });
      }
    });
    ws.on('close', () => {
      this.stats.ttsOpen--;
      for (const t of timers) clearTimeout(t);
    });
  }
}
