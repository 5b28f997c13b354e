// A per-source budget for SIP, before any parsing (in the spirit of
// Kamailio's `pike`). sip.js's parser costs ≈ 2–2.5 µs per header byte, so
// one source sending a few hundred ordinary messages a second would take the
// thread that also admits every call (and, with WORKERS=1, paces every
// call's audio). Each source address has a token bucket of bytes
// (SIP_SOURCE_LIMIT_KBPS, two seconds of it as burst); a message that does
// not fit is dropped unparsed and counted (bad input `sip`/`source_rate_limited`),
// as a lost datagram would be: the peer's transaction retransmits.
//
// Sources inside some trunk's allowedCidrs (the carriers and proxies an
// operator configured) are not limited: they are looked up when first seen
// and again every 30 s, and until the answer arrives they spend from the
// bucket like anyone else (its burst covers that). The table of sources is
// bounded (least recently seen evicted first), so spoofed addresses cannot
// grow it; an evicted source comes back with a full bucket.
//
// Many sources together are budgeted too: every source outside the trunks'
// allowedCidrs spends from one more bucket shared by all of them
// (SIP_UNTRUSTED_LIMIT_KBPS, two seconds of burst), so a flood spread over
// thousands of addresses (each within its own budget) still cannot take more
// than that much parsing a second. What does not fit there is dropped
// unparsed and counted as `sip`/`untrusted_rate_limited`; configured trunks'
// addresses keep their service whatever the strangers send.
export interface SourceLimiterOptions {
  /** Each source outside the trunks' allowedCidrs (0: no per-source limit). */
  bytesPerSecond: number;
  /** All sources outside the trunks' allowedCidrs together (0 or absent: no shared limit). */
  totalBytesPerSecond?: number;
  /** Whether an address belongs to a configured trunk (never limited). */
  trusted: (address: string) => Promise<boolean>;
  /** Default 10,000 sources. */
  maxSources?: number;
  now?: () => number;
}

interface Entry {
  tokens: number;
  at: number;
  trusted: boolean;
  /** When the trust answer was asked for (null: never); asked again TRUST_TTL_MS later. */
  askedAt: number | null;
}

const BURST_SECONDS = 2;
const TRUST_TTL_MS = 30_000;

/** Why a message was refused (the `reason` it is counted under), or '' when it may be handled. */
export type Refusal = '' | 'source_rate_limited' | 'untrusted_rate_limited';

export class SourceLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly burst: number;
  private readonly max: number;
  private readonly now: () => number;
  /** The shared bucket of every untrusted source. */
  private readonly totalRate: number;
  private readonly totalBurst: number;
  private total: number;
  private totalAt: number;

  constructor(private readonly o: SourceLimiterOptions) {
    this.burst = o.bytesPerSecond * BURST_SECONDS;
    this.totalRate = o.totalBytesPerSecond ?? 0;
    this.totalBurst = this.total = this.totalRate * BURST_SECONDS;
    this.max = o.maxSources ?? 10_000;
    this.now = o.now ?? (() => performance.now());
    this.totalAt = this.now();
  }

  /** Sources currently tracked (bounded by maxSources). */
  get size(): number {
    return this.entries.size;
  }

  /** Whether a message of `bytes` from `address` may be handled now (spends from its budget when it may). */
  allow(address: string, bytes: number): boolean {
    return this.admit(address, bytes) === '';
  }

  /** As allow, saying which budget refused it. */
  admit(address: string, bytes: number): Refusal {
    const now = this.now();
    let e = this.entries.get(address);
    if (e) {
      // Most recently seen last: the first key is the one to evict.
      this.entries.delete(address);
      e.tokens = Math.min(this.burst, e.tokens + ((now - e.at) / 1000) * this.o.bytesPerSecond);
      e.at = now;
    } else {
      e = { tokens: this.burst, at: now, trusted: false, askedAt: null };
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(address, e);
    if (e.askedAt === null || now - e.askedAt > TRUST_TTL_MS) this.ask(address, e, now);
    if (e.trusted) return '';
    const perSource = this.o.bytesPerSecond > 0;
    if (perSource && e.tokens < bytes) return 'source_rate_limited';
    if (this.totalRate > 0) {
      this.total = Math.min(this.totalBurst, this.total + ((now - this.totalAt) / 1000) * this.totalRate);
      this.totalAt = now;
      if (this.total < bytes) return 'untrusted_rate_limited';
      this.total -= bytes;
    }
    if (perSource) e.tokens -= bytes;
    return '';
  }

  private ask(address: string, e: Entry, now: number): void {
    e.askedAt = now;
    this.o.trusted(address).then(
      (yes) => void (e.trusted = yes),
      () => void (e.trusted = false),
    );
  }
}
