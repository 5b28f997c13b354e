// Shared waits and audio helpers for conversation tests through the Twilio caller.
import type { TwilioCaller } from '../../src/twilio/caller.js';
import type { Conversation } from '../../src/pipeline/conversation.js';
import type { TestApp } from './app.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits until the agent has been quiet for `quietMs` (the caller's turn). */
export async function agentQuiet(c: TwilioCaller, quietMs = 400): Promise<void> {
  let last = c.stats.frames;
  let since = Date.now();
  await waitFor(() => {
    if (c.stats.frames !== last) {
      last = c.stats.frames;
      since = Date.now();
    }
    return Date.now() - since >= quietMs && c.stats.frames > 0;
  }, 20_000, 'agent to stop talking');
}

/** The conversation of the app's latest Twilio call. */
export function conversationOf(t: TestApp): Conversation {
  const s = [...t.app.twilio.sessions.values()].pop()!;
  return (s as unknown as { conversation: Conversation }).conversation;
}

/** μ-law silence. */
export const quiet = (ms: number) => new Uint8Array((ms / 1000) * 8000).fill(0xff);

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
