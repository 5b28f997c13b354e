// Names the calling thread as Linux shows it (`top -H`, `ps -L`, perf,
// /proc/<pid>/task/<tid>/comm): the media workers `aybiza-w<index>`, the
// embedded database `aybiza-db`, the provider emulators shared by the
// workers `aybiza-emu` (the native recording writer names itself
// `aybiza-rec`: native/recording_writer.cc). The main thread keeps its name (it is the process's name in `ps`). `npm run load`
// splits the server's CPU by these names. Elsewhere than Linux: nothing.
import fs from 'node:fs';

/** Thread names are at most 15 bytes on Linux. */
const NAME = /^[a-z0-9-]{1,15}$/;

export function nameThisThread(name: string): void {
  if (!NAME.test(name)) throw new RangeError(`thread name must match ${NAME}: ${JSON.stringify(name)}`);
  try {
    fs.writeFileSync('/proc/thread-self/comm', name);
  } catch {
    /* not Linux, or /proc not mounted: unnamed */
  }
}

/** The same, as source for a thread started from a string (`new Worker(code, { eval: true })`). */
export function nameThisThreadSource(name: string): string {
  if (!NAME.test(name)) throw new RangeError(`thread name must match ${NAME}: ${JSON.stringify(name)}`);
  return `try { require('node:fs').writeFileSync('/proc/thread-self/comm', ${JSON.stringify(name)}); } catch {}`;
}
