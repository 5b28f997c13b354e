// A media worker ended from outside (Worker.terminate(), a resource limit)
// runs no more JavaScript, so its uWebSockets.js sockets would still be open
// when Node closes the thread's loop — and Node aborts the whole process
// (reference: uws.md). native/thread_exit.cc closes them in an environment
// cleanup hook instead; the main thread then restarts the worker as after any
// other exit.
import { createRequire } from 'node:module';
import { log } from '../log.js';
import { builtAddon } from '../media/native.js';

/** Arms the hook for this thread; says so loudly when the addon is missing (a build from before it existed). */
export function closeSocketsAtThreadExit(): void {
  const file = builtAddon('aybiza_thread_exit.node');
  if (!file) {
    log.error('build/Release/aybiza_thread_exit.node missing (run `npx node-gyp build`): a worker terminated from outside would abort the process');
    return;
  }
  const addon = createRequire(import.meta.url)(file) as { closeSocketsAtThreadExit(): void };
  addon.closeSocketsAtThreadExit();
}
