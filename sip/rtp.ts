// One call's RTP (RFC 3550) on its own even UDP port, RTCP on the next one.
// In: validate, latch to the caller's real source (symmetric RTP), A-law →
// μ-law, into the native jitter buffer; RFC 4733 events become digits once
// per event (deduplicated by SSRC + timestamp), and digits go out as events.
// Out: one packet per 20 ms
// frame, sent when the shared clock's playout hands it over, with a random
// SSRC/sequence/timestamp start, timestamps that follow wall-clock frame
// slots across silences, and the marker bit on each talkspurt's first packet.
import dgram from 'node:dgram';
import { clock } from '../src/call/clock.js';
import crypto from 'node:crypto';
import { guard } from '../src/guard.js';
import { JitterBuffer, type JitterFrame, type JitterStats } from '../src/media/jitter-buffer.js';
import { LossPattern } from '../src/media/loss-pattern.js';
import { callQuality, type CallQuality } from '../src/media/quality.js';
import { alawToUlawInto, ulawToAlawInto } from '../src/media/g711.js';
import { countBadInput, hotCounter, rtpPackets } from '../src/metrics/index.js';
import { ntpSeconds, RtcpFeedback } from './rtcp.js';
import type { Codec } from './sdp.js';

const FRAME = 160;
const DIGITS = '0123456789*#ABCD';
const RTCP_EVERY_MS = 5000;
const DIGIT_FRAMES = 8; // 160 ms per digit
const DIGIT_GAP_FRAMES = 5; // 100 ms between digits
const PAUSE_FRAMES = 25; // 'w': 500 ms

const received = hotCounter(rtpPackets, 'in', 'received');
const sent = hotCounter(rtpPackets, 'out', 'sent');
const unexpected = hotCounter(rtpPackets, 'in', 'unexpected_source');

export interface RtpPeer {
  address: string;
  port: number;
}

export interface RtpOptions {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  localPort: number;
  codec: Codec;
  pt: number;
  dtmfPt: number | null;
  /** The offer's c=/m= address; null while the caller holds. */
  remote: RtpPeer | null;
  /** Addresses the first packets may come from (SDP address, signalling source). */
  latchFrom: string[];
  onDigit(digit: string): void;
}

export interface RtpPorts {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  port: number;
}

let boundPairs = 0;
/** RTP/RTCP port pairs bound right now (allocated and not yet closed): back to 0 when idle. */
export function boundRtpPorts(): number {
  return boundPairs;
}

/** Closes a pair's sockets; safe to call again, or after an RtpSession closed them. */
export function releaseRtpPorts(p: RtpPorts): void {
  for (const s of [p.rtp, p.rtcp]) {
    try {
      s.close();
    } catch {
      // already closed
    }
  }
}

/** Binds an even RTP port and the odd RTCP port above it, from [min, max]. */
export async function allocateRtpPorts(host: string, min: number, max: number): Promise<RtpPorts | null> {
  const first = min + (min & 1);
  const slots = Math.floor((max - first) / 2);
  if (slots <= 0) return null;
  const start = crypto.randomInt(slots);
  for (let i = 0; i < Math.min(slots, 64); i++) {
    const port = first + ((start + i) % slots) * 2;
    const rtp = await bind(host, port);
    if (!rtp) continue;
    const rtcp = await bind(host, port + 1);
    if (rtcp) {
      boundPairs++;
      // Counted down when the RTP socket closes, whoever closes it.
      rtp.once('close', () => boundPairs--);
      return { rtp, rtcp, port };
    }
    rtp.close();
  }
  return null;
}

function bind(host: string, port: number): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(null);
    });
    s.bind(port, host, () => {
      s.removeAllListeners('error');
      s.on('error', guard('rtp', () => countBadInput('rtp', 'socket_error')));
      resolve(s);
    });
  });
}

