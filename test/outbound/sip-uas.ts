// SIPp as the callee of our outbound calls: a test/sip/scenarios/uas_*.xml
// scenario listening on a free loopback port (the trunk's outbound uri).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freeSipPort, SCENARIOS, type SippResult } from '../sip/helpers.js';
import { tempDir } from '../helpers/spawn-server.js';

const PCAP_DIR = '/usr/share/sip-tester';

export interface SippCallee {
  /** SIP port SIPp listens on (UDP, or TCP with `tcp`). */
  port: number;
  done: Promise<SippResult>;
}

export async function sippCallee(
  scenario: string,
  opts: { rtpPort?: number; tcp?: boolean; args?: string[]; timeoutS?: number; files?: Record<string, Uint8Array>; port?: number } = {},
): Promise<SippCallee> {
  const dir = tempDir('sipp-uas-');
  if (fs.existsSync(PCAP_DIR)) fs.symlinkSync(PCAP_DIR, path.join(dir, 'pcap'));
  // Files the scenario reads from its working directory (e.g. a pcap it plays).
  for (const [name, bytes] of Object.entries(opts.files ?? {})) fs.writeFileSync(path.join(dir, name), bytes);
  const port = opts.port ?? (await freeSipPort());
  const args = [
    '-sf', path.join(SCENARIOS, scenario), '-i', '127.0.0.1', '-p', String(port), '-mi', '127.0.0.1', '-mp', String(await freeSipPort()),
    '-key', 'rtp_port', String(opts.rtpPort ?? 9), '-m', '1', '-nostdin', '-timeout', `${opts.timeoutS ?? 40}s`, '-timeout_error',
    '-trace_err', '-trace_msg', ...(opts.tcp ? ['-t', 't1'] : []), ...(opts.args ?? []),
  ];
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
  const done = new Promise<SippResult>((resolve) => {
    child.on('exit', (code) => {
      const file = (suffix: string) => fs.readdirSync(dir).find((f) => f.endsWith(suffix));
      const read = (suffix: string) => (file(suffix) ? fs.readFileSync(path.join(dir, file(suffix)!), 'utf8') : '');
      const errors = read('_errors.log') + (code !== 0 ? read('_messages.log').slice(-6000) : '');
      resolve({ code, stdout, errors, dir });
    });
  });
  // Listening once its message log exists (SIPp opens it after binding); at most 3 s.
  for (let i = 0; i < 60 && !fs.readdirSync(dir).some((f) => f.endsWith('_messages.log')); i++) await new Promise((r) => setTimeout(r, 50));
  return { port, done };
}

/** The messages SIPp received and sent (its -trace_msg log). */
export function sippMessages(r: SippResult): string {
  const f = fs.readdirSync(r.dir).find((x) => x.endsWith('_messages.log'));
  return f ? fs.readFileSync(path.join(r.dir, f), 'utf8') : '';
}
