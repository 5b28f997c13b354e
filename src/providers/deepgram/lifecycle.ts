// What every Deepgram streaming socket of ours does around its messages:
// SDK callbacks under the guard, our own reconnect loop (the SDK's silent
// reconnect is off: a dropped socket would become a new session unnoticed),
// and a graceful CloseStream on close. Used by the Flux stream (flux.ts)
// and the Nova-3 stream (stt.ts).
import { checkpoint } from '../../checkpoint.js';
import { guard } from '../../guard.js';
import { log } from '../../log.js';
import { providerErrors } from '../../metrics/index.js';

export const RECONNECT_DELAYS_MS = [0, 100, 300, 800, 1500];
const CLOSE_WAIT_MS = 2000;

export interface StreamSocket {
  on(event: 'message', cb: (m: never) => void): void;
  on(event: 'close', cb: (e: { code?: number; reason?: string }) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  connect(): unknown;
  waitForOpen(): Promise<unknown>;
  close(): void;
  sendCloseStream(m: { type: 'CloseStream' }): void;
}

export function closeQuietly(socket: { close(): void }): void {
  try {
    socket.close();
  } catch {
    /* already closed */
  }
}

/**
 * Wires the SDK callbacks (each under the guard: a throw ends this call
 * through `failed`, never the process), connects and waits for the open.
 */
export async function openSocket<S extends StreamSocket>(
  socket: S, what: string, onMessage: (m: { type?: string }) => void, onClose: (e: { code?: number; reason?: string }) => void, failed: (err: unknown) => void,
): Promise<void> {
  socket.on('message', guard('provider', (m: { type?: string }) => {
    checkpoint();
    onMessage(m);
  }, failed) as (m: never) => void);
  socket.on('close', guard('provider', onClose));
  socket.on('error', guard('provider', (err: Error) => log.debug(`${what} socket error`, { err })));
  socket.connect();
  try {
    await socket.waitForOpen();
  } catch (err) {
    closeQuietly(socket);
    throw err;
  }
}

/** Tries `connect` after each delay until it succeeds or `stopped()`; false when every attempt failed. */
export async function reconnectLoop(what: string, stopped: () => boolean, connect: (attempt: number) => Promise<boolean>): Promise<boolean> {
  let attempt = 0;
  for (const delay of RECONNECT_DELAYS_MS) {
    if (stopped()) return true;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    try {
      return await connect(++attempt);
    } catch (err) {
      providerErrors.inc({ provider: 'stt', kind: 'reconnect_failed' });
      log.warn(`${what} reconnect failed`, { attempt, err: (err as Error).message });
    }
  }
  return stopped();
}

/** CloseStream (the service flushes what it holds), then the close, or a plain close after CLOSE_WAIT_MS. */
export function closeGracefully(s: StreamSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      closeQuietly(s);
      resolve();
    }, CLOSE_WAIT_MS);
    s.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    try {
      s.sendCloseStream({ type: 'CloseStream' });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}
