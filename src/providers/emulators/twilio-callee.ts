// The far end of a call the Twilio REST emulator places: a person who says
// "Hello?" and then answers the agent line by line, or an answering machine
// that plays a greeting and a beep (or none) and then records. It speaks the
// Media Streams protocol through the simulated caller (src/twilio/caller.ts)
// and reports when Twilio's AMD would decide, and what the machine recorded.
import { TwilioCaller, audible } from '../../twilio/caller.js';
import { ulawEncode } from '../../media/g711.js';
import { synthesize } from './voice.js';
import { guard } from '../../guard.js';

export type CalleeKind = 'human' | 'machine' | 'machine_no_beep';

export const MACHINE_GREETING = "Hi, you've reached Sam. I can't take your call right now. Please leave a message after the tone.";
export const BEEP_MS = 500;

/** A steady 1 kHz tone at about -10 dBFS: what most voicemail systems beep with. */
export function beep(ms = BEEP_MS): Uint8Array {
  const pcm = new Int16Array((ms / 1000) * 8000);
  for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(10000 * Math.sin((2 * Math.PI * 1000 * i) / 8000));
  return ulawEncode(pcm);
}

const silence = (ms: number) => new Uint8Array((ms / 1000) * 8000).fill(0xff);
const ms = (ulaw: Uint8Array) => (ulaw.length / 8000) * 1000;

export interface CalleeOptions {
  kind: CalleeKind;
  /** A person's lines after "Hello?", each said once the agent has been quiet for `quietMs`. */
  script: string[];
  quietMs: number;
  callSid: string;
  accountSid: string;
  authToken: string;
  to: string;
  from: string;
}

/** When, from the stream's start, Twilio's AMD reaches each verdict for this callee. */
export interface AmdTimes {
  /** Enable: the classification (human after a short greeting and silence; machine after 2.4 s of speech). */
  detect: { raw: string; atMs: number };
  /** DetectMessageEnd: human at once, a machine at the end of its greeting. */
  messageEnd: { raw: string; atMs: number };
}

export class EmulatedCallee {
  private caller: TwilioCaller | null = null;
  /** Audible agent frames heard before the end of the beep (a machine records only after it). */
  heardBeforeBeep = 0;
  /** Audible agent frames recorded after the beep, and when the first arrived (ms after the beep's end). */
  recordedFrames = 0;
  firstRecordedMs: number | null = null;
  private startedAt = 0;
  private greetingEndsMs = 0;
  private lastAudibleAt = 0;
  private heardAgent = false;
  private line = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: CalleeOptions) {}

  /** Opens the Media Stream to `streamUrl` (signed like Twilio's) and starts talking. */
  async connect(streamUrl: string, parameters: Record<string, string>): Promise<void> {
    const o = this.o;
    // The caller connects to baseUrl + the stream's path: here both come from the one URL.
    const caller = (this.caller = new TwilioCaller({
      baseUrl: new URL(streamUrl).origin.replace(/^ws/, 'http'), authToken: o.authToken, to: o.to, from: o.from, callSid: o.callSid, accountSid: o.accountSid,
    }));
    await caller.connect(streamUrl, parameters);
    this.startedAt = performance.now();
    caller.onAudio = (frame) => this.onAudio(frame);
    if (o.kind === 'human') {
      caller.speak(synthesize('Hello?'));
    } else {
      const greeting = synthesize(MACHINE_GREETING);
      const tone = o.kind === 'machine' ? beep() : new Uint8Array(0);
      this.greetingEndsMs = 200 + ms(greeting) + ms(tone);
      caller.speak(new Uint8Array([...silence(200), ...greeting, ...tone]));
    }
    this.timer = setInterval(guard('timer', () => this.converse()), 50);
  }

  /** Resolves when the Media Stream has closed (either side). */
  waitClosed(): Promise<number> {
    return this.caller?.waitClosed() ?? Promise.resolve(1000);
  }

  get closed(): boolean {
    return this.caller?.isClosed ?? true;
  }

  amdTimes(): AmdTimes {
    if (this.o.kind === 'human') {
      const hello = ms(synthesize('Hello?'));
      return { detect: { raw: 'human', atMs: hello + 1200 }, messageEnd: { raw: 'human', atMs: hello + 1200 } };
    }
    const end = this.o.kind === 'machine' ? { raw: 'machine_end_beep', atMs: this.greetingEndsMs + 100 } : { raw: 'machine_end_silence', atMs: this.greetingEndsMs + 1500 };
    return { detect: { raw: 'machine_start', atMs: 200 + 2600 }, messageEnd: end };
  }

  private onAudio(frame: Uint8Array): void {
    if (!audible(frame)) return;
    const now = performance.now();
    this.lastAudibleAt = now;
    this.heardAgent = true;
    if (this.o.kind === 'human') return;
    const sinceGreeting = now - this.startedAt - this.greetingEndsMs;
    if (sinceGreeting < 0) this.heardBeforeBeep++;
    else {
      this.recordedFrames++;
      this.firstRecordedMs ??= sinceGreeting;
    }
  }

  /** A person answers each agent turn with the next line; after the last one, waits for the agent's reply and hangs up. */
  private converse(): void {
    const c = this.caller;
    if (this.o.kind !== 'human' || !c || c.isClosed || c.speaking || !this.heardAgent) return;
    if (performance.now() - this.lastAudibleAt < this.o.quietMs) return;
    this.heardAgent = false;
    const next = this.o.script[this.line++];
    if (next !== undefined) c.speak(synthesize(next));
    else void c.hangup();
  }

  /** Twilio ends the stream (a redirect, a hang-up): `stop`, then the socket closes. */
  async stop(): Promise<void> {
    this.close();
    if (this.caller && !this.caller.isClosed) await this.caller.hangup(0);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