export class RtpSession {
  readonly jitter = new JitterBuffer({ codec: 'pcmu' });
  private readonly ssrc = crypto.randomBytes(4).readUInt32BE();
  private seq = crypto.randomInt(65536);
  private readonly tsBase = crypto.randomBytes(4).readUInt32BE();
  private readonly t0 = performance.now();
  private lastSlot = -2;
  private latched: RtpPeer | null = null;
  /** The last non-null SDP address:port (a different one in a new offer is a media move). */
  private sdpRemote: RtpPeer | null = null;
  /** Where media came from before the last move: refused from then on. */
  private movedFrom: RtpPeer | null = null;
  /** The signalling source: media may come from there too (a PBX sends both). */
  private readonly signalling: string[];
  private readonly scratch = Buffer.alloc(FRAME);
  private lastEvent = '';
  private lastRtcp = performance.now();
  remote: RtpPeer | null;
  /** Whether we may send (our answer's direction allows it). */
  sending = true;
  lastPacketAt = performance.now();
  packetsIn = 0;
  packetsOut = 0;
  octetsOut = 0;
  unexpectedSource = 0;
  /**
   * Until an outbound call is answered its early media (183 + RTP: ringback,
   * announcements) is counted here and played to nobody; then set false.
   */
  early = false;
  earlyPackets = 0;
  /** Payloads of another size than 20 ms, passed on without the jitter buffer. */
  private unbuffered: Uint8Array[] = [];
  private remoteSsrc = 0;
  private digitQueue: string[] = [];
  private digit: { event: number; slot: number; frames: number } | null = null;
  private digitGap = 0;
  private maxSeq = -1;
  private closed = false;
  /** For the call's quality (src/media/quality.ts): the decoder's loss pattern, the caller's RTCP, sampled buffer delay. */
  private readonly loss = new LossPattern();
  private readonly feedback = new RtcpFeedback(this.ssrc, this.seq);
  private bufferDelaySum = 0;
  private bufferDelaySamples = 0;
  private finalStats: JitterStats | null = null;

  constructor(private readonly o: RtpOptions) {
    this.remote = o.remote;
    this.sdpRemote = o.remote;
    this.signalling = [...o.latchFrom];
    // Under the callback guard: a failure drops that one packet (counted as where="rtp"), never the process.
    o.rtp.on('message', guard('rtp', (buf: Buffer, rinfo: dgram.RemoteInfo) => {
      clock.poll(); // a due pacing step goes before more packets (see src/call/clock.ts)
      this.onPacket(buf, rinfo);
    }));
    o.rtcp.on('message', guard('rtp', (buf: Buffer, rinfo: dgram.RemoteInfo) => this.onRtcp(buf, rinfo)));
  }

  /** The payload formats agreed (set again when a delayed offer's answer arrives in the ACK). */
  setFormat(codec: Codec, pt: number, dtmfPt: number | null): void {
    this.o.codec = codec;
    this.o.pt = pt;
    this.o.dtmfPt = dtmfPt;
  }

  /** Another address the first packets may come from (a new SDP address). */
  allowSource(address: string): void {
    if (!this.o.latchFrom.includes(address)) this.o.latchFrom.push(address);
  }

  /**
   * The remote c=/m= address of the latest offer or answer (null: the caller
   * holds with c=0.0.0.0). A different address or port than before is a media
   * move (re-INVITE): we send there at once, the latch is dropped, the next
   * packet from the new address (or the signalling source) latches again,
   * and the old source is refused.
   */
  setRemote(peer: RtpPeer | null): void {
    if (peer && this.sdpRemote && (peer.address !== this.sdpRemote.address || peer.port !== this.sdpRemote.port)) {
      this.movedFrom = this.latched ?? this.sdpRemote;
      this.latched = null;
      this.o.latchFrom = [peer.address, ...this.signalling.filter((a) => a !== peer.address)];
    } else if (peer) {
      this.allowSource(peer.address);
    }
    if (peer) this.sdpRemote = peer;
    this.remote = peer;
  }

  get localPort(): number {
    return this.o.localPort;
  }

  get ssrcOut(): number {
    return this.ssrc;
  }

