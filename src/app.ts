// Composition root: builds the server from its parts for a given config.
// Data path, top to bottom: transports (src/twilio, sip/) → media core
// (src/media) → conversation (src/pipeline) → providers (src/providers).
// Control plane (src/store, src/api) and metrics sit beside it.
// With WORKERS > 1 (src/server/workers.ts) each media worker thread builds
// this app with a `worker` role, and the main thread keeps the store's setup,
// the shared state and SIP.
import type { Config } from './config.js';
import { Server } from './server/server.js';
import { ControlPlane, type SharedState } from './store/index.js';
import { mountApi } from './api/index.js';
import { seedDemo } from './store/seed.js';
import { createProviders } from './providers/index.js';
import type { Providers } from './providers/types.js';
import { TwilioGateway } from './twilio/gateway.js';
import { Conversation } from './pipeline/conversation.js';
import type { CallSession } from './call/session.js';
import { SipServer } from '../sip/index.js';
import { startTwilioCarrier, type TwilioCarrier } from './outbound/twilio.js';
import { OutboundDialer } from './outbound/dialer.js';
import { campaignRunnerFor } from './outbound/campaigns.js';
import { SipCarrier } from './outbound/sip.js';
import { screenAnsweredCall } from './pipeline/voicemail.js';
import type { PlaceRequest } from './outbound/types.js';
import { WebhookOutbox } from './webhooks/outbox.js';
import { AnalysisQueue } from './postcall/queue.js';
import { recallFor } from './postcall/recall.js';
import { BedrockLlm } from './providers/bedrock/llm.js';
import type { SharedEmulators } from './providers/emulators/thread.js';
import { Recordings } from './recordings/recordings.js';
import { RecordingSweeper } from './recordings/sweeper.js';

export interface App {
  config: Config;
  server: Server;
  store: ControlPlane;
  providers: Providers;
  twilio: TwilioGateway;
  /** null when SIP_PORT=0 (disabled), and in a media worker (SIP stays in the main thread). */
  sip: SipServer | null;
  /** Outbound calls over Twilio (real or emulated REST API); null with EMULATORS=off and no Twilio account. */
  twilioCarrier: TwilioCarrier | null;
}

/** What a media worker thread is given by the main thread (src/worker/main.ts). */
export interface WorkerRole {
  index: number;
  /** The main thread's in-process state over the channel; absent with REDIS_URL. */
  state?: SharedState;
  /** The embedded database's socket (the main thread runs it); absent with DATABASE_URL. */
  databaseUrl?: string;
  /** Calls the other workers and the main thread carry, for MAX_CONCURRENT_CALLS. */
  otherCalls(): number;
  /** Every call session this worker starts (the main thread counts them and ends them if the worker dies). */
  onCall(session: CallSession): void;
  /** Media streams accepted whose call has not started yet (the main thread's connection steering counts them). */
  connecting?(delta: 1 | -1): void;
  /** The process-wide /metrics text and readiness, assembled by the main thread. */
  metrics(): Promise<string>;
  ready(): Promise<boolean>;
  /** The process's provider emulators (src/providers/emulators/thread.ts), when it emulates any. */
  emulators?: SharedEmulators;
}

export interface AppOptions {
  /** Redis key prefix (tests isolate themselves with it). */
  redisPrefix?: string;
  /** Seed a demo agent on an empty database (default: yes, outside production). */
  seed?: boolean;
  /** Set in a media worker thread (WORKERS > 1). */
  worker?: WorkerRole;
}

/** Opens the control plane for this config (a media worker: on the main thread's database and state, without setup). */
export async function openStore(config: Config, opts: AppOptions = {}): Promise<ControlPlane> {
  const w = opts.worker;
  const store = await ControlPlane.open({
    databaseUrl: w?.databaseUrl ?? config.databaseUrl,
    // PGlite runs one query at a time: one connection per thread keeps transactions whole.
    poolSize: w?.databaseUrl ? 1 : undefined,
    dataDir: config.dataDir,
    redisUrl: config.redisUrl,
    redisPrefix: opts.redisPrefix ?? config.redisPrefix,
    redisCluster: config.redisCluster,
    adminApiKey: config.adminApiKey,
    sipRealm: config.sipRealm,
    encryptionKey: config.encryptionKey,
    encryptionKeysOld: config.encryptionKeysOld,
    state: w?.state,
    setup: !w,
  });
  if (!w && config.nodeEnv !== 'production' && opts.seed !== false) await seedDemo(store);
  return store;
}

