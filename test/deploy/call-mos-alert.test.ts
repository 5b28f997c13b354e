// The low-MOS alert (deploy/prometheus/aybiza-alerts.yml, AybizaCallQualityLow)
// evaluated by promtool on synthetic aybiza_call_mos series: it fires when
// the median call sits below 3.6 for 10 minutes, not for good calls, not on
// a handful of calls. Skipped where promtool is not installed (Debian:
// `apt-get install prometheus`).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/spawn-server.js';

const RULES = path.resolve(__dirname, '../../deploy/prometheus/aybiza-alerts.yml');
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const SUMMARY = 'median call MOS below 3.6 for 10 minutes (packet loss or delay on the SIP trunks)';

/** Input series for one call a minute at `mos` (cumulative buckets), over 40 minutes; `every` minutes between calls. */
function series(mos: number, every = 1): string {
  const les = ['3', '3.3', '3.5', '3.6', '4', '4.5', '+Inf'];
  const step = `0+${1 / every}x40`;
  const lines = les.map((le) => `      - series: 'aybiza_call_mos_bucket{le="${le}"}'\n        values: '${le === '+Inf' || Number(le) >= mos ? step : '0x40'}'`);
  lines.push(`      - series: 'aybiza_call_mos_count'\n        values: '${step}'`);
  return lines.join('\n');
}

function test(name: string, mos: number, fires: boolean, every = 1): string {
  const exp = fires ? `\n          - exp_labels: { severity: warning }\n            exp_annotations: { summary: "${SUMMARY}" }` : ' []';
  return `  - name: ${name}\n    interval: 1m\n    input_series:\n${series(mos, every)}\n    alert_rule_test:\n      - eval_time: 30m\n        alertname: AybizaCallQualityLow\n        exp_alerts:${exp}\n`;
}

describe.skipIf(!hasPromtool)('AybizaCallQualityLow (promtool)', () => {
  it('the rules file is valid', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('fires on a median MOS of 3.3, stays quiet at 4.4 and on fewer than 5 calls in 10 minutes', () => {
    const file = path.join(tempDir('promtool-'), 'mos.test.yml');
    fs.writeFileSync(file, `rule_files: ['${RULES}']\nevaluation_interval: 1m\ntests:\n${test('low', 3.3, true)}${test('good', 4.4, false)}${test('few calls', 3.3, false, 4)}`);
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