  private onPacket(buf: Buffer, from: dgram.RemoteInfo): void {
    if (this.closed) return;
    if (buf.length < 12 || buf[0]! >> 6 !== 2) return countBadInput('rtp', 'not_rtp');
    if (!this.acceptSource(from)) return;
    const second = buf[1]!;
    // rtcp-mux (RFC 5761): RTCP packet types 192..223 on the RTP port; never audio.
    if (second >= 192 && second <= 223) return this.onRtcp(buf, from);
    const cc = buf[0]! & 0x0f;
    let off = 12 + cc * 4;
    if (buf[0]! & 0x10) {
      if (buf.length < off + 4) return countBadInput('rtp', 'bad_extension');
      off += 4 + buf.readUInt16BE(off + 2) * 4;
    }
    let end = buf.length;
    if (buf[0]! & 0x20) end -= buf[buf.length - 1]!;
    if (off > end) return countBadInput('rtp', 'bad_length');
    const pt = second & 0x7f;
    const seq = buf.readUInt16BE(2);
    const ts = buf.readUInt32BE(4);
    const ssrc = buf.readUInt32BE(8);
    const payload = buf.subarray(off, end);
    this.lastPacketAt = performance.now();
    if (this.early) return void this.earlyPackets++;
    this.packetsIn++;
    received.inc();
    // Events (and stray payload types) take sequence numbers of the stream too: arrived, so not audio lost.
    if (pt === this.o.dtmfPt || (pt !== 0 && pt !== 8 && pt !== this.o.pt)) {
      this.loss.packet(seq, 'accepted');
      this.jitter.skip(seq); // nor for the jitter buffer's lost count (media_stats)
    }
    if (pt === this.o.dtmfPt) return this.onEvent(payload, ts, ssrc);
    if (pt !== 0 && pt !== 8 && pt !== this.o.pt) return countBadInput('rtp', 'unexpected_payload_type');
    if (payload.length === 0 || payload.length > 1600) return countBadInput('rtp', 'bad_payload_size');
    // Decide the codec by PT: test peers send PCMA even after a PCMU answer.
    const alaw = pt === 8 || (pt === this.o.pt && this.o.codec === 'pcma');
    if (payload.length !== FRAME) {
      const u = new Uint8Array(payload.length);
      if (alaw) alawToUlawInto(payload, u);
      else u.set(payload);
      // No jitter buffer here: a packet is in time unless the queue is full (for the loss pattern).
      const inTime = this.unbuffered.length < 50;
      if (inTime) this.unbuffered.push(u);
      this.loss.packet(seq, inTime ? 'accepted' : 'late');
      this.jitter.skip(seq);
      return;
    }
    let frame: Uint8Array = payload;
    if (alaw) {
      alawToUlawInto(payload, this.scratch);
      frame = this.scratch;
    }
    this.remoteSsrc = ssrc;
    if (seq > this.maxSeq || this.maxSeq - seq > 30000) this.maxSeq = seq;
    this.loss.packet(seq, this.jitter.push({ seq, timestamp: ts, payload: frame, arrivalMs: this.lastPacketAt, ssrc }));
  }

  /** Symmetric RTP: latch to the first packet from an expected address; count the rest. */
  private acceptSource(from: dgram.RemoteInfo): boolean {
    if (this.latched) {
      if (this.latched.address === from.address && this.latched.port === from.port) return true;
      // The carrier moved its media (a new port): allowed only from the same address after silence.
      if (this.latched.address === from.address && !this.isMovedFrom(from) && performance.now() - this.lastPacketAt > 1000) {
        this.latched = { address: from.address, port: from.port };
        return true;
      }
    } else if (this.o.latchFrom.includes(from.address) && !this.isMovedFrom(from)) {
      this.latched = { address: from.address, port: from.port };
      return true;
    }
    this.unexpectedSource++;
    unexpected.inc();
    return false;
  }

  private isMovedFrom(from: dgram.RemoteInfo): boolean {
    return this.movedFrom !== null && this.movedFrom.address === from.address && this.movedFrom.port === from.port;
  }

  private onEvent(p: Buffer, ts: number, ssrc: number): void {
    if (p.length < 4) return countBadInput('rtp', 'bad_telephone_event');
    const event = p[0]!;
    // One event = one (SSRC, timestamp); its updates and three end packets repeat it.
    const key = `${ssrc}:${ts}`;
    if (key === this.lastEvent) return;
    this.lastEvent = key;
    if (event < DIGITS.length) this.o.onDigit(DIGITS[event]!);
  }