/** The conversation every call session gets (src/pipeline), whichever transport carries it. */
export function conversations(config: Config, store: ControlPlane, providers: Providers): (s: CallSession) => Conversation {
  const toolNetwork = { allowPrivateNetworks: config.toolsAllowPrivateNetworks };
  // A transfer is a call out: the tenant's outbound guards apply (src/outbound/guards.ts).
  const guards = OutboundDialer.for(store).guards;
  const checkTransfer = (tenantId: string, target: string) => guards.transferRefusal(tenantId, target);
  const recordings = Recordings.for(store, config);
  return (s) => {
    // The caller's earlier summaries (agents with memory on) are looked up while the greeting plays.
    recallFor(store, s);
    // Agents with recording on: from the first frame either way.
    recordings.record(s);
    return new Conversation(s, { llm: providers.llm, tts: providers.tts, calls: store.calls, toolNetwork, checkTransfer });
  };
}

/** Outbound calls through SIP trunks leave from the node's SIP sockets (the main thread; src/worker/remote-carrier.ts for workers). */
export function registerSipCarrier(config: Config, store: ControlPlane, sip: SipServer): void {
  // Answered calls that asked for AMD are screened before the agent speaks (src/pipeline/voicemail.ts).
  const onAnswered = (session: CallSession, p: PlaceRequest) => void screenAnsweredCall(session, p, store.calls);
  const network = { allowPrivateNetworks: config.toolsAllowPrivateNetworks };
  OutboundDialer.for(store).register(new SipCarrier({ sip, store, network, onAnswered }));
}

export async function createApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const w = opts.worker;
  const server = new Server({
    host: config.host, port: config.port, drainTimeoutS: config.drainTimeoutS,
    worker: w && { index: w.index, metrics: () => w.metrics(), ready: () => w.ready() },
  });
  const store = await openStore(config, opts);
  store.calls.prices = config.prices;
  server.use(store);
  // Work shared through PostgreSQL (webhook outbox, post-call analysis,
  // campaign dialling) runs once per node: on the main thread, or with
  // WORKERS > 1 (whose main thread runs no app) on worker 0. Leases in the
  // database keep several nodes from doing the same item twice.
  const leader = !w || w.index === 0;
  const toolNetwork = { allowPrivateNetworks: config.toolsAllowPrivateNetworks };
  mountApi(server.router, store, { rateLimit: config.apiRateLimit, toolNetwork });
  // Webhook deliveries (the outbox is shared through PostgreSQL).
  if (leader) server.use(new WebhookOutbox(store, { network: toolNetwork }));
  const providers = await createProviders(config, w?.emulators);
  server.use({ name: 'providers', close: () => providers.close() });
  // Post-call analysis (its queue is shared through PostgreSQL), after the calls it follows.
  if (leader && providers.llm instanceof BedrockLlm) server.use(new AnalysisQueue(store, { client: providers.llm.client, defaultModel: config.bedrockModelId }));
  // Recordings finish (and upload) after the calls end, so they close after the transports; retention is swept once per node.
  const recordings = Recordings.for(store, config);
  server.use(recordings);
  if (leader) server.use(new RecordingSweeper(recordings));
  const conversation = conversations(config, store, providers);
  // Each transport counts the other's calls against MAX_CONCURRENT_CALLS.
  let sip: SipServer | null = null;
  const twilioGateway = new TwilioGateway({
    config, server, store, providers, otherCalls: () => (sip?.calls.size ?? 0) + (w?.otherCalls() ?? 0),
    connecting: w?.connecting,
    onSession: (s) => {
      w?.onCall(s);
      return conversation(s);
    },
  });
  server.use(twilioGateway);
  // Outbound calls over Twilio's REST API, or its emulator (src/outbound/twilio.ts).
  const emu = providers.emulators;
  const twilioOut = await startTwilioCarrier({
    config, store, gateway: twilioGateway, router: server.router, emulator: emu ? { url: emu.twilioRestUrl, emulator: emu.twilioRest } : undefined,
  });
  server.use({ name: 'twilio-outbound', close: () => twilioOut.close() });
  sip = config.sipPort === 0 || w ? null : new SipServer({
    config, store, providers, otherCalls: () => twilioGateway.sessions.size, onSession: conversation,
  });
  if (sip) server.use(sip);
  // Outbound calls through SIP trunks leave from the node's SIP sockets (main thread).
  if (sip) registerSipCarrier(config, store, sip);
  // Campaigns (their queue is shared through PostgreSQL); a worker dials SIP through the main thread.
  if (leader) server.use(campaignRunnerFor(store));
  return { config, server, store, providers, twilio: twilioGateway, sip, twilioCarrier: twilioOut.carrier };
}
