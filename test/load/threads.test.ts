// Threads named for what they do (src/thread-name.ts) and the load's CPU split
// by them (threadCpu in src/commands/load-drive.ts): a named worker thread's
// busy time shows under its name, the main thread's under `main`.
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { threadCpu, threadCpuBetween } from '../../src/commands/load-drive.js';
import { nameThisThread, nameThisThreadSource } from '../../src/thread-name.js';

describe('thread names and CPU per thread', () => {
  it('a thread names itself; its CPU is counted under that name, the main thread under main', async () => {
    const before = threadCpu(process.pid);
    const w = new Worker(
      `${nameThisThreadSource('aybiza-test')}
       const { parentPort } = require('node:worker_threads');
       const comm = require('node:fs').readFileSync('/proc/thread-self/comm', 'utf8').trim();
       const end = Date.now() + 400; let x = 0; while (Date.now() < end) x++;
       parentPort.postMessage(comm);
       setTimeout(() => {}, 2000);`,
      { eval: true },
    );
    const comm = await new Promise<string>((resolve) => w.once('message', resolve));
    expect(comm).toBe('aybiza-test');
    const during = threadCpuBetween(before, threadCpu(process.pid));
    await w.terminate();
    expect(during['aybiza-test']).toBeGreaterThanOrEqual(0.2);
    expect(Object.keys(during)).toContain('main');
    expect(Object.values(during).every((v) => v >= 0)).toBe(true);
  });

  it('the main thread keeps its name; bad names are refused; a missing process reads as nothing', () => {
    const comm = fs.readFileSync('/proc/thread-self/comm', 'utf8').trim();
    for (const bad of ['', 'x'.repeat(16), 'Aybiza', 'a b', 'a/b']) {
      expect(() => nameThisThread(bad)).toThrow(RangeError);
      expect(() => nameThisThreadSource(bad)).toThrow(RangeError);
    }
    expect(fs.readFileSync('/proc/thread-self/comm', 'utf8').trim()).toBe(comm);
    expect(threadCpu(2 ** 22 + 12345)).toEqual({});
    expect(threadCpuBetween({ main: 5, other: 2 }, { main: 7, other: 1 })).toEqual({ main: 2, other: 0 });
  });
});
