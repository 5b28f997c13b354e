// Starts `aybiza serve` (the compiled CLI, as `npm start` does) in a child
// process on a free port, and waits for its "listening" log line.
// WORKERS is AYBIZA_TEST_WORKERS from the test environment (default 1), so
// `AYBIZA_TEST_WORKERS=2 bash test/run.sh …` runs the same tests against
// two-worker servers; a test that sets WORKERS itself keeps its value.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

export const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

export interface Spawned {
  child: ChildProcess;
  port: number;
  base: string;
  logs: string[];
  /** Only the lines written to stdout (the JSON log), in order; `logs` also holds stderr's chunks. */
  stdout: string[];
  dataDir: string;
  exit: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix: string): string {
  const root = process.env.AYBIZA_TEST_TMP ?? os.tmpdir();
  return fs.mkdtempSync(path.join(root, prefix));
}

/** WORKERS for servers the tests start (AYBIZA_TEST_WORKERS, default 1). */
export function testWorkers(): string {
  return process.env.AYBIZA_TEST_WORKERS || '1';
}

export async function spawnServer(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Spawned> {
  const dataDir = env.DATA_DIR ?? tempDir('serve-');
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info', WORKERS: testWorkers(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const stdout: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${logs.join('\n')}`)), timeoutMs);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        stdout.push(line);
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'listening' && rec.port) {
            clearTimeout(timer);
            resolve(rec.port);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${logs.join('\n')}`));
    });
  });
  let port: number;
  try {
    port = await listening;
  } catch (err) {
    // Not started (or timed out): the child must not outlive the attempt.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
    throw err;
  }
  return {
    child, port, base: `http://127.0.0.1:${port}`, logs, stdout, dataDir, exit,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exit;
    },
  };
}
