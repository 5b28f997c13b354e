// Picks the providers for a config: the real Deepgram and Bedrock endpoints,
// or the built-in emulators (EMULATORS=auto uses them for whatever has no
// credentials or URL configured), and says so in the log.
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { log } from '../log.js';
import { BedrockLlm } from './bedrock/llm.js';
import { deepgramClient } from './deepgram/client.js';
import { DeepgramStt } from './deepgram/stt.js';
import { FluxStt, isFluxModel } from './deepgram/flux.js';
import { DeepgramTts } from './deepgram/tts.js';
import { startEmulators, type Emulators } from './emulators/index.js';
import { emulatorOptions } from './emulators/profiles.js';
import type { SharedEmulators } from './emulators/thread.js';
import type { Providers } from './types.js';

/** Which providers this config emulates (EMULATORS, and what is configured). */
export function emulated(config: Config): { deepgram: boolean; bedrock: boolean } {
  const mode = config.emulators;
  const deepgramConfigured = !!(config.deepgramApiKey || config.deepgramUrl);
  const bedrockConfigured = !!(config.bedrockEndpoint || config.awsCredentialsPresent);
  if (mode === 'off' && !deepgramConfigured) throw new ConfigError('DEEPGRAM_API_KEY', 'is required when EMULATORS=off');
  if (mode === 'off' && !bedrockConfigured) throw new ConfigError('AWS_REGION', 'AWS credentials or BEDROCK_ENDPOINT are required when EMULATORS=off');
  return { deepgram: mode === 'on' || (mode === 'auto' && !deepgramConfigured), bedrock: mode === 'on' || (mode === 'auto' && !bedrockConfigured) };
}

/**
 * `shared`: emulators already running for the whole process (WORKERS > 1:
 * src/providers/emulators/thread.ts); without it, whatever is emulated gets
 * emulators of its own here (with the Twilio REST one, `emulators`).
 */
export async function createProviders(config: Config, shared?: SharedEmulators): Promise<Providers & { emulators: Emulators | null }> {
  const { deepgram: emulateDeepgram, bedrock: emulateBedrock } = emulated(config);
  let emulators: Emulators | null = null;
  if ((emulateDeepgram || emulateBedrock) && !shared) {
    emulators = await startEmulators(emulatorOptions(config.emulator));
  }
  const urls: SharedEmulators | null = shared ?? emulators;
  const dgUrl = emulateDeepgram ? urls!.deepgramUrl : (config.deepgramUrl ?? 'https://api.deepgram.com');
  const dg = deepgramClient({ apiKey: emulateDeepgram ? 'emulated' : (config.deepgramApiKey ?? 'local'), url: dgUrl });
  const llm = new BedrockLlm({
    region: config.awsRegion ?? 'us-east-1',
    endpoint: emulateBedrock ? urls!.bedrockUrl : config.bedrockEndpoint,
    // Keys given in the configuration are used as given; otherwise the AWS default chain
    // (profiles, web identity, container/instance roles). Emulators get placeholder keys.
    credentials: emulateBedrock || !config.awsCredentialsPresent ? { accessKeyId: 'local', secretAccessKey: 'local' } : config.awsStaticCredentials,
    models: [config.bedrockModelId, ...config.bedrockFallbackModels],
    ttftDeadlineMs: config.llmTtftDeadlineMs,
  });
  const tts = new DeepgramTts(dg);
  tts.prewarm();
  void llm.warm();
  if (emulateDeepgram) log.warn('speech (Deepgram STT/TTS): EMULATED — built-in emulator, no real transcription', { url: dgUrl });
  else log.info('speech: Deepgram', { url: dgUrl });
  if (emulateBedrock) log.warn('LLM (Bedrock): EMULATED — built-in emulator with canned replies', { url: urls!.bedrockUrl });
  else log.info('LLM: Bedrock', { region: config.awsRegion, endpoint: config.bedrockEndpoint ?? 'regional' });
  return {
    stt: sttByModel(new DeepgramStt(dg, config.sttSilenceGate), new FluxStt(dg)),
    tts,
    llm,
    emulated: emulateDeepgram || emulateBedrock,
    emulators,
    async close() {
      await tts.close();
      llm.client.destroy();
      await emulators?.close();
    },
  };
}

/** Per agent: Flux (listen v2) when its stt.model is a flux-* model, else Nova-3 and friends (listen v1, the default). */
function sttByModel(v1: Providers['stt'], flux: Providers['stt']): Providers['stt'] {
  return { name: 'deepgram', open: (opts, events) => (isFluxModel(opts.model) ? flux : v1).open(opts, events) };
}

export type * from './types.js';
