// The V8 heap flags the server is meant to run with are given everywhere it
// is started: `npm start`, the container, and the load generator.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingServerFlags, SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

const root = path.resolve(__dirname, '../..');

describe('server V8 flags', () => {
  it('npm start, npm run load and the Dockerfile start node with them', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const start = pkg.scripts.start.split(/\s+/);
    for (const f of SERVER_NODE_FLAGS) expect(start.slice(0, start.indexOf('dist/src/cli.js'))).toContain(f);
    // The load generator measures pacing on its own event loop: the same flags keep its pauses out of the figures.
    const load = pkg.scripts.load.split(/\s+/);
    for (const f of SERVER_NODE_FLAGS) expect(load.slice(0, load.indexOf('dist/src/cli.js'))).toContain(f);
    const cmd = /^CMD (\[.*\])$/m.exec(fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
    const argv = JSON.parse(cmd![1]) as string[];
    expect(argv.slice(-2)).toEqual(['dist/src/cli.js', 'serve']);
    for (const f of SERVER_NODE_FLAGS) expect(argv).toContain(f);
  });

  it('names the flags a process was started without', () => {
    expect(missingServerFlags(['--max-semi-space-size=4'])).toEqual(SERVER_NODE_FLAGS.filter((f) => f !== '--max-semi-space-size=4'));
    expect(missingServerFlags([...SERVER_NODE_FLAGS, '--inspect'])).toEqual([]);
  });
});
