// The emulator thread's entry (src/providers/emulators/thread.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { installProcessGuards } from '../../guard.js';
import { nameThisThread } from '../../thread-name.js';
import { BedrockEmulator, DEFAULT_BEDROCK_EMULATOR } from './bedrock.js';
import { DEFAULT_DEEPGRAM_EMULATOR, DeepgramEmulator } from './deepgram.js';
import type { EmulatorThreadData, EmulatorThreadReady } from './thread.js';

nameThisThread('aybiza-emu');
// An exception in an emulator's socket handler is counted, as anywhere else; it does not end the thread.
installProcessGuards();
const { options } = workerData as EmulatorThreadData;
const host = options.host ?? '127.0.0.1';
const deepgram = new DeepgramEmulator({ ...DEFAULT_DEEPGRAM_EMULATOR, ...options.deepgram });
const bedrock = new BedrockEmulator({ ...DEFAULT_BEDROCK_EMULATOR, ...options.bedrock });
const ready: EmulatorThreadReady = {
  ready: true,
  deepgramUrl: await deepgram.listenOn(options.deepgramPort ?? 0, host),
  bedrockUrl: await bedrock.listenOn(options.bedrockPort ?? 0, host),
};
parentPort!.postMessage(ready);
