// SIPp as the callee of an outbound call that answers with a recording: the
// test's audio written as an RTP capture (answer.pcap: Ethernet/IPv4/UDP/RTP
// PCMU, 20 ms apart) beside test/sip/scenarios/uas_amd_play.xml, which plays
// it with play_pcap_audio once our ACK arrives.
import { sippCallee, type SippCallee } from './sip-uas.js';

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

export type PlayingCallee = SippCallee;

/** Starts SIPp answering one call with `ulaw` played as RTP after the ACK. */
export function sippPlaying(ulaw: Uint8Array, timeoutS = 60): Promise<PlayingCallee> {
  return sippCallee('uas_amd_play.xml', { timeoutS, files: { 'answer.pcap': rtpPcap(ulaw) } });
}
