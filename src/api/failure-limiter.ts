// Failed authentication, limited per source address before any database
// lookup: an address gets `limit` lookups of unknown keys per window (a
// lookup counts while it is in flight, so a concurrent flood is held too; a
// key that turns out valid gives its count back). IPv6 clients are counted
// per /64, the block one subscriber usually holds. The table is bounded:
// when full, the oldest address is forgotten.
import net from 'node:net';

export class FailureLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit = 20,
    readonly windowMs = 10_000,
    readonly maxAddresses = 50_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.windows.size;
  }

  /** 0 when the address may look a key up now (and that lookup is counted); otherwise ms until it may. */
  begin(address: string): number {
    const key = clientKey(address);
    const t = this.now();
    let w = this.windows.get(key);
    if (w && t - w.start >= this.windowMs) {
      this.windows.delete(key);
      w = undefined;
    }
    if (!w) {
      w = { start: t, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > this.maxAddresses) this.windows.delete(this.windows.keys().next().value as string);
    }
    if (w.count >= this.limit) return Math.max(1, w.start + this.windowMs - t);
    w.count++;
    return 0;
  }

  /** The key was valid: its lookup does not count against the address. */
  succeeded(address: string): void {
    const w = this.windows.get(clientKey(address));
    if (w && w.count > 0) w.count--;
  }
}

/** The unit an address is counted in: itself for IPv4, its /64 for IPv6 (IPv4-mapped IPv6 as IPv4). */
export function clientKey(address: string): string {
  if (net.isIPv4(address) || !address.includes(':')) return address;
  const groups = expandV6(address);
  if (!groups) return address;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

function expandV6(address: string): number[] | null {
  let a = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1].split('.').map(Number);
    a = a.slice(0, -v4[1].length) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail, extra] = a.split('::');
  if (extra !== undefined) return null;
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  if (fill < 0) return null;
  const all = [...h, ...Array(fill).fill('0'), ...t];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return all.map((g) => parseInt(g, 16));
}
