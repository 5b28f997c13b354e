// Helpers for commands that start the server or the emulators as processes of
// their own (load, fuzz, demo): a free loopback port, and the first JSON log
// line of a child that matches (its "listening" line, the emulators' URLs).
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A port free on 127.0.0.1 for both TCP and UDP (SIP listens on both). */
export async function freeSipPort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return p;
  }
}

/** Resolves with the first JSON line on the child's stdout that `match` accepts; rejects if it exits first or after 60 s. */
export async function firstJsonLine(child: ChildProcess, match: (o: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  const rl = readline.createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start`)), 60_000);
    rl.on('line', (line) => {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (match(o)) {
          clearTimeout(t);
          resolve(o);
        }
      } catch {
        /* not JSON */
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}
