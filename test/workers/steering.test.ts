// Connection steering between listeners on one port (WORKERS > 1:
// src/server/steering.ts, native/reuseport.cc), against the real kernel: two
// uWebSockets.js apps listen on the same port as the media workers do, each
// answering with its own name; the weights attached to their SO_REUSEPORT
// group decide which one gets each new connection. And the addon's checks:
// hostile arguments throw TypeError/RangeError, an fd that is not such a
// listener is refused; the accept queue a busy worker has not drained yet
// counts as its load.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uws, type us_listen_socket } from '../../src/server/uws.js';
import { ConnectionSteering, reuseportAddon } from '../../src/server/steering.js';
import { freePort } from '../helpers/app.js';

const addon = reuseportAddon()!;

/** One request on a new connection; the name of the app that answered. */
function who(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

/** A uWS app on port (shared with SO_REUSEPORT) answering every request with its name. */
function listenAs(name: string, port: number): Promise<us_listen_socket> {
  const app = uws.App().get('/*', (res) => void res.end(name));
  return new Promise((resolve, reject) => app.listen('127.0.0.1', port, (t) => (t ? resolve(t) : reject(new Error(`${name} could not listen`)))));
}

/** Steering over one app per [worker, name] on a free port, each joining as it starts listening. */
async function steeredApps(apps: readonly (readonly [number, string])[]) {
  const port = await freePort();
  const s = ConnectionSteering.create(port)!;
  const mine: us_listen_socket[] = [];
  const close = () => {
    s.stop();
    for (const t of mine) uws.us_listen_socket_close(t);
  };
  try {
    for (const [worker, name] of apps) {
      mine.push(await listenAs(name, port));
      s.joined(worker);
    }
  } catch (err) {
    close();
    throw err;
  }
  return { port, s, mine, close };
}

async function tally(port: number, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const w = await who(port);
    out[w] = (out[w] ?? 0) + 1;
  }
  return out;
}