  private onRtcp(buf: Buffer, from: dgram.RemoteInfo): void {
    if (buf.length < 8 || buf[0]! >> 6 !== 2) return countBadInput('rtp', 'bad_rtcp');
    // Reports only measure the call (loss, round trip), and only the caller's count.
    if (this.closed || from.address !== this.target()?.address) return;
    this.feedback.receive(buf, Date.now());
  }

  /** The frame for this 20 ms slot from the jitter buffer (null while it fills). */
  pop(nowMs: number): JitterFrame | null {
    return this.jitter.pop(nowMs);
  }

  /** Audio that bypassed the jitter buffer (non-20 ms packets), oldest first. */
  takeUnbuffered(): Uint8Array[] {
    if (this.unbuffered.length === 0) return this.unbuffered;
    const out = this.unbuffered;
    this.unbuffered = [];
    return out;
  }

  private target(): RtpPeer | null {
    return this.latched ?? this.remote;
  }

  /**
   * Digits are queued or being sent (events, the gaps between them, pauses):
   * the call holds its audio until they are done, so speech neither overlaps
   * an event nor slips between two keys.
   */
  get sendingDigits(): boolean {
    return this.digit !== null || this.digitGap > 0 || this.digitQueue.length > 0;
  }

  /** Sends one 160-byte μ-law frame now (dropped while a digit is being sent: the event replaces audio). */
  send(ulaw: Uint8Array): void {
    if (this.digit) return;
    const slot = this.nextSlot();
    if (slot < 0) return;
    const pkt = Buffer.allocUnsafe(12 + FRAME);
    if (this.o.codec === 'pcma') ulawToAlawInto(ulaw, pkt.subarray(12));
    else pkt.set(ulaw, 12);
    this.emit(pkt, this.o.pt, slot !== this.lastSlot + 1, slot);
    this.lastSlot = slot;
  }

  /** The frame slot for a packet sent now, or -1 when we may not send. */
  private nextSlot(): number {
    if (this.closed || !this.sending || !this.target()) return -1;
    // The timestamp follows the sender's clock: a pause in speech advances it
    // (RFC 3550 §5.1), and a new talkspurt sets the marker bit.
    return Math.max(Math.round((performance.now() - this.t0) / 20), this.lastSlot + 1);
  }

  private emit(pkt: Buffer, pt: number, marker: boolean, slot: number): void {
    const to = this.target()!;
    pkt[0] = 0x80;
    pkt[1] = (marker ? 0x80 : 0) | pt;
    pkt.writeUInt16BE(this.seq, 2);
    this.seq = (this.seq + 1) & 0xffff;
    pkt.writeUInt32BE((this.tsBase + slot * FRAME) >>> 0, 4);
    pkt.writeUInt32BE(this.ssrc, 8);
    this.o.rtp.send(pkt, to.port, to.address);
    this.packetsOut++;
    this.octetsOut += pkt.length - 12;
    sent.inc();
  }

