// One DeepgramClient per process, pointed at DEEPGRAM_URL (the real service
// or any server speaking its protocol, such as our emulator).
import { DeepgramClient } from '@deepgram/sdk';

export interface DeepgramConfig {
  apiKey: string;
  /** Base URL; http(s) or ws(s). */
  url: string;
}

export function deepgramClient(cfg: DeepgramConfig): DeepgramClient {
  const http = cfg.url.replace(/^ws/, 'http');
  const ws = cfg.url.replace(/^http/, 'ws');
  return new DeepgramClient({ apiKey: cfg.apiKey, environment: { base: http, production: ws, agent: ws, agentRest: http } } as never);
}
