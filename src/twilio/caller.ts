// A simulated Twilio caller speaking the exact Media Streams protocol: it
// signs the voice webhook and the WebSocket upgrade, sends 20 ms frames in
// real time (speech when given, μ-law silence otherwise, as a phone does),
// plays what it receives at real time, echoes marks when the audio before
// them has played (all at once on `clear`), and measures what it heard.
import crypto from 'node:crypto';
import twilio from 'twilio';
import WebSocket from 'ws';
import { ulawDecode } from '../media/g711.js';

export interface CallerOptions {
  /** Where the server listens, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** PUBLIC_URL the server signs against (defaults to baseUrl). */
  publicUrl?: string;
  authToken: string;
  to: string;
  from?: string;
  /** Record every received frame (for the WAV), and every sent one (`sent`). */
  record?: boolean;
  /** Don't run a send timer: the owner calls sendNextFrame() every 20 ms (load tests drive many callers from one clock). */
  manualClock?: boolean;
  /**
   * Load tests: keep the generator cheap. Received audio is not decoded to
   * tell speech from silence, and no event log is kept (`events` stays
   * empty: hundreds of callers logging ten marks a second grew the load
   * process's heap by ~120,000 objects a minute, and its collections are
   * stalls on the loop that timestamps every frame).
   */
  skipAnalysis?: boolean;
  /** The call's CallSid and account (the Twilio REST emulator answers its own calls with this caller). */
  callSid?: string;
  accountSid?: string;
}

export interface CallSummary {
  outcome: 'connected' | 'rejected' | 'hangup' | 'error';
  twiml?: string;
  framesReceived: number;
  nonSilentFrames: number;
  partialFrames: number;
  marksReceived: number;
  marksEchoed: number;
  clears: number;
  timeToFirstAudioMs: number | null;
  gapsOver40ms: number;
  gapP50Ms: number | null;
  gapP99Ms: number | null;
  gapMaxMs: number | null;
  closeCode: number | null;
}

const SILENCE = new Uint8Array(160).fill(0xff);
// Base64 of each queued frame, computed once per speech buffer (load tests
// queue the same phrase on hundreds of callers) and for silence.
const base64Cache = new WeakMap<Uint8Array, string[]>();
const SILENCE_B64 = Buffer.from(SILENCE).toString('base64');
/** Frames up to and including the last audible one of each speech buffer (the caller's last audio), cached like the base64. */
const audibleFrames = new WeakMap<Uint8Array, number>();
function framesToLastAudible(ulaw: Uint8Array): number {
  let n = audibleFrames.get(ulaw);
  if (n === undefined) {
    n = 0;
    for (let i = 0; i + 160 <= ulaw.length; i += 160) if (audible(ulaw.subarray(i, i + 160))) n = i / 160 + 1;
    audibleFrames.set(ulaw, n);
  }
  return n;
}
function framesAsBase64(ulaw: Uint8Array): string[] {
  let out = base64Cache.get(ulaw);
  if (!out) {
    out = [];
    for (let i = 0; i + 160 <= ulaw.length; i += 160) out.push(Buffer.from(ulaw.buffer, ulaw.byteOffset + i, 160).toString('base64'));
    base64Cache.set(ulaw, out);
  }
  return out;
}

