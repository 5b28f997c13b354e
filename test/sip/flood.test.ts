// The per-source SIP budget (sip/flood.ts, SIP_SOURCE_LIMIT_KBPS): a source
// outside every trunk's allowedCidrs that sends more than its bytes per second
// has the excess dropped unparsed and counted, while a configured trunk's
// address is never limited; the table of sources stays bounded. All
// untrusted sources together share one more budget (SIP_UNTRUSTED_LIMIT_KBPS).
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import { SourceLimiter } from '../../sip/flood.js';
import { addTrunk, startSipApp, type SipTestApp } from './helpers.js';

async function rateLimited(reason = 'source_rate_limited'): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_bad_input_total')?.get())?.values ?? [];
  return m.filter((v) => v.labels.source === 'sip' && v.labels.reason === reason).reduce((a, v) => a + v.value, 0);
}

describe('SourceLimiter', () => {
  it('allows two seconds of budget at once, then refills at the rate', async () => {
    let now = 0;
    const l = new SourceLimiter({ bytesPerSecond: 1000, trusted: async () => false, now: () => now });
    let allowed = 0;
    for (let i = 0; i < 50; i++) if (l.allow('192.0.2.1', 100)) allowed++;
    expect(allowed).toBe(20);
    now = 500; // half a second: 500 bytes back
    allowed = 0;
    for (let i = 0; i < 50; i++) if (l.allow('192.0.2.1', 100)) allowed++;
    expect(allowed).toBe(5);
    // Another source has its own budget.
    expect(l.allow('192.0.2.2', 100)).toBe(true);
    // A message larger than the whole burst never fits.
    expect(l.allow('192.0.2.3', 2001)).toBe(false);
  });

  it('never limits an address a trunk allows, once the lookup has answered (and asks again after 30 s)', async () => {
    let now = 0;
    const asked: string[] = [];
    let trust = true;
    const l = new SourceLimiter({ bytesPerSecond: 100, trusted: async (a) => (asked.push(a), trust), now: () => now });
    expect(l.allow('198.51.100.7', 150)).toBe(true); // from the burst while the answer is on its way
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 100; i++) expect(l.allow('198.51.100.7', 150)).toBe(true);
    expect(asked).toEqual(['198.51.100.7']);
    trust = false; // the trunk was deleted
    now = 31_000;
    l.allow('198.51.100.7', 1);
    await new Promise((r) => setImmediate(r));
    expect(asked).toHaveLength(2);
    let allowed = 0;
    for (let i = 0; i < 10; i++) if (l.allow('198.51.100.7', 100)) allowed++;
    expect(allowed).toBeLessThan(10);
  });

  it('shares one budget among all untrusted sources, which trusted ones never spend', async () => {
    let now = 0;
    const l = new SourceLimiter({
      bytesPerSecond: 1000,
      totalBytesPerSecond: 1500,
      trusted: async (a) => a === '198.51.100.1',
      now: () => now,
    });
    await new Promise((r) => setImmediate(r, l.allow('198.51.100.1', 1))); // the trunk's answer arrives
    const sent = (address: string, n: number) => Array.from({ length: n }, () => l.admit(address, 100));
    // 3,000 bytes at once for all strangers together (minus the 1 byte above), each still within its 2,000.
    const a = sent('192.0.2.1', 20);
    expect(a.filter((r) => r === '')).toHaveLength(20);
    const b = sent('192.0.2.2', 20);
    expect(b.filter((r) => r === '')).toHaveLength(9);
    expect(b.filter((r) => r === 'untrusted_rate_limited')).toHaveLength(11);
    // A refusal by the shared budget spends nothing of the source's own.
    expect(l.admit('192.0.2.3', 100)).toBe('untrusted_rate_limited');
    // The trunk's address is not limited by either.
    expect(sent('198.51.100.1', 100).every((r) => r === '')).toBe(true);
    // Over its own budget a source is refused as before, and that spends nothing shared.
    expect(sent('192.0.2.1', 1)).toEqual(['source_rate_limited']);
    now = 1000; // 1,500 shared bytes back
    expect(sent('192.0.2.2', 20).filter((r) => r === '')).toHaveLength(15);
  });

  it('applies either budget alone when the other is off (0)', () => {
    const sharedOnly = new SourceLimiter({ bytesPerSecond: 0, totalBytesPerSecond: 500, trusted: async () => false, now: () => 0 });
    expect(Array.from({ length: 12 }, (_, i) => sharedOnly.admit(`192.0.2.${i}`, 100)).filter((r) => r === '')).toHaveLength(10);
    const perSourceOnly = new SourceLimiter({ bytesPerSecond: 500, totalBytesPerSecond: 0, trusted: async () => false, now: () => 0 });
    expect(Array.from({ length: 12 }, (_, i) => perSourceOnly.admit(`192.0.2.${i}`, 100)).every((r) => r === '')).toBe(true);
    expect(Array.from({ length: 12 }, () => perSourceOnly.admit('192.0.2.99', 100)).filter((r) => r === '')).toHaveLength(10);
  });

  it('keeps at most maxSources addresses, evicting the least recently seen', () => {
    const l = new SourceLimiter({ bytesPerSecond: 100, trusted: async () => false, maxSources: 3, now: () => 0 });
    for (let i = 0; i < 50; i++) l.allow(`203.0.113.${i}`, 10);
    expect(l.size).toBe(3);
  });
});

