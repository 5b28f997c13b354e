// `aybiza emulators`: the provider emulators as their own process (used by
// the load generator so their CPU is not charged to the server).
// Options: --host H --deepgram-port P --bedrock-port P --twilio-port P;
// latencies from EMULATOR_PROFILE and the EMULATOR_* variables. The Twilio
// REST emulator accepts TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN when set. Prints one JSON line with
// the URLs and the profile, then serves until SIGTERM/SIGINT.
import { loadConfig } from '../config.js';
import { setLogLevel } from '../log.js';
import { startEmulators } from '../providers/emulators/index.js';
import { emulatorOptions } from '../providers/emulators/profiles.js';

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
    twilioRestPort: port(flag(args, '--twilio-port'), '--twilio-port'),
    ...emulatorOptions(e),
  });
  if (config.twilioAccountSid && config.twilioAuthToken) emu.twilioRest.addAccount(config.twilioAccountSid, config.twilioAuthToken);
  process.stdout.write(
    JSON.stringify({ deepgramUrl: emu.deepgramUrl, bedrockUrl: emu.bedrockUrl, twilioRestUrl: emu.twilioRestUrl, faults: `${emu.deepgramUrl}/__emulator/faults`, profile: e.profile }) + '\n',
  );
  const stop = () => void emu.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
