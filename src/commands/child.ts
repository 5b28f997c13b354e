// Helpers for commands that start the server or the emulators as processes of
// their own (load, fuzz, demo): a free loopback port, and the first JSON log
// line of a child that matches (its "listening" line, the emulators' URLs).
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';

// Ports handed to a child are picked below the OS's ephemeral range (Linux:
// 32768-60999), at random, and checked free. A port the OS itself picked with
// listen(0) and we closed again can be handed out again at once: to the
// child's own listen(0) sockets (its built-in emulators) or to any outgoing
// connection's local end, before the child gets to bind it. One CI run lost
// its soak test to exactly that (SIP_PORT taken by the Twilio REST emulator).
const PICK_MIN = 2000;
const PICK_MAX = 10000; // the default RTP range starts here
// Each vitest worker (VITEST_POOL_ID) picks from a slice of its own, in turn
// from a random start, every 4th port (SIPp also binds the port 2 above its
// media port): two test files running at once never pick the same port, as
// they could at random (both check it free before either binds it).
const SLICES = 8;
const STRIDE = 4;
const pool = Number(process.env.VITEST_POOL_ID) || 0;
const SLICE = (PICK_MAX - PICK_MIN) / SLICES;
const lo = pool > 0 ? PICK_MIN + ((pool - 1) % SLICES) * SLICE : PICK_MIN;
const hi = pool > 0 ? lo + SLICE : PICK_MAX;
let next = lo + STRIDE * Math.floor((Math.random() * (hi - lo)) / STRIDE);

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A TCP port free on 127.0.0.1 right now, outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (;;) {
    const p = next;
    next = next + STRIDE >= hi ? lo + ((next + STRIDE - lo) % STRIDE + 1) % STRIDE : next + STRIDE;
    if (await tcpFree(p)) return p;
  }
}

/** A port free on 127.0.0.1 for both TCP and UDP (SIP listens on both). */
export async function freeSipPort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (await udpFree(p)) return p;
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
