// Self time per function from a V8 CPU profile (the `.cpuprofile` JSON that
// `node --cpu-prof` writes): what `npm run load -- --profile` prints for the
// server. Self time is a node's own samples (not its callees'), summed over
// every node of the same function (one function appears under many callers);
// idle time is left out.
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeRow {
  /** `name (file:line)`; V8's own buckets keep their names, e.g. `(garbage collector)`. */
  fn: string;
  selfMs: number;
  /** Share of all sampled busy (non-idle) time, %. */
  percent: number;
}

/** The `n` functions with the most self time. Sample weights come from timeDeltas when present. */
export function topSelfTime(profile: CpuProfile, n = 15, root = process.cwd()): SelfTimeRow[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const ms = new Map<number, number>(); // node id → self ms
  if (profile.samples && profile.timeDeltas && profile.samples.length === profile.timeDeltas.length) {
    // timeDeltas[i] is the time before sample i; the sample's weight is the gap to the next one.
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      ms.set(profile.samples[i], (ms.get(profile.samples[i]) ?? 0) + dt);
    }
  } else {
    const hits = profile.nodes.reduce((s, node) => s + (node.hitCount ?? 0), 0);
    const perHit = hits > 0 ? (profile.endTime - profile.startTime) / 1000 / hits : 0;
    for (const node of profile.nodes) ms.set(node.id, (node.hitCount ?? 0) * perHit);
  }
  const byFn = new Map<string, number>();
  let total = 0;
  for (const [id, t] of ms) {
    const node = byId.get(id);
    // Idle time is the event loop waiting, not work: left out of the ranking and the shares.
    if (!node || t === 0 || node.callFrame.functionName === '(idle)') continue;
    total += t;
    const key = label(node, root);
    byFn.set(key, (byFn.get(key) ?? 0) + t);
  }
  return [...byFn]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, t]) => ({ fn, selfMs: +t.toFixed(1), percent: total > 0 ? +((100 * t) / total).toFixed(1) : 0 }));
}

function label(node: ProfileNode, root: string): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (!url) return name;
  let file = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  if (file.startsWith(root + path.sep)) file = file.slice(root.length + 1);
  return `${name} (${file}:${lineNumber + 1})`;
}

/**
 * Reads the main thread's `.cpuprofile` in `dir`. Node writes one per thread,
 * named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread
 * is thread 0 (the embedded database's worker thread has its own file).
 */
export function readMainThreadProfile(dir: string): CpuProfile | null {
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return null;
  }
  const main = files.filter((f) => f.split('.')[4] === '0');
  const pick = (main.length ? main : files).sort().pop();
  return pick ? (JSON.parse(fs.readFileSync(path.join(dir, pick), 'utf8')) as CpuProfile) : null;
}

/** The rows as a fixed-width table for the terminal. */
export function formatSelfTime(rows: SelfTimeRow[]): string {
  const lines = ['  self ms      %  function'];
  for (const r of rows) lines.push(`${r.selfMs.toFixed(1).padStart(9)} ${r.percent.toFixed(1).padStart(6)}  ${r.fn}`);
  return lines.join('\n');
}
