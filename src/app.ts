// Composition root: builds the server from its parts for a given config.
// Data path, top to bottom: transports (src/twilio, sip/) → media core
// (src/media) → conversation (src/pipeline) → providers (src/providers).
// Control plane (src/store, src/api) and metrics sit beside it.
import type { Config } from './config.js';
import { Server } from './server/server.js';

export interface App {
  config: Config;
  server: Server;
}

export async function createApp(config: Config): Promise<App> {
  const server = new Server({ host: config.host, port: config.port, drainTimeoutS: config.drainTimeoutS });
  return { config, server };
}
