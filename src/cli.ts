#!/usr/bin/env node
// `aybiza <command>`: each command lives in src/commands/<name>.ts and is
// loaded only when asked for, so `aybiza call` does not start a database.
import { ConfigError } from './config.js';

type Command = { run(args: string[]): Promise<void> };

const COMMANDS: Record<string, { describe: string; load: () => Promise<Command> }> = {
  serve: { describe: 'run the media server (npm start)', load: () => import('./commands/serve.js') },
  demo: { describe: 'a server on embedded defaults and one simulated call with a barge-in; --stt MODEL, --out FILE, --outbound [--to N] [--amd MODE] (npm run demo)', load: () => import('./commands/demo.js') },
  call: { describe: 'place a simulated Twilio call (--url, --to, --wav FILE | --say TEXT, --record FILE, --json)', load: () => import('./commands/call.js') },
  load: { describe: 'load generator beside the naive baseline: --calls N --seconds S [--runs R] [--baseline off] [--workers N] [--profile] [--record dual|mixed] [--url URL] (npm run load)', load: () => import('./commands/load.js') },
  emulators: { describe: 'run the Deepgram, Bedrock and Twilio REST emulators as their own process', load: () => import('./commands/emulators.js') },
  fuzz: { describe: 'fuzz every boundary beside two healthy calls: --seconds N [--seed S] [--rate R] (npm run fuzz)', load: () => import('./commands/fuzz.js') },
  migrate: { describe: 'apply database migrations (DATABASE_URL, or the embedded database in DATA_DIR)', load: () => import('./commands/migrate.js') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.describe}`);
  return `usage: aybiza <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  // The AWS SDK prints a multi-line notice on Node < 22 (its releases after January 2027 need Node 22; the
  // lockfile pins one that runs here), on stderr, beside our JSON log lines, once per thread. The README says so
  // under Known gaps; `AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=false` shows it again.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [name, ...args] = process.argv.slice(2);
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`aybiza: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    process.exit(2);
  }
  await (await command.load()).run(args);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`aybiza: configuration error: ${err.message}\n`);
  } else {
    process.stderr.write(`aybiza: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