describe('connection steering between listeners on one port', () => {
  let port = 0;
  const tokens: us_listen_socket[] = [];

  beforeAll(async () => {
    port = await freePort();
    for (const name of ['a', 'b']) {
      const app = uws.App().get('/*', (res) => void res.end(name));
      await new Promise<void>((resolve, reject) => app.listen('127.0.0.1', port, (t) => (t ? (tokens.push(t), resolve()) : reject(new Error(`${name} could not listen`)))));
    }
  });
  afterAll(() => {
    for (const t of tokens) uws.us_listen_socket_close(t);
  });

  it('finds both listening sockets of the port, in the order they started listening', () => {
    const fds = addon.listenSockets(port);
    expect(fds).toHaveLength(2);
    expect(addon.listenSockets(port === 65535 ? 1 : port + 1)).toEqual([]);
  });

  it('sends every new connection where the weights say, and spreads by them', async () => {
    const [fd0] = addon.listenSockets(port);
    expect(addon.steer(fd0!, port, [1, 0])).toBe(true);
    const first = await tally(port, 12);
    expect(Object.keys(first)).toHaveLength(1);
    expect(addon.steer(fd0!, port, [0, 1])).toBe(true);
    const second = await tally(port, 12);
    expect(Object.keys(second)).toHaveLength(1);
    // Socket 0 and socket 1 are the two apps.
    expect(Object.keys(first)[0]).not.toBe(Object.keys(second)[0]);
    // Even weights: both get connections (all 40 on one side: 2^-39).
    expect(addon.steer(fd0!, port, [1, 1])).toBe(true);
    const even = await tally(port, 40);
    expect(even.a).toBeGreaterThan(0);
    expect(even.b).toBeGreaterThan(0);
    // Back to the kernel's hash.
    expect(addon.unsteer(fd0!, port)).toBe(true);
    expect(Object.values(await tally(port, 4)).reduce((x, y) => x + y, 0)).toBe(4);
  });

  it('ConnectionSteering learns each listener as it joins and turns connections away from the busier worker', async () => {
    // Worker 7 starts listening first, then worker 3, one at a time as the pool grants turns.
    const { port: p2, s, mine, close } = await steeredApps([[7, 'c'], [3, 'd']]);
    try {
      expect(s.order()).toEqual([7, 3]);
      expect(s.active).toBe(true);
      // Worker 7 carries 5 calls, worker 3 none: worker 3 gets all but e^-10 of the new connections.
      s.steer((w) => (w === 7 ? 5 : 0), () => true);
      expect(await tally(p2, 12)).toEqual({ d: 12 });
      // Loads even: both get connections again.
      s.steer(() => 2, () => true);
      const even = await tally(p2, 40);
      expect(even.c).toBeGreaterThan(0);
      expect(even.d).toBeGreaterThan(0);
      // A worker that may not take calls (draining) gets none, whatever its load.
      s.steer((w) => (w === 7 ? 0 : 5), (w) => w !== 7);
      expect(await tally(p2, 12)).toEqual({ d: 12 });
      // Worker 7's listener closes (it exited): the model follows the kernel (the last socket takes its place).
      uws.us_listen_socket_close(mine.shift()!);
      s.left(7);
      expect(s.order()).toEqual([3]);
      expect(s.active).toBe(true);
      expect(await tally(p2, 4)).toEqual({ d: 4 });
    } finally {
      close();
    }
    expect(s.active).toBe(false);
  });

  it('keeps steering on while a worker\'s socket is gone but its exit not yet reported', async () => {
    const { port: p4, s, mine, close } = await steeredApps([[1, 'e'], [2, 'f'], [4, 'g']]);
    try {
      // Worker 1's listener (the one the program is attached through) closes; left(1) comes later.
      uws.us_listen_socket_close(mine.shift()!);
      s.steer((w) => (w === 2 ? 5 : 0), () => true);
      expect(s.active).toBe(true);
      s.left(1);
      expect(s.active).toBe(true);
      s.steer((w) => (w === 2 ? 5 : 0), () => true);
      expect(await tally(p4, 12)).toEqual({ g: 12 });
    } finally {
      close();
    }
  });

  it('rejects hostile arguments with TypeError/RangeError and refuses fds that are not listeners on the port', () => {
    for (const bad of [[], ['1'], [-1], [1.5], [70000], [NaN], [Infinity], [null], [{}]] as unknown[][]) {
      expect(() => (addon.listenSockets as (...a: unknown[]) => unknown)(...bad)).toThrow(/port/);
    }
    const [fd0] = addon.listenSockets(port);
    const refuses = (fn: unknown, args: unknown[][]) => {
      for (const bad of args) {
        let err: unknown;
        try {
          (fn as (...a: unknown[]) => unknown)(...bad);
        } catch (e) {
          err = e;
        }
        expect(err instanceof TypeError || err instanceof RangeError).toBe(true);
      }
    };
    refuses(addon.steer, [[fd0, port, []], [fd0, port, [-1, 1]], [fd0, port, [0, 0]], [fd0, port, ['1']], [fd0, port, 'x'], [fd0, port, new Array(257).fill(1)], [fd0, port, [NaN]], [-1, port, [1]], [fd0, 0, [1]]]);
    // stdin, an fd that is not open, the right socket with the wrong port.
    expect(addon.steer(0, port, [1])).toBe(false);
    expect(addon.steer(999_999, port, [1])).toBe(false);
    expect(addon.steer(fd0!, port === 65535 ? 1 : port + 1, [1])).toBe(false);
    expect(addon.unsteer(0, port)).toBe(false);
    refuses(addon.backlog, [[], [fd0], ['1', port], [-1, port], [1.5, port], [fd0, 0], [fd0, 70000], [fd0, NaN], [null, port], [fd0, {}]]);
    expect(addon.backlog(0, port)).toBe(-1);
    expect(addon.backlog(999_999, port)).toBe(-1);
    expect(addon.backlog(fd0!, port === 65535 ? 1 : port + 1)).toBe(-1);
  });

  it('counts the connections waiting in a listener\'s accept queue, and steers away from a worker that has not accepted its share yet', async () => {
    const { port: p3, s, close } = await steeredApps([[0, 'busy'], [1, 'idle']]);
    try {
      const [fd0, fd1] = addon.listenSockets(p3);
      expect([addon.backlog(fd0!, p3), addon.backlog(fd1!, p3)]).toEqual([0, 0]);
      // Every new connection to worker 0's socket; five connect while this
      // thread (which accepts for both) is held in execFileSync: the kernel
      // completes them and queues them on that socket.
      expect(addon.steer(fd0!, p3, [1, 0])).toBe(true);
      const script = `const net = require('node:net'); let n = 0;
        for (let i = 0; i < 5; i++) net.connect(${p3}, '127.0.0.1', () => { if (++n === 5) process.exit(0); });
        setTimeout(() => process.exit(1), 5000);`;
      execFileSync(process.execPath, ['-e', script]);
      expect([addon.backlog(fd0!, p3), addon.backlog(fd1!, p3)]).toEqual([5, 0]);
      // Both report no calls; worker 0 has five connections waiting: it gets all but e^-10 of the next ones.
      s.steer(() => 0, () => true);
      expect(await tally(p3, 12)).toEqual({ idle: 12 });
    } finally {
      close();
    }
  });
});
