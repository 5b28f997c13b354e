import { synthesize } from '../../src/providers/emulators/voice.js';

/** Speech-like μ-law followed by silence, cut into 20 ms frames. */
export function utteranceFrames(text: string, silenceMs = 800): Uint8Array[] {
  const speech = synthesize(text);
  const audio = new Uint8Array(speech.length + (silenceMs / 1000) * 8000).fill(0xff);
  audio.set(speech);
  const frames: Uint8Array[] = [];
  for (let i = 0; i + 160 <= audio.length; i += 160) frames.push(audio.subarray(i, i + 160));
  return frames;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends frames faster than real time (the emulator keeps audio time, not wall time). */
export async function sendFrames(send: (f: Uint8Array) => void, frames: Uint8Array[], every = 5): Promise<void> {
  for (let i = 0; i < frames.length; i++) {
    send(frames[i]);
    if (i % every === every - 1) await sleep(1);
  }
}
