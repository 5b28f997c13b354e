// An in-process server on embedded defaults with one tenant, agent and number.
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Principal } from '../../src/store/types.js';
import type { AgentConfig } from '../../src/store/types.js';
import { tempDir } from './spawn-server.js';

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

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export async function startTestApp(env: Record<string, string> = {}, agent: Partial<AgentConfig> = {}): Promise<TestApp> {
  const port = await freePort();
  const config = loadConfig({
    DATA_DIR: tempDir('app-'), PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, HOST: '127.0.0.1', SIP_PORT: '0', TWILIO_AUTH_TOKEN: 'test-auth-token', EMULATORS: 'on',
    EMULATOR_STT_FINAL_DELAY_MS: '50', EMULATOR_LLM_TTFT_MS: '60', EMULATOR_LLM_TOKENS_PER_S: '200', EMULATOR_TTS_TTFB_MS: '30', EMULATOR_TTS_RTF: '0.05',
    LOG_LEVEL: 'warn', ...env,
  });
  const app = await createApp(config);
  await app.server.listen();
  const base = `http://127.0.0.1:${port}`;
  const t = await app.store.tenants.create(ADMIN, 'Test', null);
  const a = await app.store.agents.create(ADMIN, t.id, { name: 'Agent', prompt: 'You are a helpful receptionist.', greeting: 'Hello! Thanks for calling. How can I help you today?', ...agent });
  const number = `+1415555${String(Math.floor(1000 + Math.random() * 8999))}`;
  await app.store.agents.addNumber(ADMIN, t.id, number, a.id);
  return { app, base, authToken: 'test-auth-token', number, agentId: a.id, tenantId: t.id, stop: () => app.server.shutdown() };
}
