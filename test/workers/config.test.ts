// WORKERS: its default (the CPUs the process may use, a container's CPU quota
// included) and its validation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { availableCpus, loadConfig } from '../../src/config.js';
import { tempDir } from '../helpers/spawn-server.js';

describe('WORKERS', () => {
  const PG = 'postgres://db.example/aybiza';

  it('defaults to the CPUs available to the process, on the embedded database as on an external PostgreSQL', () => {
    expect(loadConfig({ DATABASE_URL: PG }).workers).toBe(availableCpus());
    expect(availableCpus()).toBeLessThanOrEqual(os.availableParallelism());
    expect(loadConfig({ DATABASE_URL: PG, WORKERS: '1' }).workers).toBe(1);
    expect(loadConfig({}).workers).toBe(availableCpus());
    expect(loadConfig({ DATABASE_URL: 'embedded' }).workers).toBe(availableCpus());
    // The embedded database's session is shared safely (test/workers/embedded-database.test.ts).
    expect(loadConfig({ WORKERS: '2' }).workers).toBe(2);
  });

  it('refuses a value that is not a whole number from 1, naming the variable', () => {
    for (const bad of ['0', '-2', 'two', '1.5']) expect(() => loadConfig({ DATABASE_URL: PG, WORKERS: bad })).toThrow(/WORKERS/);
  });

  it('is capped by a cgroup v2 CPU quota (a container limit the scheduler affinity does not show)', () => {
    const dir = tempDir('cpumax-');
    const file = path.join(dir, 'cpu.max');
    fs.writeFileSync(file, '50000 100000\n');
    expect(availableCpus(file)).toBe(1);
    fs.writeFileSync(file, 'max 100000\n');
    expect(availableCpus(file)).toBe(os.availableParallelism());
    expect(availableCpus(path.join(dir, 'missing'))).toBe(os.availableParallelism());
  });
});