export class TwilioCaller {
  readonly callSid: string;
  private readonly accountSid: string;
  readonly streamSid = 'MZ' + crypto.randomBytes(16).toString('hex');
  private ws: WebSocket | null = null;
  private seq = 1;
  private chunk = 1;
  private sendTimer: NodeJS.Timeout | null = null;
  /** Caller audio waiting to go out, as the base64 payload of each 20 ms frame. */
  private outQueue: string[] = [];
  private playheadUntil = 0;
  private pendingMarks: { name: string; timer: NodeJS.Timeout }[] = [];
  private startedAt = 0;
  private lastFrameAt = 0;
  readonly gaps: number[] = [];
  /** The same gaps split: inside one spoken segment, or across a segment end (a `.end` mark or a clear). */
  readonly inSegmentGaps: number[] = [];
  readonly betweenSegmentGaps: number[] = [];
  private segmentEnded = false;
  readonly received: Uint8Array[] = [];
  /** With `record`: every frame sent, in order (what the caller said, silence included). */
  readonly sent: Uint8Array[] = [];
  readonly events: { at: number; event: string; name?: string }[] = [];
  private closeCode: number | null = null;
  /** The media stream has closed (either side). */
  isClosed = false;
  /** performance.now() when it closed; 0 while open. */
  closedAt = 0;
  private closed: Promise<number>;
  private resolveClosed!: (code: number) => void;
  readonly stats = { frames: 0, nonSilent: 0, partial: 0, marks: 0, echoed: 0, clears: 0, firstAudioAt: 0 };
  /**
   * Voice-to-voice, as the caller hears it: from sending the last audible
   * frame of an utterance to the next agent frame arriving, for utterances
   * that end while nothing of the agent's is left to play (one that ends over
   * the agent's voice has no such gap). ms, in order.
   */
  readonly voiceToVoice: number[] = [];
  /** Frames still to send until the queued utterance's last audible one; then the wait for the agent starts. */
  private framesToSpeechEnd = 0;
  private speechEndedAt = 0;
  /** Called for each received 20 ms frame (tests listen for the agent's voice). */
  onAudio?: (frame: Uint8Array) => void;

  constructor(private readonly o: CallerOptions) {
    this.callSid = o.callSid ?? 'CA' + crypto.randomBytes(16).toString('hex');
    this.accountSid = o.accountSid ?? 'AC' + '0'.repeat(32);
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  private get publicUrl(): string {
    return (this.o.publicUrl ?? this.o.baseUrl).replace(/\/+$/, '');
  }

  /** POSTs the signed voice webhook; returns the TwiML. */
  async webhook(signatureToken = this.o.authToken): Promise<{ status: number; twiml: string }> {
    const params: Record<string, string> = {
      CallSid: this.callSid, AccountSid: this.accountSid, From: this.o.from ?? '+15005550006', To: this.o.to,
      CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01',
    };
    const sig = twilio.getExpectedTwilioSignature(signatureToken, this.publicUrl + '/twilio/voice', params);
    const res = await fetch(this.o.baseUrl + '/twilio/voice', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': sig },
      body: new URLSearchParams(params).toString(),
    });
    return { status: res.status, twiml: await res.text() };
  }

