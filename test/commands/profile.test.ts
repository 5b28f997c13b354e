// `npm run load -- --profile`: self time per function from a V8 CPU profile.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatSelfTime, readMainThreadProfile, topSelfTime, type CpuProfile } from '../../src/commands/profile.js';

describe('CPU profile self time', () => {
  it('sums a function over all its call sites, weights samples by their time deltas, and ranks', () => {
    const frame = (functionName: string, lineNumber: number) => ({ functionName, url: 'file:///srv/app/x.js', lineNumber });
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 10_000,
      nodes: [
        { id: 1, callFrame: frame('(root)', -1) },
        { id: 2, callFrame: frame('hot', 9) },
        { id: 3, callFrame: frame('caller', 19) },
        { id: 4, callFrame: frame('hot', 9) }, // the same function under another caller
        { id: 5, callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 } },
        { id: 6, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      ],
      // Samples of 1 ms each (the delta before the next sample), µs.
      // (idle) is the loop waiting: never ranked, not in the shares.
      samples: [2, 4, 3, 5, 6, 2, 2],
      timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000],
    };
    const rows = topSelfTime(profile, 2, '/srv/app');
    expect(rows[0]).toEqual({ fn: 'hot (x.js:10)', selfMs: 3, percent: 60 });
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.fn)).not.toContain('(idle)');
    expect(formatSelfTime(rows)).toContain('hot (x.js:10)');
  });

  it('finds the busy function of a real node --cpu-prof run', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-prof-'));
    const script = 'function burnCpuForTheProfile(){let x=0;const t=Date.now();while(Date.now()-t<300)x+=Math.sqrt(x+1);return x}burnCpuForTheProfile();';
    execFileSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '-e', script]);
    const profile = readMainThreadProfile(dir);
    expect(profile).not.toBeNull();
    const top = topSelfTime(profile!, 15);
    expect(top.slice(0, 3).map((r) => r.fn).join(' ')).toContain('burnCpuForTheProfile');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
