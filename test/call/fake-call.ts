// A CallSession on fake providers and a fake transport, off the shared clock:
// tests drive its 20 ms slots by hand (session.tick) and set the time
// (performance.now is replaced by a manual clock while the call lives).
import { vi } from 'vitest';
import { CallSession } from '../../src/call/session.js';
import { clock } from '../../src/call/clock.js';
import type { CallTransport } from '../../src/call/transport.js';
import type { LanguageModel, Providers, TtsEvents, TtsStream } from '../../src/providers/types.js';
import type { CallStore, TurnRecord } from '../../src/store/types.js';

export interface FakeCall {
  session: CallSession;
  /** The TTS stream's listeners: deliver audio and flush completions from here. */
  tts: TtsEvents;
  /** Set to make the stream report a deferred flush. */
  ttsStream: TtsStream & { flushDeferred: boolean };
  framesSent: () => number;
  /** Echoes every mark sent so far (the caller heard everything). */
  echoMarks(): void;
  /** Runs one clock slot, `lateMs` late. */
  slot(lateMs?: number): void;
  /** The manual clock (ms). */
  now: { t: number };
  turns: TurnRecord[];
  calls: CallStore;
  close(): Promise<void>;
}

export async function fakeCall(llm?: LanguageModel): Promise<FakeCall> {
  const now = { t: 1000 };
  const spy = vi.spyOn(performance, 'now').mockImplementation(() => now.t);
  let frames = 0;
  const marks: string[] = [];
  const transport: CallTransport = {
    kind: 'twilio',
    leadMs: 20, // one frame per slot, like RTP: every slot is visible
    sendFrame: () => {
      frames++;
      return true;
    },
    sendMark: (name) => void marks.push(name),
    clearPlayout: () => undefined,
    hangup: () => undefined,
  };
  let tts!: TtsEvents;
  const ttsStream = { flushDeferred: false, speak: () => undefined, flush: () => undefined, clear: () => undefined, close: async () => undefined };
  const turns: TurnRecord[] = [];
  const providers: Providers = {
    stt: { name: 'fake', open: async () => ({ send: () => undefined, finalize: () => undefined, keepAlive: () => undefined, close: async () => undefined }) },
    tts: {
      name: 'fake',
      open: async (_o, ev) => {
        tts = ev;
        return ttsStream;
      },
    },
    llm: llm ?? { name: 'fake', async *stream() {} },
    emulated: true,
    close: async () => undefined,
  };
  const calls = {
    updateCallStatus: async () => undefined,
    addTranscript: async () => undefined,
    addTurn: async (_id: string, t: TurnRecord) => void turns.push(t),
  } as unknown as CallStore;
  const session = new CallSession({
    callId: 'call-1',
    transport,
    agent: { tenantId: 't', agentId: 'a', agentVersion: 1, config: { name: 'test', prompt: 'Be brief.' }, maxConcurrentCalls: null },
    providers,
    calls,
  });
  await session.start();
  clock.delete(session); // slots are driven by hand
  let slotNo = 0;
  return {
    session,
    tts,
    ttsStream,
    framesSent: () => frames,
    echoMarks: () => {
      for (const m of marks.splice(0)) session.onMarkPlayed(m);
    },
    slot: (lateMs = 0) => {
      now.t += 20;
      session.tick(slotNo++, lateMs);
    },
    now,
    turns,
    calls,
    close: async () => {
      await session.end('test over');
      spy.mockRestore();
    },
  };
}

/** n 20 ms frames of μ-law audio. */
export const audio = (frames: number) => new Uint8Array(160 * frames).fill(0x7f);
