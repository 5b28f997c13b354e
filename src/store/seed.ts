// First start on an empty database (outside production): a demo tenant, a
// demo agent and a number, so `npm start` followed by `aybiza call` (or
// `npm run demo`) has someone to talk to. Logged, and skipped once any tenant exists.
import { log } from '../log.js';
import type { ControlPlane } from './index.js';
import type { Principal } from './types.js';

export const DEMO_NUMBER = '+15555550100';

const SYSTEM: Principal = { keyId: 'system', keyName: 'first-start seed', tenantId: null, platformAdmin: true, scopes: [] };

export async function seedDemo(cp: ControlPlane): Promise<void> {
  const existing = (await cp.db.pool.query('select count(*)::int as n from tenants')).rows[0].n as number;
  if (existing > 0) return;
  const t = await cp.tenants.create(SYSTEM, 'Demo', null);
  const a = await cp.agents.create(SYSTEM, t.id, {
    name: 'Demo receptionist',
    prompt: 'You are a friendly receptionist for a small restaurant. Keep answers short: one or two sentences.',
    greeting: 'Hello, thanks for calling. How can I help you today?',
    latencyBudgetMs: 1500,
  });
  await cp.agents.addNumber(SYSTEM, t.id, DEMO_NUMBER, a.id);
  log.info('empty database: created a demo tenant, agent and number', { number: DEMO_NUMBER, agentId: a.id });
}