describe('SIP per-source budget on the server', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    // 2 KiB/s, 4 KiB at once per source; 3 KiB/s, 6 KiB at once for all strangers together.
    t = await startSipApp({ SIP_SOURCE_LIMIT_KBPS: '2', SIP_UNTRUSTED_LIMIT_KBPS: '3' });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** Sends n OPTIONS from `address` as fast as it can; resolves with how many were answered. */
  async function options(address: string, n: number): Promise<number> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    const port = s.address().port;
    let answered = 0;
    s.on('message', () => answered++);
    for (let i = 0; i < n; i++) {
      const branch = `z9hG4bK-flood-${address}-${i}-${Math.random().toString(36).slice(2)}`;
      const text = [
        `OPTIONS sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`,
        `Via: SIP/2.0/UDP ${address}:${port};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: <sip:flood@${address}>;tag=f${i}`,
        `To: <sip:${t.number}@127.0.0.1>`,
        `Call-ID: flood-${i}-${branch}@${address}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      s.send(text, t.sipPort, '127.0.0.1');
    }
    await new Promise((r) => setTimeout(r, 1500));
    s.close();
    return answered;
  }

  it('drops and counts what an unknown source sends beyond its budget; a trunk\'s address is answered in full', async () => {
    const before = await rateLimited();
    // ~340 bytes each: 100 of them is ~8 times the 4 KiB burst.
    const stranger = await options('127.0.0.2', 100);
    expect(stranger).toBeGreaterThan(0);
    expect(stranger).toBeLessThan(30);
    expect((await rateLimited()) - before).toBeGreaterThanOrEqual(100 - stranger - 10);
    // The trunk's address, once its first message has been looked up, gets every answer.
    expect(await options('127.0.0.1', 1)).toBe(1);
    expect(await options('127.0.0.1', 100)).toBe(100);
  });

  it('drops and counts what strangers send together beyond the shared budget; the trunk is still answered', async () => {
    await new Promise((r) => setTimeout(r, 2500)); // the shared bucket refills
    const before = await rateLimited('untrusted_rate_limited');
    // Three strangers at once, 40 messages each (~13.6 KB, within no one's 4 KiB but their own first 12):
    // together they may have ~6 KiB parsed, about 18 messages.
    const answered = await Promise.all(['127.0.0.3', '127.0.0.4', '127.0.0.5'].map((a) => options(a, 40)));
    const total = answered.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThan(30);
    expect((await rateLimited('untrusted_rate_limited')) - before).toBeGreaterThan(0);
    expect(await options('127.0.0.1', 50)).toBe(50);
  });
});
