// Who answered an outbound call, and the voicemail drop. An AnswerScreen
// holds the agent's greeting until the verdict: ours (the greeting
// classifier of src/call/amd.ts on the call's own audio, for SIP calls) or
// the carrier's (Twilio's AMD, passed in through answered()). A person (or
// no verdict) gets the conversation; a machine gets the voicemail message,
// spoken in the agent's voice once the greeting is over (after its beep, or
// after its closing silence when it has none), then the call hangs up.
//
//   const screen = new AnswerScreen(session, { message, detect: agent.config.amd, events });
//   conversation.start();           // the greeting waits for screen.converse
//   screen.answered('machine', { source: 'twilio', raw: 'machine_start' });  // Twilio calls only
import { FRAME_BEEP, FRAME_BEEP_END, FRAME_BEEP_START, FRAME_SPEECH } from '../media/media-channel.js';
import { guard } from '../guard.js';
import { amdTotal } from '../metrics/index.js';
import { GreetingClassifier, type AmdDecision, type AmdSettings } from '../call/amd.js';
import type { CallScreen, CallSession } from '../call/session.js';
import type { AmdMode, AnsweredBy, CarrierEvents, PlaceRequest } from '../outbound/types.js';
import type { CallStore } from '../store/types.js';
import { fillPlaceholders } from '../outbound/variables.js';

export interface AnswerScreenOptions {
  /** Left on a machine in the agent's voice, then the call hangs up. Absent: a machine is hung up on at once. */
  message?: string;
  /** Run our detector with these settings (SIP calls). Absent: the verdict comes from answered() (Twilio's AMD). */
  detect?: Partial<AmdSettings>;
  /** 'detect' (default) reports a machine at once; 'detect_message_end' at the end of its greeting, as Twilio's DetectMessageEnd. */
  mode?: Exclude<AmdMode, 'off'>;
  /** Where the verdict goes (the dialer stores it as the call's answeredBy). */
  events?: Pick<CarrierEvents, 'answeredBy'>;
  /** The message is stored in the call's transcript. */
  calls?: Pick<CallStore, 'addTranscript'>;
  /** Silence (no speech, no tone) that ends a greeting without a beep. Default 1500 ms (LiveKit's machine verdict waits as long). */
  endSilenceMs?: number;
  /** The longest wait for the greeting to end after a machine verdict; then the message is left anyway. Default 30 s. */
  maxGreetingMs?: number;
  /** No verdict by then (wall clock from the screen's start): `unknown`, and the conversation starts. Default: the detector's totalAnalysisMs + 1 s, or 8 s for a carrier's verdict. */
  verdictTimeoutMs?: number;
}

type Phase = 'screening' | 'greeting' | 'message' | 'done';
type MessageEnd = 'machine_end_beep' | 'machine_end_silence' | 'machine_end_other';

const FRAME_MS = 20;

export class AnswerScreen implements CallScreen {
  readonly converse: Promise<boolean>;
  private settle!: (converse: boolean) => void;
  private readonly classifier: GreetingClassifier | null;
  private readonly startedAt = performance.now();
  private phase: Phase = 'screening';
  private verdict: AnsweredBy | null = null;
  private verdictTimer: NodeJS.Timeout | null = null;
  private greetingTimer: NodeJS.Timeout | null = null;
  private messageTimer: NodeJS.Timeout | null = null;
  /** Audio time (ms since the screen started, i.e. the answer) and the greeting's state after a machine verdict. */
  private audioMs = 0;
  private quietMs = 0;
  private beeping = false;
  private messageSegment: number | null = null;
  /** A machine verdict held back until its greeting ends (detect_message_end), and how it ended. */
  private pendingReport: (() => void) | null = null;
  private messageEnd: MessageEnd = 'machine_end_other';

  constructor(private readonly session: CallSession, private readonly opts: AnswerScreenOptions = {}) {
    this.converse = new Promise((resolve) => (this.settle = resolve));
    this.classifier = opts.detect ? new GreetingClassifier(opts.detect) : null;
    const timeout = opts.verdictTimeoutMs ?? (this.classifier ? this.classifier.settings.totalAnalysisMs + 1000 : 8000);
    // No audio (or no carrier verdict) must not leave a person in silence.
    this.verdictTimer = setTimeout(guard('timer', () => this.answered('unknown', { source: this.classifier ? 'aybiza' : 'twilio', raw: 'timeout' })), timeout);
    session.whenEnded(() => this.close());
    session.screen(this);
  }

  /** The verdict so far (null while screening). */
  get answeredBy(): AnsweredBy | null {
    return this.verdict;
  }

  frame(code: number): void {
    this.audioMs += FRAME_MS;
    if (this.phase === 'screening' && this.classifier) {
      const d = this.classifier.frame(code, FRAME_MS);
      if (d) this.decided(d);
    }
    if (this.phase === 'greeting' || this.phase === 'message') this.watchGreeting(code);
  }

  transcript(text: string, isFinal: boolean): void {
    if (this.phase !== 'screening' || !this.classifier) return;
    const d = this.classifier.transcript(text, isFinal);
    if (d) this.decided(d);
  }

  private decided(d: AmdDecision): void {
    this.session.log.info('answering machine detection', { result: d.result, cause: d.cause, decisionMs: d.atMs });
    this.answered(d.result, { source: 'aybiza', raw: d.cause, decisionMs: d.atMs });
  }

