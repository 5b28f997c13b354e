// In-process shared state (no REDIS_URL) with WORKERS > 1: the one MemoryState
// lives in the main thread, and each worker reaches it through the channel, so
// call slots, single-use tokens, rate limits and invalidations stay consistent
// across workers exactly as they were in one thread. With Redis, workers talk
// to Redis themselves and none of this is used.
import type { SharedState } from '../store/state.js';
import type { Rpc } from './rpc.js';

/** Main side: answers the workers' state calls and relays published messages to them all. */
export function serveState(state: SharedState, rpc: Rpc): void {
  rpc.handle('state', (method: string, args: unknown[]) => {
    if (method === 'subscribe' || method === 'close' || !(method in state)) throw new Error(`state.${method} cannot be called remotely`);
    const fn = (state as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
    if (typeof fn !== 'function') throw new Error(`state.${method} is not a method`);
    return fn.apply(state, args);
  });
}

/**
 * Worker side: every async method of SharedState forwarded to the main
 * thread (a Proxy, so a method added to the interface is forwarded too);
 * subscribe() hears what the main thread relays.
 */
export function remoteState(rpc: Rpc, nodeId: string): SharedState {
  const listeners: ((m: string) => void)[] = [];
  rpc.handle('state-message', (m: string) => {
    for (const fn of listeners) fn(m);
  });
  const local: Partial<SharedState> = {
    kind: 'memory',
    nodeId,
    subscribe: (fn) => void listeners.push(fn),
    close: async () => void (listeners.length = 0),
  };
  return new Proxy(local, {
    get(target, name) {
      if (name in target) return target[name as keyof SharedState];
      if (typeof name !== 'string' || name === 'then') return undefined;
      return (...args: unknown[]) => rpc.call('state', name, args);
    },
  }) as SharedState;
}
