// The SSRF address classifier behind HTTP tools: every spelling of a refused
// address is recognised, and the policy flag lifts only loopback/private.
import { describe, expect, it } from 'vitest';
import {
  AddressRefusedError, checkToolUrl, classifyAddress, classifyHost, parseIPv4, refusal, resolveChecked, toolUrlProblem,
  type HostLookup,
} from '../../src/pipeline/address-policy.js';

const STRICT = { allowPrivateNetworks: false };
const DEV = { allowPrivateNetworks: true };

describe('address classifier', () => {
  it('parses IPv4 in every inet_aton spelling', () => {
    const lo = 0x7f000001;
    for (const s of ['127.0.0.1', '2130706433', '0x7f000001', '0X7F000001', '0177.0.0.1', '0177.0000.0000.0001', '127.1', '127.0.1', '0x7f.1', '0x7f.0.0.0x1', '127.0.0.1.']) {
      expect(parseIPv4(s), s).toBe(lo);
    }
    expect(parseIPv4('0')).toBe(0);
    expect(parseIPv4('256.0.0.1')).toBeNull();
    expect(parseIPv4('1.2.3.4.5')).toBeNull();
    expect(parseIPv4('4294967296')).toBeNull();
    expect(parseIPv4('08.0.0.1')).toBeNull(); // not octal, not decimal
    expect(parseIPv4('example.com')).toBeNull();
  });

  it('classifies loopback in every spelling, IPv4 and IPv6', () => {
    for (const s of [
      '127.0.0.1', '127.255.255.254', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '127.0.0.1.',
      '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '[::ffff:7f00:1]', '::ffff:7f00:0001', '::127.0.0.1', '::ffff:0:127.0.0.1',
      '64:ff9b::127.0.0.1', '2002:7f00:1::',
    ]) expect(classifyAddress(s), s).toBe('loopback');
  });

  it('classifies private ranges: RFC 1918, CGNAT, ULA, site-local, local NAT64', () => {
    for (const s of ['10.0.0.1', '10.255.255.255', '167772161', '012.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', '0xc0a80101',
      '100.64.0.1', '100.127.255.255', '::ffff:10.0.0.1', '::ffff:192.168.0.1', 'fc00::1', 'fd12:3456::1', 'fec0::1', '64:ff9b:1::1', '2002:c0a8:101::1']) {
      expect(classifyAddress(s), s).toBe('private');
    }
    expect(classifyAddress('172.32.0.1')).toBe('public');
    expect(classifyAddress('100.128.0.1')).toBe('public');
    expect(classifyAddress('11.0.0.1')).toBe('public');
  });

  it('classifies link-local and cloud metadata in every spelling', () => {
    for (const s of ['169.254.169.254', '2852039166', '0xa9fea9fe', '0251.0376.0251.0376', '169.254.43518', '::ffff:169.254.169.254', '[::ffff:a9fe:a9fe]', 'fd00:ec2::254', 'fd00:ec2::123', '100.100.100.200']) {
      expect(classifyAddress(s), s).toBe('metadata');
    }
    for (const s of ['169.254.0.1', '169.254.170.2', 'fe80::1', 'fe80::1%eth0', 'febf::1', '::ffff:169.254.1.1']) expect(classifyAddress(s), s).toBe('link_local');
  });

  it('classifies multicast, unspecified, broadcast and reserved ranges', () => {
    for (const s of ['224.0.0.1', '239.255.255.250', 'ff02::1', 'ff05::1:3', '::ffff:224.0.0.251']) expect(classifyAddress(s), s).toBe('multicast');
    for (const s of ['0.0.0.0', '0', '::', '[::]', '::ffff:0.0.0.0']) expect(classifyAddress(s), s).toBe('unspecified');
    expect(classifyAddress('255.255.255.255')).toBe('broadcast');
    expect(classifyAddress('4294967295')).toBe('broadcast');
    for (const s of ['0.1.2.3', '192.0.0.8', '192.0.2.1', '198.18.0.1', '198.51.100.7', '203.0.113.9', '240.0.0.1', '192.88.99.1',
      '2001:db8::1', '2001::1', '100::1', '3fff::1', '5f00::1', '4000::1', '::2:3:4:5:6']) {
      expect(classifyAddress(s), s).toBe('reserved');
    }
  });

  it('classifies public addresses as public, including NAT64 and 6to4 of public IPv4', () => {
    for (const s of ['8.8.8.8', '1.1.1.1', '134744072', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1']) {
      expect(classifyAddress(s), s).toBe('public');
    }
  });

  it('treats localhost names as loopback, with or without the trailing dot', () => {
    for (const h of ['localhost', 'LOCALHOST', 'localhost.', 'api.localhost', 'a.b.localhost.']) expect(classifyHost(h), h).toBe('loopback');
    expect(classifyHost('localhost.example.com')).toBeNull();
    expect(classifyHost('example.com')).toBeNull();
  });

  it('lifts only loopback and private with TOOLS_ALLOW_PRIVATE_NETWORKS, never metadata or link-local', () => {
    expect(refusal('loopback', STRICT)).toBe('loopback');
    expect(refusal('private', STRICT)).toBe('private');
    expect(refusal('loopback', DEV)).toBeNull();
    expect(refusal('private', DEV)).toBeNull();
    for (const c of ['link_local', 'metadata', 'multicast', 'unspecified', 'broadcast', 'reserved'] as const) expect(refusal(c, DEV)).toBe(c);
    expect(refusal('public', STRICT)).toBeNull();
  });
});

describe('tool URL check', () => {
  it('refuses literal refused hosts as the WHATWG parser normalises them', () => {
    const cases: [string, string][] = [
      ['http://2130706433/', 'refers to a loopback address'],
      ['http://0x7f000001/x', 'refers to a loopback address'],
      ['http://0177.0.0.1/', 'refers to a loopback address'],
      ['http://127.1:8080/', 'refers to a loopback address'],
      ['http://[::ffff:127.0.0.1]/', 'refers to a loopback address'],
      ['http://[::1]:9000/', 'refers to a loopback address'],
      ['http://localhost./', 'refers to a loopback address'],
      ['https://Admin.LocalHost/', 'refers to a loopback address'],
      ['http://169.254.169.254/latest/meta-data/', 'refers to a cloud metadata address'],
      ['http://[fd00:ec2::254]/latest/meta-data/', 'refers to a cloud metadata address'],
      ['http://10.1.2.3/', 'refers to a private network address'],
      ['http://0.0.0.0:8080/', 'refers to an unspecified address'],
      ['http://[fe80::1]/', 'refers to a link-local address'],
    ];
    for (const [url, message] of cases) expect(toolUrlProblem(url, STRICT)?.message, url).toBe(message);
    expect(toolUrlProblem('http://127.0.0.1:8080/', DEV)).toBeNull();
    expect(toolUrlProblem('http://169.254.169.254/', DEV)?.reason).toBe('metadata');
    expect(toolUrlProblem('http://[::ffff:a9fe:a9fe]/', DEV)?.reason).toBe('metadata');
  });

  it('accepts only http/https without credentials', () => {
    expect(toolUrlProblem('https://api.example.com/orders', STRICT)).toBeNull();
    expect(toolUrlProblem('ftp://api.example.com/', STRICT)?.reason).toBe('url_scheme');
    expect(toolUrlProblem('file:///etc/passwd', STRICT)?.reason).toBe('url_scheme');
    expect(toolUrlProblem('https://user:pw@api.example.com/', STRICT)?.reason).toBe('url_credentials');
    expect(toolUrlProblem('not a url', STRICT)?.reason).toBe('url_invalid');
    expect(() => checkToolUrl('gopher://x/', STRICT)).toThrow(AddressRefusedError);
  });
});

describe('resolution', () => {
  const lookupTo = (...addresses: string[]): HostLookup => async () => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('checks every address a name resolves to and returns the checked one', async () => {
    await expect(resolveChecked(new URL('http://tool.example.com/'), STRICT, lookupTo('93.184.216.34'))).resolves.toEqual({ address: '93.184.216.34', family: 4 });
    await expect(resolveChecked(new URL('http://tool.example.com/'), STRICT, lookupTo('10.0.0.1'))).rejects.toMatchObject({ reason: 'private' });
    await expect(resolveChecked(new URL('http://tool.example.com/'), STRICT, lookupTo('93.184.216.34', '127.0.0.1'))).rejects.toMatchObject({ reason: 'loopback' });
    await expect(resolveChecked(new URL('http://tool.example.com/'), DEV, lookupTo('::ffff:169.254.169.254'))).rejects.toMatchObject({ reason: 'metadata' });
    await expect(resolveChecked(new URL('http://tool.example.com/'), DEV, lookupTo('10.0.0.1'))).resolves.toEqual({ address: '10.0.0.1', family: 4 });
    await expect(resolveChecked(new URL('http://nowhere.example/'), STRICT, async () => { throw new Error('ENOTFOUND'); })).rejects.toMatchObject({ reason: 'dns_failed' });
  });

  it('does not resolve literal addresses', async () => {
    const never: HostLookup = async () => { throw new Error('must not be called'); };
    await expect(resolveChecked(new URL('http://8.8.8.8/'), STRICT, never)).resolves.toEqual({ address: '8.8.8.8', family: 4 });
    await expect(resolveChecked(new URL('http://[2606:4700:4700::1111]/'), STRICT, never)).resolves.toEqual({ address: '2606:4700:4700::1111', family: 6 });
    await expect(resolveChecked(new URL('http://127.0.0.1/'), STRICT, never)).rejects.toMatchObject({ reason: 'loopback' });
  });
});
