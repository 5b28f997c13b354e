// Which inbound RTP packets the decoder never had, in sequence order, for the
// E-model (src/media/quality.ts): the loss rate Ppl and its burstiness
// BurstR. A packet counts as received only when the jitter buffer took it in
// time; a packet that never came and one that came after its playout slot are
// the same thing to the listener (G.107 counts both in Ppl). RFC 4733 event
// packets share the stream's sequence numbers: they are fed as received.
//
// Packets arrive out of order, so a sequence number is settled only once it is
// WINDOW packets behind the highest one seen (1.28 s at 20 ms: far beyond any
// jitter-buffer delay, so anything later was late anyway). Settled outcomes
// feed a two-state (Gilbert) model: BurstR = 1 / (p + q), with p = P(loss |
// previous received) and q = P(received | previous lost), G.107 §7 (eq. 7-30
// note); random loss gives p + q = 1, BurstR = 1.
import type { PushOutcome } from './jitter-buffer.js';

const WINDOW = 64;
/** A forward jump this large is a restart of the sender's numbering, not loss (as the jitter buffer sees it). */
const MAX_GAP = 1000;

export interface LossSummary {
  /** Sequence numbers settled (expected packets). */
  expected: number;
  /** Of those, missing at playout: never arrived or arrived late. */
  missing: number;
  /** Runs of consecutive missing packets. */
  bursts: number;
  /** missing / expected, percent. */
  lossPercent: number;
  /** 1 / (p + q), at least 1 (1 with no loss). */
  burstR: number;
}

export class LossPattern {
  /** received[seq % WINDOW] for the unsettled window ending at `highest`. */
  private readonly received = new Uint8Array(WINDOW);
  private started = false;
  /** Highest sequence number seen, extended past 16 bits. */
  private highest = 0;
  /** Lowest sequence number not yet settled. */
  private unsettled = 0;
  private expected = 0;
  private missing = 0;
  private bursts = 0;
  private lastReceived = true;

  /** One packet handed to the jitter buffer, with the buffer's verdict. */
  packet(seq: number, outcome: PushOutcome): void {
    if (!this.started || outcome === 'restarted') return this.restart(seq);
    const inTime = outcome === 'accepted';
    const ahead = (seq - this.highest) & 0xffff;
    if (ahead === 0) return;
    if (ahead < 0x8000) {
      if (ahead >= MAX_GAP) return this.restart(seq);
      const next = this.highest + ahead;
      // Sequence numbers leaving the window are settled; the new ones start as missing.
      for (let s = this.highest + 1; s <= next; s++) {
        if (s - WINDOW >= this.unsettled) this.settle(s - WINDOW);
        this.received[s % WINDOW] = 0;
      }
      this.highest = next;
      this.received[next % WINDOW] = inTime ? 1 : 0;
      return;
    }
    // Behind the highest: a reordered packet fills its hole if still unsettled and in time.
    const ext = this.highest - (0x10000 - ahead);
    if (ext >= this.unsettled && inTime) this.received[ext % WINDOW] = 1;
  }

  /** Counts so far, the unsettled window included (it is settled now: call at the end). */
  summary(): LossSummary {
    if (this.started) while (this.unsettled <= this.highest) this.settle(this.unsettled);
    const { expected, missing, bursts } = this;
    const found = expected - missing;
    const p = found > 0 ? bursts / found : 0;
    const q = missing > 0 ? bursts / missing : 1;
    return {
      expected,
      missing,
      bursts,
      lossPercent: expected > 0 ? (100 * missing) / expected : 0,
      burstR: missing === 0 || found === 0 ? 1 : Math.max(1, 1 / (p + q)),
    };
  }

  private restart(seq: number): void {
    if (this.started) while (this.unsettled <= this.highest) this.settle(this.unsettled);
    this.started = true;
    // Extended numbers keep seq in their low 16 bits; one cycle up so `ext - WINDOW` stays positive.
    this.highest = 0x10000 + seq;
    this.unsettled = this.highest;
    this.received[this.highest % WINDOW] = 1;
    this.lastReceived = true;
  }

  private settle(ext: number): void {
    const got = this.received[ext % WINDOW] === 1;
    this.expected++;
    if (!got) {
      this.missing++;
      if (this.lastReceived) this.bursts++;
    }
    this.lastReceived = got;
    this.unsettled = ext + 1;
  }
}