  /**
   * Who answered; the first verdict wins. Ours are counted in
   * aybiza_amd_total here; a carrier's are counted by whoever receives them.
   * `messageEnded`: the carrier says the greeting is already over
   * (Twilio's machine_end_*): the message is spoken at once.
   */
  answered(result: AnsweredBy, detail: { source: 'twilio' | 'aybiza'; raw?: string; decisionMs?: number; messageEnded?: boolean }): void {
    if (this.phase !== 'screening' || this.session.isEnded) return;
    this.verdict = result;
    this.clearTimer('verdictTimer');
    if (detail.source === 'aybiza') amdTotal.inc({ result });
    const decisionMs = detail.decisionMs ?? Math.round(performance.now() - this.startedAt);
    const report = (raw = detail.raw, ms = decisionMs) => this.opts.events?.answeredBy(result, { source: detail.source, raw, decisionMs: ms });
    if (result !== 'machine') {
      report();
      this.phase = 'done';
      // The conversation has the call from here: no more taps, no beep detector per frame.
      this.session.screen(null);
      this.settle(true);
      return;
    }
    this.settle(false);
    // DetectMessageEnd reports a machine when its greeting ends, as Twilio does.
    if (this.opts.mode === 'detect_message_end' && !detail.messageEnded) this.pendingReport = () => report(this.messageEnd, this.audioMs);
    else report();
    if (!this.opts.message) {
      this.pendingReport?.();
      this.phase = 'done';
      void this.session.end('answering machine');
      return;
    }
    this.phase = 'greeting';
    if (detail.messageEnded) return this.leaveMessage('machine_end_other');
    this.greetingTimer = setTimeout(guard('timer', () => this.leaveMessage('machine_end_other')), this.opts.maxGreetingMs ?? 30_000);
  }

  /**
   * After a machine verdict: the greeting is over at the end of a beep, or
   * after endSilenceMs without speech or tone. A beep that starts while the
   * message plays (the greeting only paused) restarts the message after it,
   * so the recording, which starts at the beep, holds all of it.
   */
  private watchGreeting(code: number): void {
    if (code & FRAME_BEEP_START && this.phase === 'message') {
      this.session.log.info('beep during the voicemail message: restarting it after the beep');
      this.session.clear();
      this.messageSegment = null;
      this.phase = 'greeting';
    }
    if (this.phase !== 'greeting') return;
    this.beeping = (code & FRAME_BEEP) !== 0;
    if (code & FRAME_BEEP_END) return this.leaveMessage('machine_end_beep');
    this.quietMs = code & FRAME_SPEECH || this.beeping ? 0 : this.quietMs + FRAME_MS;
    if (this.quietMs >= (this.opts.endSilenceMs ?? 1500)) this.leaveMessage('machine_end_silence');
  }

  private leaveMessage(end: MessageEnd): void {
    if (this.phase !== 'greeting' || this.session.isEnded) return;
    this.phase = 'message';
    this.messageEnd = end;
    this.clearTimer('greetingTimer');
    this.pendingReport?.();
    this.pendingReport = null;
    const message = this.opts.message ?? '';
    this.session.log.info('leaving a voicemail message', { after: end, atMs: this.audioMs });
    this.session.say(message);
    const id = this.session.flush();
    this.messageSegment = id;
    void this.opts.calls?.addTranscript(this.session.callId, 'agent', message).catch(() => {});
    const heard = () => {
      if (this.phase === 'message' && this.messageSegment === id) this.hangUp();
    };
    // Heard to its end (the transport's marks), not merely idle: TTS may pause mid-message.
    const onHeard = this.session.events.onSegmentHeard;
    this.session.events.onSegmentHeard = (s) => {
      onHeard?.(s);
      if (s === id) heard();
    };
    // A TTS that never delivers must not hold the line: about 12 characters a second, plus slack.
    this.clearTimer('messageTimer');
    this.messageTimer = setTimeout(guard('timer', heard), 10_000 + (message.length / 12) * 1000);
  }

  private hangUp(): void {
    this.phase = 'done';
    void this.session.end('voicemail left');
  }

  private clearTimer(name: 'verdictTimer' | 'greetingTimer' | 'messageTimer'): void {
    const t = this[name];
    if (t) clearTimeout(t);
    this[name] = null;
  }

  /** The call ended: timers go, a held verdict is reported, a screen still deciding settles (the conversation never starts). */
  close(): void {
    // The callee hung up during its own greeting: the verdict still reaches the call record.
    this.pendingReport?.();
    this.pendingReport = null;
    this.clearTimer('verdictTimer');
    this.clearTimer('greetingTimer');
    this.clearTimer('messageTimer');
    if (this.phase === 'screening') this.settle(false);
    this.phase = 'done';
  }
}

/**
 * The SIP carrier's onAnswered hook (src/outbound/sip.ts): screens an
 * answered outbound call with our detector when its dial asked for AMD,
 * with the agent's `amd` settings and the dial's voicemail message (its
 * `{{name}}` placeholders filled from the dial's variables, as the greeting's are).
 */
export function screenAnsweredCall(session: CallSession, place: PlaceRequest, calls?: Pick<CallStore, 'addTranscript'>): AnswerScreen | null {
  const mode = place.request.amd;
  if (!mode || mode === 'off') return null;
  return new AnswerScreen(session, {
    mode, message: voicemailMessage(place.request), detect: place.agent.config.amd ?? {}, events: place.events, calls,
  });
}

/** The dial's voicemail message with its variables filled in (unknown placeholders are dropped, never spoken). */
export function voicemailMessage(request: Pick<PlaceRequest['request'], 'voicemail' | 'variables'>): string | undefined {
  const m = request.voicemail?.message;
  return m === undefined ? undefined : fillPlaceholders(m, request.variables ?? {}, false).replace(/\s{2,}/g, ' ').trim();
}
