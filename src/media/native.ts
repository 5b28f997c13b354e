// Loads the compiled addon (build/Release/aybiza_media.node). Everything
// native is reached through this one object; wrappers in this folder give it
// types and cheap JS-side checks.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import type { NativeDtmfDetectorClass } from './dtmf.js';

export interface NativeAddon {
  ulawEncodeInto(src: Int16Array | Uint8Array, dst: Uint8Array): number;
  alawEncodeInto(src: Int16Array | Uint8Array, dst: Uint8Array): number;
  ulawDecodeInto(src: Uint8Array, dst: Int16Array | Uint8Array): number;
  alawDecodeInto(src: Uint8Array, dst: Int16Array | Uint8Array): number;
  ulawToAlawInto(src: Uint8Array, dst: Uint8Array): number;
  alawToUlawInto(src: Uint8Array, dst: Uint8Array): number;
  DtmfDetector: NativeDtmfDetectorClass;
  /** Native class behind src/media/jitter-buffer.ts (positional push arguments). */
  JitterBuffer: unknown;
  [name: string]: unknown;
}

/** build/Release/<file> of this package (from src/… under vitest, from dist/src/… compiled); null if not built. */
export function builtAddon(file: string): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'build', 'Release', file);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return null;
}

function findAddon(): string {
  const file = builtAddon('aybiza_media.node');
  if (!file) throw new Error('aybiza native addon not built: run `npm ci` (or `npx node-gyp rebuild`) first');
  return file;
}

const require = createRequire(import.meta.url);
export const native: NativeAddon = require(findAddon()) as NativeAddon;

/** What every native wrapper throws once closed (the native side throws the same). */
export function closedError(what: string): TypeError {
  return Object.assign(new TypeError(`${what} is closed`), { code: 'ERR_AYBIZA_CLOSED' });
}
