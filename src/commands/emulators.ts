// `aybiza emulators`: the provider emulators as their own process (used by
// the load generator so their CPU is not charged to the server).
// Options: --host H --deepgram-port P --bedrock-port P; latencies from the
// EMULATOR_* variables. Prints one JSON line with the URLs, then serves
// until SIGTERM/SIGINT.
import { loadConfig } from '../config.js';
import { setLogLevel } from '../log.js';
import { startEmulators } from '../providers/emulators/index.js';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function run(args: string[]): Promise<void> {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  const e = config.emulator;
  const port = (v: string | undefined, name: string) => {
    if (v === undefined) return 0;
    if (!/^\d+$/.test(v) || Number(v) > 65535) throw new Error(`${name} must be a port number`);
    return Number(v);
  };
  const emu = await startEmulators({
    host: flag(args, '--host') ?? '127.0.0.1',
    deepgramPort: port(flag(args, '--deepgram-port'), '--deepgram-port'),
    bedrockPort: port(flag(args, '--bedrock-port'), '--bedrock-port'),
    deepgram: { sttFinalDelayMs: e.sttFinalDelayMs, ttsFirstByteMs: e.ttsFirstByteMs, ttsRealtimeFactor: e.ttsRealtimeFactor, ...(e.phrases ? { phrases: e.phrases } : {}) },
    bedrock: { ttftMs: e.llmTtftMs, tokensPerSecond: e.llmTokensPerSecond },
  });
  process.stdout.write(
    JSON.stringify({ deepgramUrl: emu.deepgramUrl, bedrockUrl: emu.bedrockUrl, faults: `${emu.deepgramUrl}/__emulator/faults` }) + '\n',
  );
  const stop = () => void emu.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
