// SIPp as the callee of an outbound call that answers with a recording: the
// test's audio written as an RTP capture (answer.pcap: Ethernet/IPv4/UDP/RTP
// PCMU, 20 ms apart) beside test/sip/scenarios/uas_amd_play.xml, which plays
// it with play_pcap_audio once our ACK arrives.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freeSipPort, SCENARIOS, type SippResult } from '../sip/helpers.js';
import { tempDir } from '../helpers/spawn-server.js';

/** μ-law audio as a pcap of RTP packets, one 160-byte frame each, 20 ms apart. */
export function rtpPcap(ulaw: Uint8Array): Buffer {
  const frames = Math.floor(ulaw.length / 160);
  const rec = 16 + 14 + 20 + 8 + 12 + 160;
  const out = Buffer.alloc(24 + frames * rec);
  out.writeUInt32LE(0xa1b2c3d4, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeUInt32LE(65535, 16);
  out.writeUInt32LE(1, 20); // Ethernet
  for (let f = 0; f < frames; f++) {
    let o = 24 + f * rec;
    const us = f * 20_000;
    out.writeUInt32LE(Math.floor(us / 1e6), o);
    out.writeUInt32LE(us % 1e6, o + 4);
    out.writeUInt32LE(rec - 16, o + 8);
    out.writeUInt32LE(rec - 16, o + 12);
    o += 16;
    out.writeUInt16BE(0x0800, o + 12); // IPv4; MACs stay zero
    o += 14;
    out.writeUInt8(0x45, o);
    out.writeUInt16BE(20 + 8 + 12 + 160, o + 2);
    out.writeUInt8(64, o + 8);
    out.writeUInt8(17, o + 9); // UDP
    out.writeUInt32BE(0x7f000001, o + 12);
    out.writeUInt32BE(0x7f000001, o + 16);
    o += 20;
    out.writeUInt16BE(40000, o);
    out.writeUInt16BE(40002, o + 2);
    out.writeUInt16BE(8 + 12 + 160, o + 4);
    o += 8;
    out.writeUInt8(0x80, o);
    out.writeUInt8(0, o + 1); // PT 0 PCMU
    out.writeUInt16BE(f & 0xffff, o + 2);
    out.writeUInt32BE(f * 160, o + 4);
    out.writeUInt32BE(0x5eed0001, o + 8);
    Buffer.from(ulaw.buffer, ulaw.byteOffset + f * 160, 160).copy(out, o + 12);
  }
  return out;
}

export interface PlayingCallee {
  port: number;
  done: Promise<SippResult>;
}

/** Starts SIPp answering one call with `ulaw` played as RTP after the ACK. */
export async function sippPlaying(ulaw: Uint8Array, timeoutS = 60): Promise<PlayingCallee> {
  const dir = tempDir('sipp-amd-');
  fs.writeFileSync(path.join(dir, 'answer.pcap'), rtpPcap(ulaw));
  const port = await freeSipPort();
  const args = [
    '-sf', path.join(SCENARIOS, 'uas_amd_play.xml'), '-i', '127.0.0.1', '-p', String(port), '-mi', '127.0.0.1', '-mp', String(await freeSipPort()),
    '-m', '1', '-nostdin', '-timeout', `${timeoutS}s`, '-timeout_error', '-trace_err', '-trace_msg',
  ];
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
  const done = new Promise<SippResult>((resolve) => {
    child.on('exit', (code) => {
      const log = fs.readdirSync(dir).find((f) => f.endsWith('_errors.log'));
      resolve({ code, stdout, errors: log ? fs.readFileSync(path.join(dir, log), 'utf8') : '', dir });
    });
  });
  for (let i = 0; i < 60 && !fs.readdirSync(dir).some((f) => f.endsWith('_messages.log')); i++) await new Promise((r) => setTimeout(r, 50));
  return { port, done };
}
