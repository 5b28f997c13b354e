// Loads uWebSockets.js's native binary directly. The republished package we
// install silently falls back to a slow pure-JS implementation when its binary
// does not load; we never want that, so we bypass its loader and refuse to
// start instead (see README: uWebSockets.js).
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';

export class UwsNativeError extends Error {
  readonly code = 'AYB_ERR_UWS_NATIVE';
}

const require = createRequire(import.meta.url);

function loadNative(): typeof UWS {
  if (process.env.UWS_USE_FALLBACK) {
    throw new UwsNativeError('UWS_USE_FALLBACK is set: aybiza runs only on the native uWebSockets.js binary; unset it');
  }
  const pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    return require(binary) as typeof UWS;
  } catch (err) {
    throw new UwsNativeError(
      `the native uWebSockets.js binary did not load (${binary}): ${(err as Error).message}. ` +
        `aybiza refuses to run on the pure-JS fallback; use Node 20 on glibc >= 2.31 (x64/arm64).`,
    );
  }
}

export const uws: typeof UWS = loadNative();
/** True when the native binary is loaded (always, or this module threw). */
export const uwsNative = typeof (uws as unknown as { us_socket_local_port?: unknown }).us_socket_local_port === 'function';
