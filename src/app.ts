// Composition root: builds the server from its parts for a given config.
// Data path, top to bottom: transports (src/twilio, sip/) → media core
// (src/media) → conversation (src/pipeline) → providers (src/providers).
// Control plane (src/store, src/api) and metrics sit beside it.
import type { Config } from './config.js';
import { Server } from './server/server.js';
import { ControlPlane } from './store/index.js';
import { mountApi } from './api/index.js';
import { seedDemo } from './store/seed.js';
import { createProviders } from './providers/index.js';
import type { Providers } from './providers/types.js';
import { TwilioGateway } from './twilio/gateway.js';
import { Conversation } from './pipeline/conversation.js';
import { SipServer } from '../sip/index.js';

export interface App {
  config: Config;
  server: Server;
  store: ControlPlane;
  providers: Providers;
  twilio: TwilioGateway;
  /** null when SIP_PORT=0 (disabled). */
  sip: SipServer | null;
}

export interface AppOptions {
  /** Redis key prefix (tests isolate themselves with it). */
  redisPrefix?: string;
  /** Seed a demo agent on an empty database (default: yes, outside production). */
  seed?: boolean;
}

export async function createApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const server = new Server({ host: config.host, port: config.port, drainTimeoutS: config.drainTimeoutS });
  const store = await ControlPlane.open({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    redisUrl: config.redisUrl,
    redisPrefix: opts.redisPrefix,
    adminApiKey: config.adminApiKey,
    sipRealm: config.sipRealm,
    encryptionKey: config.encryptionKey,
    encryptionKeysOld: config.encryptionKeysOld,
  });
  server.use(store);
  if (config.nodeEnv !== 'production' && opts.seed !== false) await seedDemo(store);
  const toolNetwork = { allowPrivateNetworks: config.toolsAllowPrivateNetworks };
  mountApi(server.router, store, { rateLimit: config.apiRateLimit, toolNetwork });
  const providers = await createProviders(config);
  server.use({ name: 'providers', close: () => providers.close() });
  // Each transport counts the other's calls against MAX_CONCURRENT_CALLS.
  let sip: SipServer | null = null;
  const twilioGateway = new TwilioGateway({
    config, server, store, providers, otherCalls: () => sip?.calls.size ?? 0,
    onSession: (s) => new Conversation(s, { llm: providers.llm, calls: store.calls, toolNetwork }),
  });
  server.use(twilioGateway);
  sip = config.sipPort === 0 ? null : new SipServer({
    config, store, providers, otherCalls: () => twilioGateway.sessions.size,
    onSession: (s) => new Conversation(s, { llm: providers.llm, calls: store.calls, toolNetwork }),
  });
  if (sip) server.use(sip);
  return { config, server, store, providers, twilio: twilioGateway, sip };
}
