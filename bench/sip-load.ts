// `npm run sip:load`: SIPp load against a freshly started `aybiza serve`
// (emulated providers, embedded database): N concurrent PCMU calls with RTP
// both ways (SIPp streams a μ-law file; the agent greets and answers), then
// the server's own counters. Prints calls per second, peak concurrency,
// failed calls, the server's CPU and the RTP received/sent/lost/late/concealed
// figures. SIPp's -l caps concurrency, so the sustained rate is at most
// calls / hold time.
//   npm run sip:load -- --calls 50 --rate 10 --total 100 --hold-ms 10000
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeSipPort } from '../src/commands/child.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIO = path.join(ROOT, 'test/sip/scenarios/uac_load.xml');
const CLI = path.join(ROOT, 'dist/src/cli.js');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

/** A warble at speech level with pauses, so the VAD sees turns (raw μ-law, 8 kHz). */
function callerAudio(seconds: number): Buffer {
  const out = Buffer.alloc(8000 * seconds);
  for (let i = 0; i < out.length; i++) {
    const t = i / 8000;
    const talking = t % 4 < 2;
    const s = talking ? 6000 * Math.sin(2 * Math.PI * 300 * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t)) : 0;
    out[i] = ulaw(Math.round(s));
  }
  return out;
}

function ulaw(sample: number): number {
  let sign = 0;
  let s = sample;
  if (s < 0) {
    s = -s;
    sign = 0x80;
  }
  s = Math.min(s, 32635) + 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f)) & 0xff;
}

async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CLI, 'serve'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'listening' && rec.port) resolve(rec.port);
        } catch {
          /* partial line */
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port };
}

/** User + system CPU seconds of a process (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

async function api(base: string, key: string, p: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(base + p, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}

function metricSum(text: string, name: string, match: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function main(): Promise<void> {
  const calls = arg('calls', 50);
  const rate = arg('rate', 10);
  const total = arg('total', calls * 2);
  const holdMs = arg('hold-ms', 10_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sip-load-'));
  const sipPort = await freeSipPort();
  const mediaPort = await freeSipPort();
  const key = 'load-' + Math.random().toString(36).slice(2);
  const { child, port } = await startServer({
    PORT: '0', HOST: '127.0.0.1', DATA_DIR: path.join(dir, 'data'), ADMIN_API_KEY: key, EMULATORS: 'on', LOG_LEVEL: 'info',
    SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', RTP_PORT_MIN: '30000', RTP_PORT_MAX: '34000',
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    const tenant = await api(base, key, '/v1/tenants', { name: 'sip load' });
    const agent = await api(base, key, '/v1/agents', {
      tenantId: tenant.id, name: 'load agent', prompt: 'You are a receptionist. Keep answers short.',
      greeting: 'Hello, thanks for calling. How can I help you today?',
    });
    const number = '+1555' + String(Math.floor(1_000_000 + Math.random() * 8_999_999));
    await api(base, key, '/v1/phone-numbers', { number, agentId: agent.id });
    await api(base, key, '/v1/sip-trunks', { tenantId: tenant.id, name: 'loopback', allowedCidrs: ['127.0.0.1/32'] });
    fs.writeFileSync(path.join(dir, 'caller.ulaw'), callerAudio(8));
    const args = [
      `127.0.0.1:${sipPort}`, '-sf', SCENARIO, '-s', number, '-i', '127.0.0.1', '-mi', '127.0.0.1', '-mp', String(mediaPort),
      '-key', 'rtp_port', String(mediaPort), '-r', String(rate), '-l', String(calls), '-m', String(total), '-d', String(holdMs),
      '-nostdin', '-timeout', `${Math.ceil(total / rate + holdMs / 1000 + 60)}s`, '-timeout_error', '-trace_stat', '-fd', '1', '-trace_err',
    ];
    console.log(`sipp ${args.join(' ')}`);
    const cpu0 = cpuSeconds(child.pid!);
    const t0 = performance.now();
    const code = await new Promise<number | null>((resolve) => spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', resolve));
    const seconds = (performance.now() - t0) / 1000;
    const cpuPct = ((cpuSeconds(child.pid!) - cpu0) / seconds) * 100;
    const stat = fs.readdirSync(dir).find((f) => f.endsWith('_.csv'));
    const rows = stat ? fs.readFileSync(path.join(dir, stat), 'utf8').trim().split('\n').map((l) => l.split(';')) : [];
    const col = (name: string) => rows[0]?.indexOf(name) ?? -1;
    const last = rows[rows.length - 1] ?? [];
    const peak = rows.slice(1).reduce((m, r) => Math.max(m, Number(r[col('CurrentCall')] ?? 0)), 0);
    const ok = Number(last[col('SuccessfulCall(C)')] ?? NaN);
    const failed = Number(last[col('FailedCall(C)')] ?? NaN);
    const metrics = await (await fetch(base + '/metrics')).text();
    const rtp = (direction: string, event: string) => metricSum(metrics, 'aybiza_rtp_packets_total', { direction, event });
    const received = rtp('in', 'received');
    console.log('\nSIP load (SIPp uac_load.xml, PCMU, RTP both ways, emulated providers)');
    console.table({
      result: {
        'sipp exit': code, 'calls ok': ok, 'calls failed': failed, 'peak concurrent': peak,
        'offered cps': rate, 'completed cps': Number((ok / seconds).toFixed(2)), 'wall s': Number(seconds.toFixed(1)),
        'server CPU % of a core': Number(cpuPct.toFixed(1)),
      },
    });
    console.table({
      rtp: {
        'in received': received, 'in lost': rtp('in', 'lost'), 'in late': rtp('in', 'late'), 'in concealed': rtp('in', 'concealed'),
        'in unexpected source': rtp('in', 'unexpected_source'), 'out sent': rtp('out', 'sent'),
        'loss %': received ? Number(((100 * rtp('in', 'lost')) / (received + rtp('in', 'lost'))).toFixed(3)) : 0,
        'late %': received ? Number(((100 * rtp('in', 'late')) / received).toFixed(3)) : 0,
        'pacing late ticks': metricSum(metrics.replace(/^aybiza_pacing_late_ticks_total (\S+)$/m, 'aybiza_pacing_late_ticks_total{x="1"} $1'), 'aybiza_pacing_late_ticks_total', {}),
      },
    });
    process.exitCode = code === 0 && failed === 0 ? 0 : 1;
  } finally {
    child.kill('SIGTERM');
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
