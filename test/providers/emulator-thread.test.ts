// The provider emulators on a thread of their own (WORKERS > 1): both answer
// on loopback, the thread carries its name, and a thread that dies is
// started again on the same ports (the workers' clients keep their URLs).
import fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EmulatorThread } from '../../src/providers/emulators/thread.js';

async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await Promise.resolve().then(fn).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The Deepgram emulator takes a live-STT WebSocket with a token (and refuses one without: its 401). */
function sttOpens(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/listen?encoding=mulaw&sample_rate=8000`, { headers: { authorization: 'Token emulated' } });
    ws.on('open', () => {
      ws.close();
      resolve(true);
    });
    ws.on('error', () => resolve(false));
  });
}

const threadNames = () => fs.readdirSync('/proc/self/task').map((t) => { try { return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim(); } catch { return ''; } });

describe('EmulatorThread', () => {
  let t: EmulatorThread;
  afterAll(async () => {
    await t?.close();
  });

  it('serves the Deepgram and Bedrock emulators from a thread named aybiza-emu, and restarts it on the same ports', async () => {
    t = await EmulatorThread.start({});
    const { deepgramUrl, bedrockUrl } = t;
    expect(deepgramUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(bedrockUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await sttOpens(deepgramUrl)).toBe(true);
    // Bedrock's ConverseStream path without a signature: the emulator answers (with an error), so it listens.
    const res = await fetch(`${bedrockUrl}/model/x/converse-stream`, { method: 'POST', body: '{}' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(threadNames().filter((n) => n === 'aybiza-emu')).toHaveLength(1);

    // The thread dies (terminated from outside, as a fatal error would end it).
    await (t as unknown as { worker: Worker }).worker.terminate();
    await until('the thread started again', () => t.running);
    expect(t.deepgramUrl).toBe(deepgramUrl);
    expect(t.bedrockUrl).toBe(bedrockUrl);
    await until('the Deepgram emulator answering again', () => sttOpens(deepgramUrl));
    expect(threadNames().filter((n) => n === 'aybiza-emu')).toHaveLength(1);

    await t.close();
    expect(t.running).toBe(false);
    expect(await sttOpens(deepgramUrl)).toBe(false);
  }, 30_000);
});
