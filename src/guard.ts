// The one guard every socket, SDK-event and timer callback goes through: an
// exception thrown inside a callback that a library (uWS, dgram, net, ws, an
// SDK's emitter) invokes would otherwise reach the event loop and end the
// process, and every call on it. The guard counts the failure in
// aybiza_internal_errors_total{where}, logs it once per (where, message) per
// minute, and lets the caller end just the request or call concerned.
import { internalErrors } from './metrics/index.js';
import { log } from './log.js';

/**
 * Where a guarded callback runs: a closed set, so the metric label never takes
 * a value from outside input. `uncaught` / `unhandled_rejection` are the
 * process-level last resort: any count there is an exception that escaped
 * every guard (a bug to fix), though the process still survives it.
 */
export type GuardWhere =
  | 'http'
  | 'ws'
  | 'twilio'
  | 'sip_udp'
  | 'sip_tcp'
  | 'sip_tls'
  | 'sip'
  | 'rtp'
  | 'provider'
  | 'pipeline'
  | 'call'
  | 'timer'
  | 'store'
  | 'api'
  | 'worker'
  | 'uncaught'
  | 'unhandled_rejection';

const LOG_EVERY_MS = 60_000;
const lastLogged = new Map<string, number>();

/** Counts and logs (rate-limited) one failure that a guard caught. Never throws. */
export function reportInternalError(where: GuardWhere, err: unknown, fields?: Record<string, unknown>): void {
  try {
    internalErrors.inc({ where });
    const message = err instanceof Error ? err.message : String(err);
    const key = `${where}\0${message.slice(0, 200)}`;
    const now = Date.now();
    const last = lastLogged.get(key);
    if (last !== undefined && now - last < LOG_EVERY_MS) return;
    // Bounded: the key set is reset rather than grown without limit.
    if (lastLogged.size >= 1000) lastLogged.clear();
    lastLogged.set(key, now);
    log.error('internal error caught by guard', { where, err, ...fields });
  } catch {
    /* logging must never be what ends the process */
  }
}

/**
 * Wraps a callback so that nothing it throws (or, if it returns a promise,
 * rejects with) escapes. `onError` ends only what the failure concerns (answer
 * the request with 500, close the socket, end the call); its own failure is
 * counted too.
 *
 * The wrapper takes at most four arguments (every library callback we guard
 * has fewer) as plain parameters: it runs for every inbound frame and timer
 * tick, and a rest array there was an allocation per call. The arguments are
 * gathered only on the failure path, and the promise watch lives in its own
 * function so the wrapper needs no heap context per call.
 */
export function guard<A extends unknown[]>(
  where: GuardWhere,
  fn: (...args: A) => unknown,
  onError?: (err: unknown, ...args: A) => void,
): (...args: A) => void {
  const f = fn as unknown as (a?: unknown, b?: unknown, c?: unknown, d?: unknown) => unknown;
  const wrapped = (a?: unknown, b?: unknown, c?: unknown, d?: unknown): void => {
    try {
      const r = f(a, b, c, d);
      if (r && typeof (r as Promise<unknown>).then === 'function') watch(r as Promise<unknown>, where, onError, a, b, c, d);
    } catch (err) {
      fail(where, err, onError, [a, b, c, d] as unknown as A);
    }
  };
  return wrapped as unknown as (...args: A) => void;
}

function watch<A extends unknown[]>(r: Promise<unknown>, where: GuardWhere, onError: ((err: unknown, ...args: A) => void) | undefined, a: unknown, b: unknown, c: unknown, d: unknown): void {
  r.then(undefined, (err) => fail(where, err, onError, [a, b, c, d] as unknown as A));
}

function fail<A extends unknown[]>(where: GuardWhere, err: unknown, onError: ((err: unknown, ...args: A) => void) | undefined, args: A): void {
  reportInternalError(where, err);
  if (!onError) return;
  try {
    onError(err, ...args);
  } catch (err2) {
    reportInternalError(where, err2);
  }
}

/** Runs `fn` now under the guard (for one-off callbacks such as a timer body). */
export function guarded(where: GuardWhere, fn: () => unknown, onError?: (err: unknown) => void): void {
  try {
    const r = fn();
    if (r && typeof (r as Promise<unknown>).then === 'function') watch(r as Promise<unknown>, where, onError, undefined, undefined, undefined, undefined);
  } catch (err) {
    fail(where, err, onError, [] as []);
  }
}

let installed = false;
/**
 * The process-level last resort: an exception no guard caught is counted as
 * `uncaught` and logged, and the process keeps serving its other calls. The
 * fuzzer asserts these stay at zero.
 */
export function installProcessGuards(): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', (err) => reportInternalError('uncaught', err));
  process.on('unhandledRejection', (err) => reportInternalError('unhandled_rejection', err));
}
