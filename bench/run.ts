// `npm run bench [-- name ...]`: runs every benchmark suite (or the named
// ones) and prints its tables. Each suite measures its baseline in the same
// run and prints the ratio. Add a suite by adding a line to SUITES.
type Suite = { name: string; load: () => Promise<{ default: () => Promise<void> }> };

const SUITES: Suite[] = [
  { name: 'g711', load: () => import('./g711.js') },
  { name: 'dtmf', load: () => import('./dtmf.js') },
  { name: 'jitter', load: () => import('./jitter.js') },
  { name: 'resolve', load: () => import('./resolve.js') },
  { name: 'providers', load: () => import('./providers.js') },
  { name: 'vad', load: () => import('./vad.js') },
  { name: 'channel', load: () => import('./channel.js') },
  { name: 'amd', load: () => import('./amd.js') },
  { name: 'first-clause', load: () => import('./first-clause.js') },
];

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const suite of SUITES) {
  if (wanted.length > 0 && !wanted.includes(suite.name)) continue;
  process.stdout.write(`\n## ${suite.name}\n\n`);
  await (await suite.load()).default();
}
