// The pieces behind item 9 on their own: the failed-authentication limiter
// (per address, IPv6 per /64, bounded table) and the bounded LRU.
import { describe, expect, it } from 'vitest';
import { clientKey, FailureLimiter } from '../../src/api/failure-limiter.js';
import { Lru } from '../../src/store/lru.js';

describe('FailureLimiter', () => {
  it('allows `limit` lookups per window per address, then says how long to wait', () => {
    let now = 1_000_000;
    const l = new FailureLimiter(3, 10_000, 100, () => now);
    expect([l.begin('192.0.2.1'), l.begin('192.0.2.1'), l.begin('192.0.2.1')]).toEqual([0, 0, 0]);
    expect(l.begin('192.0.2.1')).toBe(10_000);
    expect(l.begin('192.0.2.2')).toBe(0);
    now += 4_000;
    expect(l.begin('192.0.2.1')).toBe(6_000);
    now += 6_000;
    expect(l.begin('192.0.2.1')).toBe(0);
  });

  it('gives a valid key its count back', () => {
    const l = new FailureLimiter(1, 10_000, 100, () => 0);
    expect(l.begin('192.0.2.1')).toBe(0);
    l.succeeded('192.0.2.1');
    expect(l.begin('192.0.2.1')).toBe(0);
    expect(l.begin('192.0.2.1')).toBeGreaterThan(0);
  });

  it('counts IPv6 per /64 and IPv4-mapped IPv6 as IPv4', () => {
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe(clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    expect(clientKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(clientKey('0000:0000:0000:0000:0000:ffff:c633:6407')).toBe('198.51.100.7');
    expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
    const l = new FailureLimiter(2, 10_000, 100, () => 0);
    l.begin('2001:db8:1:2::1');
    l.begin('2001:db8:1:2::2');
    expect(l.begin('2001:db8:1:2:ffff::9')).toBeGreaterThan(0);
  });

  it('stays bounded under many addresses', () => {
    const l = new FailureLimiter(20, 10_000, 1000, () => 0);
    for (let i = 0; i < 20_000; i++) l.begin(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(l.size).toBe(1000);
  });
});

describe('Lru', () => {
  it('evicts the least recently used entry, one at a time', () => {
    const c = new Lru<string, number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('d', 4);
    expect(c.get('b')).toBeUndefined();
    expect([c.get('a'), c.get('c'), c.get('d')]).toEqual([1, 3, 4]);
    for (let i = 0; i < 10_000; i++) c.set(`k${i}`, i);
    expect(c.size).toBe(3);
    expect(c.deleteWhere((v) => v % 2 === 0)).toBe(1); // 9997, 9998, 9999 are left
    expect(c.size).toBe(2);
  });
});
