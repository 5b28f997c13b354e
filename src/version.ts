// The package version, read once from package.json.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
function read(): string {
  for (const p of ['../package.json', '../../package.json']) {
    try {
      return (require(p) as { version: string }).version;
    } catch {
      /* try the next layout (src/ vs dist/src/) */
    }
  }
  return '0.0.0';
}
export const VERSION = read();
