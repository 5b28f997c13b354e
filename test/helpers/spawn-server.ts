// Starts `aybiza serve` (the compiled CLI, as `npm start` does) in a child
// process on a free port, and waits for its "listening" log line.
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
  dataDir: string;
  exit: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix: string): string {
  const root = process.env.AYBIZA_TEST_TMP ?? os.tmpdir();
  return fs.mkdtempSync(path.join(root, prefix));
}

export async function spawnServer(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Spawned> {
  const dataDir = env.DATA_DIR ?? tempDir('serve-');
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SIP_PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${logs.join('\n')}`)), timeoutMs);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
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
  return {
    child, port, base: `http://127.0.0.1:${port}`, logs, dataDir, exit,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exit;
    },
  };
}