  /** Queues digits (`w`: a 500 ms pause) to send as RFC 4733 events; false when the peer did not offer telephone-event. */
  sendDigits(digits: string): boolean {
    if (this.o.dtmfPt === null || !/^[0-9*#A-Dw]+$/.test(digits)) return false;
    this.digitQueue.push(...digits);
    return true;
  }

  /**
   * One 20 ms step of digit sending, from the call's clock tick: each event
   * keeps its start timestamp while its duration grows (M=1 on the first
   * packet), lasts DIGIT_FRAMES frames, and ends with three E=1 packets;
   * DIGIT_GAP_FRAMES of ordinary audio separate two digits.
   */
  tickDigits(): void {
    if (!this.digit) {
      if (this.digitGap > 0) return void this.digitGap--;
      const next = this.digitQueue.shift();
      if (next === undefined) return;
      if (next === 'w') return void (this.digitGap = PAUSE_FRAMES - 1);
      const slot = this.nextSlot();
      if (slot < 0) return;
      this.digit = { event: DIGITS.indexOf(next), slot, frames: 0 };
    }
    const d = this.digit;
    d.frames++;
    const end = d.frames >= DIGIT_FRAMES;
    for (let i = 0; i < (end ? 3 : 1); i++) {
      const pkt = Buffer.alloc(16);
      pkt[12] = d.event;
      pkt[13] = (end ? 0x80 : 0) | 10; // volume -10 dBm0
      pkt.writeUInt16BE(d.frames * FRAME, 14);
      if (this.target() && !this.closed) this.emit(pkt, this.o.dtmfPt!, d.frames === 1 && i === 0, d.slot);
    }
    if (end) {
      // Audio resumes at the slot after the event.
      this.lastSlot = d.slot + d.frames - 1;
      this.digit = null;
      this.digitGap = DIGIT_GAP_FRAMES;
    }
  }

  /** RTCP sender report every ~5 s (RFC 3550 §6.4.1), driven by the call's clock tick. */
  maybeSendRtcp(nowMs: number): void {
    if (nowMs - this.lastRtcp < RTCP_EVERY_MS || this.closed) return;
    this.lastRtcp = nowMs;
    const st = this.jitter.stats();
    if (st.played > 0) {
      this.bufferDelaySum += st.currentDelayMs;
      this.bufferDelaySamples++;
    }
    const to = this.target();
    if (!to) return;
    const cname = Buffer.from('aybiza');
    const sdesLen = Math.ceil((4 + 2 + cname.length + 1) / 4) * 4;
    const hasBlock = this.remoteSsrc !== 0 && this.maxSeq >= 0;
    const srLen = 28 + (hasBlock ? 24 : 0);
    const pkt = Buffer.alloc(srLen + 4 + sdesLen);
    pkt[0] = 0x80 | (hasBlock ? 1 : 0);
    pkt[1] = 200;
    pkt.writeUInt16BE(srLen / 4 - 1, 2);
    pkt.writeUInt32BE(this.ssrc, 4);
    const ntp = ntpSeconds(Date.now());
    this.feedback.sentReport(ntp);
    pkt.writeUInt32BE(Math.floor(ntp) >>> 0, 8);
    pkt.writeUInt32BE(Math.floor((ntp % 1) * 2 ** 32) >>> 0, 12);
    pkt.writeUInt32BE((this.tsBase + Math.round((nowMs - this.t0) / 20) * FRAME) >>> 0, 16);
    pkt.writeUInt32BE(this.packetsOut >>> 0, 20);
    pkt.writeUInt32BE(this.octetsOut >>> 0, 24);
    if (hasBlock) {
      pkt.writeUInt32BE(this.remoteSsrc, 28);
      pkt.writeUInt32BE(Math.min(st.lost, 0x7fffff), 32); // fraction 0, cumulative lost
      pkt.writeUInt32BE(this.maxSeq, 36);
    }
    const s = srLen;
    pkt[s] = 0x81;
    pkt[s + 1] = 202;
    pkt.writeUInt16BE(sdesLen / 4, s + 2);
    pkt.writeUInt32BE(this.ssrc, s + 4);
    pkt[s + 8] = 1; // CNAME
    pkt[s + 9] = cname.length;
    cname.copy(pkt, s + 10);
    this.o.rtcp.send(pkt, to.port + 1, to.address);
  }

  stats(): JitterStats & { packetsIn: number; packetsOut: number; unexpectedSource: number; earlyPackets: number } {
    return { ...this.jitter.stats(), packetsIn: this.packetsIn, packetsOut: this.packetsOut, unexpectedSource: this.unexpectedSource, earlyPackets: this.earlyPackets };
  }

  /** The call's E-model estimate from what arrived and what the caller reported; also after close(). */
  quality(): CallQuality {
    return callQuality({
      loss: this.loss.summary(),
      jitter: { ...(this.finalStats ?? this.jitter.stats()) },
      sampledBufferDelayMs: this.bufferDelaySamples > 0 ? this.bufferDelaySum / this.bufferDelaySamples : null,
      rttMs: this.feedback.rttMs,
      remote: this.feedback.remote,
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.finalStats = this.jitter.stats();
    this.o.rtp.close();
    this.o.rtcp.close();
    this.jitter.close();
  }
}
