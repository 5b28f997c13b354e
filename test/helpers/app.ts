// An in-process server on embedded defaults with one tenant, agent and number.
// With AYBIZA_TEST_WORKERS=N (N > 1) it is the WORKERS=N shape instead: the
// main thread's WorkerPool here and N media worker threads (src/server/workers.ts);
// `app` then offers what exists on this thread (store, SIP signalling,
// shutdown) and counts calls across workers, while the call objects
// themselves live in the workers (reaching for them throws InProcessOnly).
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { WorkerPool } from '../../src/server/workers.js';
import type { Principal } from '../../src/store/types.js';
import type { AgentConfig } from '../../src/store/types.js';
import { freePort } from '../../src/commands/child.js';
import { tempDir, testWorkers } from './spawn-server.js';

export const ADMIN: Principal = { keyId: 'key_test', keyName: 'test', tenantId: null, platformAdmin: true, scopes: [] };

export interface TestApp {
  app: App;
  base: string;
  authToken: string;
  number: string;
  agentId: string;
  tenantId: string;
  stop(): Promise<void>;
}

/** A loopback TCP port for a test server, outside the ephemeral range (see src/commands/child.ts). */
export { freePort };

export async function startTestApp(env: Record<string, string> = {}, agent: Partial<AgentConfig> = {}): Promise<TestApp> {
  const port = await freePort();
  const vars: Record<string, string> = {
    DATA_DIR: tempDir('app-'), PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, HOST: '127.0.0.1', SIP_PORT: '0', TWILIO_AUTH_TOKEN: 'test-auth-token', EMULATORS: 'on',
    EMULATOR_STT_FINAL_DELAY_MS: '50', EMULATOR_LLM_TTFT_MS: '60', EMULATOR_LLM_TOKENS_PER_S: '200', EMULATOR_TTS_TTFB_MS: '30', EMULATOR_TTS_RTF: '0.05',
    LOG_LEVEL: 'warn', WORKERS: testWorkers(), ...env,
  };
  const config = loadConfig(vars);
  const app = config.workers > 1 ? await poolApp(config, vars) : await createApp(config);
  await app.server.listen();
  const base = `http://127.0.0.1:${port}`;
  const t = await app.store.tenants.create(ADMIN, 'Test', null);
  const a = await app.store.agents.create(ADMIN, t.id, { name: 'Agent', prompt: 'You are a helpful receptionist.', greeting: 'Hello! Thanks for calling. How can I help you today?', ...agent });
  const number = `+1415555${String(Math.floor(1000 + Math.random() * 8999))}`;
  await app.store.agents.addNumber(ADMIN, t.id, number, a.id);
  return { app, base, authToken: 'test-auth-token', number, agentId: a.id, tenantId: t.id, stop: () => app.server.shutdown() };
}

/**
 * An app built from `vars` as a test that configures its own server builds it:
 * WORKERS is AYBIZA_TEST_WORKERS unless `vars` set it. WORKERS=1 is createApp
 * with `opts`; WORKERS > 1 is the pool shaped like an App (see startTestApp),
 * which takes the Redis key prefix to its workers; the workers read the rest
 * of their config from the variables, and the embedded database is seeded
 * with the demo agent as `serve` does.
 */
export async function startApp(vars: Record<string, string>, opts: AppOptions = {}): Promise<App> {
  const all = { WORKERS: testWorkers(), ...vars };
  const config = loadConfig(all);
  return config.workers > 1 ? poolApp(config, all, opts.redisPrefix) : createApp(config, opts);
}

/**
 * Spread into a test app's variables by tests that read the live call objects
 * (sessions, conversations, the emulators' request logs): WORKERS=1 whatever
 * AYBIZA_TEST_WORKERS says, since media workers keep those in other threads.
 */
export const IN_PROCESS = { WORKERS: '1' } as const;

/** A test reached for a call object that lives in a media worker thread (AYBIZA_TEST_WORKERS > 1). */
export class InProcessOnly extends Error {
  constructor(what: string) {
    super(`${what}: the call objects live in the media workers with AYBIZA_TEST_WORKERS > 1; this test needs WORKERS=1`);
  }
}

/** Counts like a Map's size; its entries are in other threads. */
function countOnly(what: string, size: () => number) {
  const refuse = () => {
    throw new InProcessOnly(what);
  };
  return { get size() { return size(); }, values: refuse, entries: refuse, keys: refuse, get: refuse, has: refuse, [Symbol.iterator]: refuse };
}

/** WORKERS > 1 in this process: the main thread's pool, shaped as far as it goes like an App. */
async function poolApp(config: Config, vars: Record<string, string>, redisPrefix?: string): Promise<App> {
  // The workers build their config from the environment: the variables this one came from.
  const pool = await WorkerPool.start(config, { env: { ...process.env, ...vars }, redisPrefix });
  const calls = countOnly('sessions', () => pool.totalCalls());
  const sip = pool.sipServer;
  const unavailable = (what: string) => new Proxy({}, { get: (_, name) => (name === 'then' ? undefined : (() => { throw new InProcessOnly(`${what}.${String(name)}`); })()) });
  return {
    config,
    store: pool.store,
    server: { listen: async () => pool.listeningPort, shutdown: () => pool.shutdown() },
    twilio: { sessions: calls },
    sip: sip && new Proxy(sip, {
      get: (target, name) => {
        if (name === 'calls') return countOnly('sip.calls', () => pool.totalCalls());
        // Methods run on the server itself: called through the proxy, their own `this.calls` would be the count above.
        const v: unknown = Reflect.get(target, name);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }),
    providers: unavailable('providers'),
    // Each worker has its own Twilio carrier (and with emulators its own REST emulator).
    get twilioCarrier(): never {
      throw new InProcessOnly('twilioCarrier');
    },
  } as unknown as App;
}

/**
 * The sum of a metric's series matching `labels`, read from the server's
 * /metrics (every worker's series merged), where a test would otherwise read
 * this process's registry (which holds only WORKERS=1's).
 */
export async function scrapeMetric(base: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
