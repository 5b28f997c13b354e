// Loaded into a spawned `aybiza serve` by the soak test (node --import, with
// an IPC channel): answers {type:'stats'} with what the process holds, so
// the test can compare it with idle. Nothing here runs in production.
// Native objects are counted by wrapping the addon's classes before any is
// constructed (the wrappers in src/media look them up at construction).
import fs from 'node:fs';

const dist = new URL('../../dist/', import.meta.url);
const { native } = await import(new URL('src/media/native.js', dist).href);
const live = {};
for (const name of ['MediaChannel', 'JitterBuffer', 'Vad', 'DtmfDetector']) {
  const Orig = native[name];
  if (typeof Orig !== 'function') continue;
  live[name] = 0;
  const closed = new WeakSet();
  native[name] = class extends Orig {
    constructor(...args) {
      super(...args);
      live[name]++;
    }
    close(...args) {
      if (!closed.has(this)) {
        closed.add(this);
        live[name]--;
      }
      return super.close(...args);
    }
  };
}
const { clock } = await import(new URL('src/call/clock.js', dist).href);
const { sttStreamsOpen } = await import(new URL('src/providers/deepgram/stt.js', dist).href);
const { boundRtpPorts } = await import(new URL('sip/rtp.js', dist).href);

process.on('message', (m) => {
  if (!m || m.type !== 'stats') return;
  globalThis.gc?.();
  const resources = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  // fds by kind; the embedded database's own files (PGlite opens a relation's
  // segment files as tables grow, bounded by the schema) are counted apart.
  let fds = 0;
  let sockets = 0;
  let dbFiles = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory's own fd, already closed
    }
    if (target.includes('/pgdata/')) dbFiles++;
    else fds++;
    if (target.startsWith('socket:')) sockets++;
  }
  process.send({
    type: 'stats', id: m.id, resources, fds, sockets, dbFiles, native: { ...live },
    clock: clock.size, sttStreams: sttStreamsOpen(), rtpPorts: boundRtpPorts(), heapUsed: process.memoryUsage().heapUsed,
  });
});
process.channel?.unref();