  /** Dials: webhook, then the media stream. */
  async dial(): Promise<{ outcome: CallSummary['outcome']; twiml: string }> {
    const { status, twiml } = await this.webhook();
    if (status !== 200) throw new Error(`voice webhook answered ${status}: ${twiml}`);
    if (/<Reject/.test(twiml)) return { outcome: 'rejected', twiml };
    const url = /<Stream[^>]*url="([^"]+)"/.exec(twiml)?.[1];
    const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)?.[1];
    if (!url || !token) return { outcome: 'hangup', twiml };
    await this.connect(url.replace(/&amp;/g, '&'), { token });
    return { outcome: 'connected', twiml };
  }

  /** Opens the media stream as Twilio would (signed upgrade), sends connected + start. */
  async connect(streamUrl: string, customParameters: Record<string, string>, signatureToken = this.o.authToken): Promise<void> {
    const sig = twilio.getExpectedTwilioSignature(signatureToken, streamUrl, {});
    // The public wss URL is signed; the socket goes to where the server really listens.
    const target = this.o.baseUrl.replace(/^http/, 'ws') + new URL(streamUrl).pathname;
    const ws = new WebSocket(target, { headers: { 'x-twilio-signature': sig }, perMessageDeflate: false });
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', (code) => {
      this.closeCode = code;
      this.isClosed = true;
      this.closedAt = performance.now();
      this.stopSending();
      this.resolveClosed(code);
    });
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    this.send({
      event: 'start', sequenceNumber: String(this.seq++), streamSid: this.streamSid,
      start: {
        accountSid: this.accountSid, streamSid: this.streamSid, callSid: this.callSid, tracks: ['inbound'],
        customParameters, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    });
    this.startedAt = performance.now();
    this.startSending();
  }

  send(msg: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Sends raw text (tests use it for garbage). */
  sendRaw(data: string | Buffer, binary = false): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(data, { binary });
  }

  /** Queues caller speech (μ-law); it goes out in real time, 20 ms per frame. */
  speak(ulaw: Uint8Array): void {
    const last = framesToLastAudible(ulaw);
    if (last > 0) this.framesToSpeechEnd = this.outQueue.length + last;
    for (const f of framesAsBase64(ulaw)) this.outQueue.push(f);
  }

  get speaking(): boolean {
    return this.outQueue.length > 0;
  }

  dtmf(digit: string): void {
    this.send({ event: 'dtmf', streamSid: this.streamSid, sequenceNumber: String(this.seq++), dtmf: { track: 'inbound_track', digit } });
  }

  private sentFrames = 0;

  /** Sends the next 20 ms of caller audio (speech if queued, else silence). */
  sendNextFrame(): void {
    const payload = this.outQueue.shift() ?? SILENCE_B64;
    this.sentFrames++;
    if (this.o.record && this.ws?.readyState === WebSocket.OPEN) this.sent.push(Buffer.from(payload, 'base64'));
    if (this.framesToSpeechEnd > 0 && --this.framesToSpeechEnd === 0) {
      const now = performance.now();
      this.speechEndedAt = this.playheadUntil <= now ? now : 0;
    }
    // Templated rather than JSON.stringify: a load test sends 10,000 of these a second.
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(
        `{"event":"media","sequenceNumber":"${this.seq++}","streamSid":"${this.streamSid}","media":{"track":"inbound",` +
          `"chunk":"${this.chunk++}","timestamp":"${this.sentFrames * 20}","payload":"${payload}"}}`,
      );
    }
  }

  private startSending(): void {
    if (this.o.manualClock) return;
    const t0 = performance.now();
    let n = 0;
    const step = () => {
      n++;
      this.sendNextFrame();
      this.sendTimer = setTimeout(step, Math.max(0, t0 + (n + 1) * 20 - performance.now()));
    };
    this.sendTimer = setTimeout(step, 20);
  }

  private stopSending(): void {
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = null;
    for (const m of this.pendingMarks) clearTimeout(m.timer);
    this.pendingMarks = [];
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) throw new Error('server sent a binary frame (Twilio error 31950)');
    const now = performance.now();
    if (this.o.skipAnalysis && data.length > 200 && data.includes('"event":"media"')) {
      // Load tests: count and time the frame without parsing JSON or decoding audio.
      // `"payload":"…"}}` closes the message; base64 of 160 bytes is 216 characters.
      const start = data.indexOf('"payload":"') + 11;
      const b64len = data.length - 3 - start;
      const padding = data[data.length - 4] === 0x3d ? (data[data.length - 5] === 0x3d ? 2 : 1) : 0;
      this.mediaArrived(now, (b64len / 4) * 3 - padding, null);
      return;
    }
    const msg = JSON.parse(data.toString()) as { event: string; streamSid?: string; media?: { payload: string }; mark?: { name: string } };
    if (msg.event !== 'media' && !this.o.skipAnalysis) this.events.push({ at: now, event: msg.event, name: msg.mark?.name });
    if (msg.streamSid !== this.streamSid) throw new Error('server used a wrong streamSid (Twilio error 31951)');
    if (msg.event === 'media') {
      const audio = Buffer.from(msg.media!.payload, 'base64');
      this.mediaArrived(now, audio.length, audio);
    } else if (msg.event === 'mark') {
      this.stats.marks++;
      const name = msg.mark!.name;
      if (name.endsWith('.end')) this.segmentEnded = true;
      const delay = Math.max(0, this.playheadUntil - now);
      const entry = {
        name,
        timer: setTimeout(() => {
          this.pendingMarks.splice(this.pendingMarks.indexOf(entry), 1);
          this.echo(name);
        }, delay),
      };
      this.pendingMarks.push(entry);
    } else if (msg.event === 'clear') {
      this.stats.clears++;
      this.segmentEnded = true;
      this.playheadUntil = now;
      // Twilio echoes every outstanding mark when it clears its buffer.
      for (const m of this.pendingMarks.splice(0)) {
        clearTimeout(m.timer);
        this.echo(m.name);
      }
    } else {
      throw new Error(`server sent unknown event ${msg.event}`);
    }
  }

  private mediaArrived(now: number, bytes: number, audio: Buffer | null): void {
    if (bytes % 160 !== 0) this.stats.partial++;
    if (this.speechEndedAt) {
      this.voiceToVoice.push(now - this.speechEndedAt);
      this.speechEndedAt = 0;
    }
    if (this.stats.frames === 0) this.stats.firstAudioAt = now;
    else {
      const gap = now - this.lastFrameAt;
      this.gaps.push(gap);
      (this.segmentEnded ? this.betweenSegmentGaps : this.inSegmentGaps).push(gap);
    }
    this.segmentEnded = false;
    this.lastFrameAt = now;
    this.stats.frames += Math.max(1, Math.floor(bytes / 160));
    if (audio) {
      if (!this.o.skipAnalysis && audible(audio)) this.stats.nonSilent++;
      if (this.o.record) this.received.push(audio);
      this.onAudio?.(audio);
    }
    // Played in order at real time after whatever is already buffered.
    this.playheadUntil = Math.max(this.playheadUntil, now) + (bytes / 8000) * 1000;
  }

  private echo(name: string): void {
    this.stats.echoed++;
    this.send({ event: 'mark', sequenceNumber: String(this.seq++), streamSid: this.streamSid, mark: { name } });
  }

  /** Ends the call from the caller's side: sends `stop`, keeps reading for `graceMs` (frames already on their way still count), then closes. */
  async hangup(graceMs = 50): Promise<number> {
    this.send({ event: 'stop', sequenceNumber: String(this.seq++), streamSid: this.streamSid, stop: { accountSid: this.accountSid, callSid: this.callSid } });
    this.stopSending();
    setTimeout(() => this.ws?.close(1000), graceMs);
    return this.closed;
  }

  /** Resolves when the server closes the stream (the agent hung up). */
  waitClosed(): Promise<number> {
    return this.closed;
  }

  audio(): Uint8Array {
    return Buffer.concat(this.received);
  }

  summary(outcome: CallSummary['outcome'] = 'connected'): CallSummary {
    const g = [...this.gaps].sort((a, b) => a - b);
    const q = (p: number) => (g.length ? +g[Math.min(g.length - 1, Math.floor(p * g.length))].toFixed(2) : null);
    return {
      outcome,
      framesReceived: this.stats.frames,
      nonSilentFrames: this.stats.nonSilent,
      partialFrames: this.stats.partial,
      marksReceived: this.stats.marks,
      marksEchoed: this.stats.echoed,
      clears: this.stats.clears,
      timeToFirstAudioMs: this.stats.firstAudioAt ? +(this.stats.firstAudioAt - this.startedAt).toFixed(1) : null,
      gapsOver40ms: g.filter((x) => x > 40).length,
      gapP50Ms: q(0.5),
      gapP99Ms: q(0.99),
      gapMaxMs: g.length ? +g[g.length - 1].toFixed(2) : null,
      closeCode: this.closeCode,
    };
  }
}

/** True when the frame carries audible sound. */
export function audible(frame: Uint8Array): boolean {
  const pcm = ulawDecode(frame);
  for (const v of pcm) if (Math.abs(v) > 500) return true;
  return false;
}
