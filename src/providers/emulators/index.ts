// The built-in provider emulators as one unit: a Deepgram (STT + TTS), a
// Bedrock and a Twilio REST (outbound calls) endpoint on loopback ports. Used in-process by `aybiza serve` when
// EMULATORS says so, and as their own process by `aybiza emulators`.
import type http from 'node:http';
import { BedrockEmulator, DEFAULT_BEDROCK_EMULATOR, type BedrockEmulatorOptions, type BedrockFaults } from './bedrock.js';
import { DEFAULT_DEEPGRAM_EMULATOR, DeepgramEmulator, type DeepgramEmulatorOptions, type DeepgramFaults } from './deepgram.js';
import { DEFAULT_TWILIO_REST_EMULATOR, TwilioRestEmulator, type TwilioRestEmulatorOptions } from './twilio-rest.js';

export interface EmulatorOptions {
  deepgram?: Partial<DeepgramEmulatorOptions>;
  bedrock?: Partial<BedrockEmulatorOptions>;
  host?: string;
  deepgramPort?: number;
  bedrockPort?: number;
  twilioRest?: Partial<TwilioRestEmulatorOptions>;
  twilioRestPort?: number;
}

export interface Emulators {
  deepgramUrl: string;
  bedrockUrl: string;
  deepgram: DeepgramEmulator;
  bedrock: BedrockEmulator;
  /** Twilio's REST API for outbound calls; accounts are added by whoever uses it (addAccount). */
  twilioRestUrl: string;
  twilioRest: TwilioRestEmulator;
  close(): Promise<void>;
}

/** The Twilio REST emulator alone (outbound calls when the speech and LLM providers are real). */
export async function startTwilioRestEmulator(opts: Partial<TwilioRestEmulatorOptions> = {}, port = 0, host = '127.0.0.1'): Promise<{ url: string; emulator: TwilioRestEmulator }> {
  const emulator = new TwilioRestEmulator({ ...DEFAULT_TWILIO_REST_EMULATOR, ...opts });
  return { url: await emulator.listenOn(port, host), emulator };
}

export async function startEmulators(opts: EmulatorOptions = {}): Promise<Emulators> {
  const deepgram = new DeepgramEmulator({ ...DEFAULT_DEEPGRAM_EMULATOR, ...opts.deepgram });
  const bedrock = new BedrockEmulator({ ...DEFAULT_BEDROCK_EMULATOR, ...opts.bedrock });
  // Fault injection over HTTP for a separate emulator process: POST /__emulator/faults
  // {"deepgram": {...DeepgramFaults}, "bedrock": {...BedrockFaults}}.
  deepgram.control = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { deepgram?: DeepgramFaults; bedrock?: BedrockFaults };
        Object.assign(deepgram.faults, body.deepgram ?? {});
        Object.assign(bedrock.faults, body.bedrock ?? {});
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ deepgram: deepgram.faults, bedrock: bedrock.faults, stats: { deepgram: deepgram.stats, bedrock: bedrock.stats } }));
      } catch {
        res.writeHead(400).end('bad JSON');
      }
    });
  };
  const host = opts.host ?? '127.0.0.1';
  const deepgramUrl = await deepgram.listenOn(opts.deepgramPort ?? 0, host);
  const bedrockUrl = await bedrock.listenOn(opts.bedrockPort ?? 0, host);
  const twilioRest = await startTwilioRestEmulator(opts.twilioRest, opts.twilioRestPort, host);
  return {
    deepgramUrl,
    bedrockUrl,
    deepgram,
    bedrock,
    twilioRestUrl: twilioRest.url,
    twilioRest: twilioRest.emulator,
    async close() {
      await Promise.allSettled([deepgram.close(), bedrock.close(), twilioRest.emulator.close()]);
    },
  };
}
