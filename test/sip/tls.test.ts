// SIP over TLS (SIP_TLS_PORT): a call over TLS from a raw TLS caller (the
// SIPp on this machine is built without TLS), answers on the caller's
// connection with TLS in Via and Contact; a handshake that fails is counted
// and leaves the listener serving; new connections are rate-limited per
// address; outbound calls over a TLS trunk check the trunk's certificate.
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, scrapeMetric } from '../helpers/app.js';
import { tempDir } from '../helpers/spawn-server.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { addTrunk, freeSipPort, selfSigned, startSipApp, waitFor, type SipTestApp } from './helpers.js';
import { RawSip, RtpEnd } from './raw-client.js';

const badInput = (t: SipTestApp, reason: string) => scrapeMetric(t.base, 'aybiza_bad_input_total', { source: 'sip', reason });

describe('SIP over TLS', () => {
  let t: SipTestApp;
  let ours: { cert: string; key: string };
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('sip-tls-');
    ours = selfSigned(dir, 'localhost');
    // The callee of the outbound tests presents a certificate for "carrier.test"; SIP_TLS_CA trusts it.
    const carrier = selfSigned(dir, 'carrier.test');
    t = await startSipApp({
      SIP_TLS_PORT: String(await freeSipPort()), SIP_TLS_CERT: ours.cert, SIP_TLS_KEY: ours.key, SIP_TLS_CA: carrier.cert,
      TOOLS_ALLOW_PRIVATE_NETWORKS: 'true',
    });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const caller = async () => {
    const c = new RawSip({ proto: 'tls', sipPort: t.app.sip!.tlsPort, number: t.number, ca: fs.readFileSync(ours.cert) });
    await c.open();
    return c;
  };

  it('a call over TLS: 200 on the same connection naming TLS, RTP both ways, BYE → 200', async () => {
    expect(t.app.sip!.tlsPort).toBeGreaterThan(0);
    const rtp = new RtpEnd();
    const c = await caller();
    const { status, serverRtpPort } = await c.call(await rtp.open());
    expect(status).toBe(200);
    const ok = c.answers('1 INVITE').find((m) => m.startsWith('SIP/2.0 200'))!;
    expect(ok).toMatch(/^Via: SIP\/2\.0\/TLS /m);
    expect(ok).toMatch(new RegExp(`^Contact: <sip:aybiza@127\\.0\\.0\\.1:${t.app.sip!.tlsPort};transport=tls>`, 'm'));
    await waitFor(() => rtp.received > 20, 15_000, 'greeting RTP');
    rtp.send(serverRtpPort, 20);
    c.send('BYE', 2);
    expect((await c.final('2 BYE')).slice(0, 14)).toBe('SIP/2.0 200 OK');
    c.close();
    rtp.close();
  });

  it('a failed handshake is counted and closes only that connection; the listener keeps serving', async () => {
    const before = await badInput(t, 'tls_handshake_failed');
    const plain = net.connect(t.app.sip!.tlsPort, '127.0.0.1');
    plain.on('error', () => {});
    plain.write('OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n');
    await new Promise<void>((r) => plain.once('close', () => r()));
    // A client that does not trust our certificate ends its handshake too.
    const untrusting = tls.connect({ port: t.app.sip!.tlsPort, host: '127.0.0.1', servername: 'localhost' });
    await new Promise<void>((r) => untrusting.once('error', () => r()));
    let after = before;
    await waitFor(() => after >= before + 2 || (void badInput(t, 'tls_handshake_failed').then((n) => (after = n)), false), 10_000, 'the failures counted');
    const c = await caller();
    c.send('OPTIONS', 1);
    expect((await c.final('1 OPTIONS')).slice(0, 14)).toBe('SIP/2.0 200 OK');
    c.close();
  });

  it('an address opening connections faster than a carrier would is refused before the handshake', async () => {
    const before = await badInput(t, 'tls_connection_rate_limited');
    const socks = Array.from({ length: 40 }, () => {
      const s = net.connect(t.app.sip!.tlsPort, '127.0.0.1');
      s.on('error', () => {});
      return s;
    });
    let after = before;
    await waitFor(() => after >= before + 10 || (void badInput(t, 'tls_connection_rate_limited').then((n) => (after = n)), false), 10_000, 'refusals counted');
    for (const s of socks) s.destroy();
  });

  /** A TLS callee speaking raw SIP: 200 with SDP to the INVITE, 200 to the BYE. */
  async function tlsCallee(name: string): Promise<{ port: number; got: string[]; close(): void }> {
    const { cert, key } = selfSigned(dir, name);
    const got: string[] = [];
    const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (c) => {
      let buf = '';
      c.on('error', () => {});
      c.on('data', (d) => {
        buf += d.toString();
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/^content-length:\s*(\d+)/im.exec(buf.slice(0, end))?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const msg = buf.slice(0, end + 4 + len);
          buf = buf.slice(end + 4 + len);
          got.push(msg);
          const method = /^(\w+) /.exec(msg)?.[1];
          if (method !== 'INVITE' && method !== 'BYE') continue;
          const head = (h: string) => msg.split('\r\n').filter((l) => l.toLowerCase().startsWith(h.toLowerCase() + ':'));
          const to = head('To')[0] + (method === 'INVITE' ? ';tag=callee1' : '');
          const body = method === 'INVITE'
            ? 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=sendrecv\r\n'
            : '';
          c.write([
            'SIP/2.0 200 OK', ...head('Via'), ...head('From'), to, ...head('Call-ID'), ...head('CSeq'),
            `Contact: <sip:callee@127.0.0.1:${(server.address() as net.AddressInfo).port};transport=tls>`,
            ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${body.length}`, '', body,
          ].join('\r\n'));
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return { port: (server.address() as net.AddressInfo).port, got, close: () => server.close() };
  }

  const trunk = async (host: string, port: number) => (await t.app.store.trunks.create(ADMIN, t.tenantId, {
    name: 'tls out', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:${host}:${port}`, transport: 'tls' },
  })).id;
  const dial = (trunkId: string) => OutboundDialer.for(t.app.store).dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId });

  it('an outbound call over a TLS trunk: the certificate checked against the trunk host, the INVITE says TLS, BYE on the same connection', async () => {
    const callee = await tlsCallee('carrier.test');
    // The trunk's host is an IP literal the certificate also names (SAN IP:127.0.0.1).
    const call = await dial(await trunk('127.0.0.1', callee.port));
    await waitFor(() => callee.got.some((m) => m.startsWith('ACK ')), 15_000, 'our ACK');
    const ended = await OutboundDialer.for(t.app.store).hangup(t.tenantId, call.id);
    expect(ended.status).toBe('completed');
    await waitFor(() => callee.got.some((m) => m.startsWith('BYE ')), 10_000, 'our BYE');
    const invite = callee.got.find((m) => m.startsWith('INVITE '))!;
    expect(invite).toMatch(new RegExp(`^INVITE sip:\\+14155550123@127\\.0\\.0\\.1:${callee.port};transport=tls SIP/2\\.0`));
    expect(invite).toMatch(/^Via: SIP\/2\.0\/TLS /m);
    expect(invite).toMatch(/^Contact: <sip:aybiza@[^>]*;transport=tls>/m);
    callee.close();
  });

  it('a TLS trunk whose certificate we do not trust: the call fails, nothing is sent', async () => {
    const stranger = await tlsCallee('stranger.test');
    const call = await dial(await trunk('127.0.0.1', stranger.port));
    const final = await OutboundDialer.for(t.app.store).whenFinal(call.id, 20_000);
    expect(final.status).toBe('failed');
    expect(stranger.got).toHaveLength(0);
    stranger.close();
  });
});

describe('SIP over TLS configuration', () => {
  it('SIP_TLS_PORT without a certificate, or an unreadable one, refuses to start with the variable named', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(() => loadConfig({ SIP_TLS_PORT: '5061' })).toThrow(/SIP_TLS_CERT/);
    expect(() => loadConfig({ SIP_TLS_PORT: '5061', SIP_TLS_CERT: '/nonexistent.pem', SIP_TLS_KEY: '/nonexistent.key' })).toThrow(/SIP_TLS_CERT.*ENOENT/);
  });

  it('a trunk transport other than udp, tcp or tls is refused; a tls uri without a port means 5061', async () => {
    const { checkOutbound, parseSipTarget } = await import('../../src/store/trunk-outbound.js');
    expect(() => checkOutbound({ uri: 'sip:carrier.example', transport: 'sctp' as 'tls' })).toThrow(/outbound\.transport/);
    expect(parseSipTarget('sip:carrier.example', 'tls')).toEqual({ host: 'carrier.example', port: 5061 });
    expect(checkOutbound({ uri: 'sip:carrier.example:5061', transport: 'tls' }).uri).toBe('sip:carrier.example');
  });
});
