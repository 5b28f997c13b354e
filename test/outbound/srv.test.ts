// SIP trunk hosts resolved by SRV (RFC 3263 §4.2, RFC 2782): the order of
// targets, when SRV is not consulted, and an outbound call whose trunk names
// only a domain reaching a SIPp callee on the port its SRV record gives,
// through a DNS server of the test's own (real DNS wire format).
import dns from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/app.js';
import { startDnsServer, type DnsZone } from '../helpers/dns-server.js';
import { freeSipPort, RtpPeer, startSipApp, type SipTestApp } from '../sip/helpers.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { SipCarrier } from '../../src/outbound/sip.js';
import { orderSrv, sipHops, srvName } from '../../src/outbound/srv.js';
import { sippCallee, sippMessages } from './sip-uas.js';

const rec = (priority: number, weight: number, name: string, port = 5060) => ({ priority, weight, name, port });

describe('SRV order and use (unit)', () => {
  it('names per transport', () => {
    expect(srvName('carrier.example', 'udp')).toBe('_sip._udp.carrier.example');
    expect(srvName('carrier.example', 'tcp')).toBe('_sip._tcp.carrier.example');
    expect(srvName('carrier.example', 'tls')).toBe('_sips._tcp.carrier.example');
  });

  it('by priority, then weighted: a weight-90 record comes first about nine times in ten', () => {
    const records = [rec(20, 0, 'backup'), rec(10, 10, 'b'), rec(10, 90, 'a')];
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    let aFirst = 0;
    for (let i = 0; i < 2000; i++) {
      const order = orderSrv(records, random).map((r) => r.name);
      expect(order[2]).toBe('backup');
      if (order[0] === 'a') aFirst++;
    }
    expect(aFirst / 2000).toBeGreaterThan(0.85);
    expect(aFirst / 2000).toBeLessThan(0.95);
  });

  it('no SRV with an explicit port or an IP literal; no records → the host itself; "." → no service', async () => {
    const never = async () => {
      throw new Error('not asked');
    };
    expect(await sipHops('carrier.example', 5070, true, 'udp', never)).toEqual([{ host: 'carrier.example', port: 5070 }]);
    expect(await sipHops('192.0.2.1', 5060, false, 'udp', never)).toEqual([{ host: '192.0.2.1', port: 5060 }]);
    const nodata = async () => {
      throw Object.assign(new Error('queryNoData'), { code: 'ENODATA' });
    };
    expect(await sipHops('carrier.example', 5061, false, 'tls', nodata)).toEqual([{ host: 'carrier.example', port: 5061 }]);
    await expect(sipHops('carrier.example', 5060, false, 'udp', async () => [rec(0, 0, '.', 0)])).rejects.toThrow(/offers no SIP/);
    // Hostile answers: bad names and ports are skipped, at most 8 targets.
    const many = Array.from({ length: 20 }, (_, i) => rec(i, 1, `edge${i}.carrier.example`, 5000 + i));
    const hops = await sipHops('carrier.example', 5060, false, 'udp', async () => [rec(0, 5, 'bad name!', 5060), rec(0, 5, 'ok.example', 0), ...many]);
    expect(hops).toHaveLength(8);
    expect(hops[0]).toEqual({ host: 'edge0.carrier.example', port: 5000 });
  });
});

describe('an outbound call through a trunk resolved by SRV', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true' });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /**
   * A call through a trunk `sip:<domain>` over `transport`, answered by a SIPp callee that hangs up, with SRV and
   * A answers from a DNS server of the test's own (`zone(calleePort)`); the SIPp result, the final status and the
   * DNS questions asked.
   */
  async function callBySrv(domain: string, transport: 'udp' | 'tcp', zone: (calleePort: number) => DnsZone) {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const callee = await sippCallee('uas_callee_hangs_up.xml', { rtpPort, tcp: transport === 'tcp', args: ['-d', '1000'] });
    const server = await startDnsServer(zone(callee.port));
    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.port}`]);
    const dialer = OutboundDialer.for(t.app.store);
    dialer.register(new SipCarrier({
      sip: t.app.sip!, store: t.app.store, network: { allowPrivateNetworks: true },
      resolveSrv: (name) => resolver.resolveSrv(name),
      lookup: async (host) => (await resolver.resolve4(host)).map((address) => ({ address, family: 4 })),
    }));
    const trunkId = (await t.app.store.trunks.create(ADMIN, t.tenantId, {
      name: `by srv ${transport}`, allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:${domain}`, transport },
    })).id;
    const call = await dialer.dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId });
    const final = await dialer.whenFinal(call.id, 30_000);
    peer.close();
    server.close();
    return { r: await callee.done, final, queries: server.queries };
  }

  it('sip:carrier.test (no port): _sip._udp.carrier.test gives the callee\'s port; the Request-URI keeps the domain', async () => {
    const { r, final, queries } = await callBySrv('carrier.test', 'udp', (port) => ({
      // The preferred target does not resolve to an allowed address (link-local: never a carrier); the next one is the callee.
      srv: { '_sip._udp.carrier.test': [{ priority: 10, weight: 0, port, target: 'edge2.carrier.test' }, { priority: 5, weight: 0, port: 5060, target: 'edge1.carrier.test' }] },
      a: { 'edge1.carrier.test': ['169.254.169.254'], 'edge2.carrier.test': ['127.0.0.1'] },
    }));
    expect(r.code, r.errors).toBe(0);
    expect(final.endReason).toBe('callee hung up');
    expect(queries).toEqual(expect.arrayContaining(['SRV _sip._udp.carrier.test', 'A edge1.carrier.test', 'A edge2.carrier.test']));
    expect(sippMessages(r)).toMatch(/^INVITE sip:\+14155550123@carrier\.test SIP\/2\.0/m);
  });

  it('over TCP, a target that refuses the connection is passed over for the next SRV target', async () => {
    const closed = await freeSipPort();
    const { r, final, queries } = await callBySrv('carrier2.test', 'tcp', (port) => ({
      srv: { '_sip._tcp.carrier2.test': [{ priority: 1, weight: 0, port: closed, target: 'down.carrier2.test' }, { priority: 2, weight: 0, port, target: 'up.carrier2.test' }] },
      a: { 'down.carrier2.test': ['127.0.0.1'], 'up.carrier2.test': ['127.0.0.1'] },
    }));
    expect(r.code, r.errors).toBe(0);
    expect(final.endReason).toBe('callee hung up');
    expect(queries).toEqual(expect.arrayContaining(['SRV _sip._tcp.carrier2.test', 'A down.carrier2.test', 'A up.carrier2.test']));
  });
});
