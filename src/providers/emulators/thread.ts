// The Deepgram and Bedrock emulators in a thread of their own, for a process
// with WORKERS > 1: one set for every worker (each worker used to start its
// own, so a node ran WORKERS + 1 copies, every one with its own ports and
// warm connections), on a thread that is neither a media worker's nor the
// main thread's (SIP signalling and the process's /metrics are there). A
// thread that dies is started again on the same ports, so the workers'
// clients reconnect to it. Each worker still runs its own Twilio REST
// emulator: the outbound carrier registers its account on it in-process.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { log } from '../../log.js';
import type { EmulatorOptions } from './index.js';

/** Where the emulators listen (what a worker's providers connect to). */
export interface SharedEmulators {
  deepgramUrl: string;
  bedrockUrl: string;
}

export interface EmulatorThreadData {
  options: EmulatorOptions;
}

/** What the thread posts once it listens. */
export interface EmulatorThreadReady extends SharedEmulators {
  ready: true;
}

/** How often the thread is started again after dying before the process gives up on it. */
const MAX_RESTARTS = 5;

export class EmulatorThread implements SharedEmulators {
  private worker: Worker | null = null;
  private closing = false;
  private restarts = 0;

  private constructor(private options: EmulatorOptions, public deepgramUrl: string, public bedrockUrl: string) {}

  static async start(options: EmulatorOptions): Promise<EmulatorThread> {
    const t = new EmulatorThread(options, '', '');
    await t.spawn();
    // Again on the same ports after a crash: the workers' clients keep their URLs.
    t.options = { ...options, deepgramPort: Number(new URL(t.deepgramUrl).port), bedrockPort: Number(new URL(t.bedrockUrl).port) };
    return t;
  }

  /** The compiled thread script (vitest runs this file from TypeScript; the thread always runs from dist/). */
  private static scriptPath(): string {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const beside = path.join(here, 'thread-main.js');
    return fs.existsSync(beside) ? beside : path.join(here, '..', '..', '..', 'dist', 'src', 'providers', 'emulators', 'thread-main.js');
  }

  private spawn(): Promise<void> {
    const data: EmulatorThreadData = { options: this.options };
    const w = new Worker(EmulatorThread.scriptPath(), { workerData: data, stdout: false, stderr: false });
    this.worker = w;
    // An idle emulator never keeps the process alive by itself.
    w.unref();
    return new Promise<void>((resolve, reject) => {
      let up = false;
      w.on('message', (m: EmulatorThreadReady) => {
        if (!m?.ready) return;
        up = true;
        this.deepgramUrl = m.deepgramUrl;
        this.bedrockUrl = m.bedrockUrl;
        resolve();
      });
      const gone = (why: unknown) => {
        if (this.worker !== w) return;
        this.worker = null;
        if (!up) return reject(why instanceof Error ? why : new Error(`emulator thread exited (${String(why)})`));
        if (this.closing) return;
        log.error('provider emulator thread stopped', { err: why instanceof Error ? why.message : String(why), restart: this.restarts < MAX_RESTARTS });
        if (this.restarts++ < MAX_RESTARTS) this.spawn().catch((err) => log.error('provider emulator thread did not start again', { err }));
      };
      w.on('error', gone);
      w.on('exit', gone);
    });
  }

  get running(): boolean {
    return this.worker !== null;
  }

  async close(): Promise<void> {
    this.closing = true;
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}
