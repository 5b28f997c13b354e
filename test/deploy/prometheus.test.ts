// deploy/prometheus and deploy/grafana (issue 15 need 3): promtool accepts the
// alert rules and the file-discovery scrape config (Debian's promtool 2.42
// rejects kubernetes_sd_configs, so prometheus.yml is documented, not
// checked), and every aybiza_* metric that the dashboard, the rules, the HPA
// or the prometheus-adapter rule names exists on a running node's /metrics.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/commands/child.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';

const DEPLOY = path.resolve(__dirname, '../../deploy');
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

/** Files whose PromQL names metrics, and the aybiza_* names each uses. */
const USERS = ['grafana/aybiza-dashboard.json', 'prometheus/aybiza-alerts.yml', 'kubernetes/overlays/production/hpa.yaml', 'kubernetes/prometheus-adapter-rules.yaml'];
function namesIn(file: string): string[] {
  const text = fs.readFileSync(path.join(DEPLOY, file), 'utf8');
  return [...new Set([...text.matchAll(/\baybiza_[a-z0-9_]*[a-z0-9]/g)].map((m) => m[0]))];
}

describe.skipIf(!hasPromtool)('deploy/prometheus (promtool)', () => {
  it('promtool check rules accepts the alert rules', () => {
    const r = spawnSync('promtool', ['check', 'rules', path.join(DEPLOY, 'prometheus/aybiza-alerts.yml')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('promtool check config accepts the file-discovery scrape config (with its rules)', () => {
    const r = spawnSync('promtool', ['check', 'config', path.join(DEPLOY, 'prometheus/prometheus-file-sd.yml')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 1 rule files found/);
  });

  it('the Kubernetes scrape config stays documented beside it', () => {
    expect(fs.readFileSync(path.join(DEPLOY, 'prometheus/prometheus.yml'), 'utf8')).toMatch(/kubernetes_sd_configs:/);
  });
});

describe('every metric the deploy files name exists on /metrics', () => {
  let node: Spawned;
  beforeAll(async () => {
    node = await spawnServer({ PORT: String(await freePort()), EMULATORS: 'on' });
  }, 90_000);
  afterAll(async () => {
    await node?.stop();
  });

  it('dashboard, alert rules, HPA and adapter rule', async () => {
    const text = await (await fetch(`${node.base}/metrics`)).text();
    // A labelled metric with no sample yet still has its TYPE line.
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const exists = (name: string) => {
      if (types.has(name)) return true;
      const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
      return base !== undefined && ['histogram', 'summary'].includes(types.get(base) ?? '');
    };
    const used = USERS.flatMap((f) => namesIn(f).map((n) => ({ f, n })));
    expect(used.length).toBeGreaterThan(5);
    expect(used.filter(({ n }) => !exists(n)).map(({ f, n }) => `${f}: ${n}`)).toEqual([]);
  });
});
