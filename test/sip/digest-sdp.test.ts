// Unit tests: digest responses against the reference vectors (MD5 and the
// SHA-256 SIPp cannot send), nonces, and SDP offer/answer rules.
import { describe, expect, it } from 'vitest';
import { DigestAuth, digestResponse, parseAuthorization } from '../../sip/digest.js';
import { buildAnswer, negotiate, parseSdp } from '../../sip/sdp.js';
import { ha1 } from '../../src/store/trunks.js';

const V = { username: 'trunkuser', realm: 'sip.example.com', password: 's3cret', uri: 'sip:+15557654321@sip.example.com', nonce: '8f1c2d3e4f5a6b7c', cnonce: '0a4f113b', nc: '00000001' };

describe('digest', () => {
  it('matches the RFC 7616/8760 reference vectors for MD5 and SHA-256, with and without qop', () => {
    const md5 = ha1('md5', V.username, V.realm, V.password);
    const sha = ha1('sha256', V.username, V.realm, V.password);
    expect(md5).toBe('6d714a028863e6b97503de950dac1a2b');
    expect(sha).toBe('80e5c60b089dc40e3383ed5140e76a9be4edde51010ec4e5aa84c5c82b27ced1');
    expect(digestResponse('MD5', md5, 'INVITE', { ...V, qop: 'auth' })).toBe('bb535a8ceda55f4b832962b7e861445c');
    expect(digestResponse('MD5', md5, 'INVITE', { ...V, qop: null, nc: null, cnonce: null })).toBe('c912d78bd76e7977e37d4e308e5bf498');
    expect(digestResponse('SHA-256', sha, 'INVITE', { ...V, qop: 'auth' })).toBe('b01f6cec6846c925f4323ad67fcceaccde53447e8732c9e216b996ea46636b2f');
    expect(digestResponse('SHA-256', sha, 'INVITE', { ...V, qop: null, nc: null, cnonce: null })).toBe('22795265e2857897ca854067b32cf021c3dad6102b7922d17f889f356b86312e');
  });

  it('verifies SHA-256 and MD5 answers to its own nonce; rejects a wrong one, a forged nonce, and flags an expired one stale', async () => {
    let now = 1_000_000;
    const auth = new DigestAuth(V.realm, { now: () => now });
    const nonce = /nonce="([^"]+)"/.exec((await auth.challenge())[1]!)![1]!;
    expect((await auth.challenge())[0]).toMatch(/algorithm=MD5/);
    expect((await auth.challenge())[1]).toMatch(/algorithm=SHA-256, qop="auth"/);
    const sha = ha1('sha256', V.username, V.realm, V.password);
    const header = (nc: string, uri = V.uri) => {
      const response = digestResponse('SHA-256', sha, 'INVITE', { ...V, uri, nonce, nc, qop: 'auth' });
      return `Digest username="${V.username}", realm="${V.realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=SHA-256, cnonce="${V.cnonce}", qop=auth, nc=${nc}`;
    };
    const creds = parseAuthorization(header('00000001'))!;
    expect(creds.algorithm).toBe('SHA-256');
    expect(await auth.verify('INVITE', V.uri, creds, ha1('sha256', V.username, V.realm, 'wrong'))).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, { ...creds, nonce: nonce.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) }, sha)).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, { ...creds, realm: 'other' }, sha)).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, creds, sha)).toBe('ok');
    expect(await auth.verify('INVITE', V.uri, parseAuthorization(header('00000002'))!, sha)).toBe('ok');
    now += 10 * 60_000;
    expect(await auth.verify('INVITE', V.uri, parseAuthorization(header('00000003'))!, sha)).toBe('stale');
    expect(parseAuthorization('Basic abc')).toBeNull();
    expect(parseAuthorization('Digest username="x"')).toBeNull();
  });

  it('binds the response to the Request-URI, requires qop=auth, and refuses a replayed or lower nc', async () => {
    const auth = new DigestAuth(V.realm);
    const nonce = /nonce="([^"]+)"/.exec((await auth.challenge())[0]!)![1]!;
    const md5 = ha1('md5', V.username, V.realm, V.password);
    const creds = (nc: string | null, uri = V.uri, qop: string | null = 'auth') => ({
      username: V.username, realm: V.realm, nonce, uri, algorithm: 'MD5' as const, qop, nc, cnonce: qop ? V.cnonce : null,
      response: digestResponse('MD5', md5, 'INVITE', { nonce, uri, qop, nc, cnonce: qop ? V.cnonce : null }),
    });
    // A correct response, but computed for (and sent with) another URI than the request's.
    expect(await auth.verify('INVITE', V.uri, creds('00000001', 'sip:+15550000000@sip.example.com'), md5)).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, creds(null, V.uri, null), md5)).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, creds('00000000'), md5)).toBe('invalid');
    expect(await auth.verify('INVITE', V.uri, creds('00000002'), md5)).toBe('ok');
    expect(await auth.verify('INVITE', V.uri, creds('00000002'), md5)).toBe('replay');
    expect(await auth.verify('INVITE', V.uri, creds('00000001'), md5)).toBe('replay');
    expect(await auth.verify('INVITE', V.uri, creds('0000000a'), md5)).toBe('ok');
  });

  it('keeps nc history bounded: a nonce evicted from it is answered as a replay, never trusted afresh', async () => {
    let clock = 1_000_000;
    const auth = new DigestAuth(V.realm, { maxTrackedNonces: 3, now: () => ++clock });
    const md5 = ha1('md5', V.username, V.realm, V.password);
    const use = async (nonce: string, nc: string) => auth.verify('INVITE', V.uri, {
      username: V.username, realm: V.realm, nonce, uri: V.uri, algorithm: 'MD5', qop: 'auth', nc, cnonce: V.cnonce,
      response: digestResponse('MD5', md5, 'INVITE', { nonce, uri: V.uri, qop: 'auth', nc, cnonce: V.cnonce }),
    }, md5);
    const nonces: string[] = [];
    for (let i = 0; i < 5; i++) nonces.push(await auth.nonce());
    for (const n of nonces) expect(await use(n, '00000001')).toBe('ok');
    expect(auth.trackedNonces).toBe(3);
    expect(await use(nonces[0]!, '00000001')).toBe('replay');
    expect(await use(nonces[4]!, '00000002')).toBe('ok');
  });

  it('shares nonces between instances with the same key (one node challenges, another verifies)', async () => {
    const key = Buffer.alloc(32, 7);
    const a = new DigestAuth(V.realm, { key: async () => key });
    const b = new DigestAuth(V.realm, { key: async () => key });
    const c = new DigestAuth(V.realm);
    const nonce = await a.nonce();
    expect(await b.checkNonce(nonce)).toBe('ok');
    expect(await c.checkNonce(nonce)).toBe('invalid');
  });
});

const OFFER = ['v=0', 'o=carrier 1 2 IN IP4 198.51.100.20', 's=-', 'c=IN IP4 198.51.100.20', 't=0 0',
  'm=audio 23622 RTP/AVP 8 0 96 13', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:96 telephone-event/8000', 'a=fmtp:96 0-16', 'a=ptime:20', 'a=sendonly',
  'm=video 5000 RTP/AVP 31', ''].join('\r\n');

describe('SDP offer/answer', () => {
  it('takes the first common codec in the offer\'s order, reuses its telephone-event PT, mirrors the direction, rejects other streams', () => {
    const offer = parseSdp(OFFER)!;
    const n = negotiate(offer)!;
    expect(n).toMatchObject({ codec: 'pcma', pt: 8, dtmfPt: 96, remoteAddress: '198.51.100.20', remotePort: 23622, direction: 'recvonly', index: 0 });
    const answer = buildAnswer(offer, n, { ip: '203.0.113.10', port: 40000, sessionId: 7, version: 1 });
    expect(answer).toContain('m=audio 40000 RTP/AVP 8 96\r\n');
    expect(answer).toContain('a=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\na=recvonly\r\n');
    expect(answer).toContain('m=video 0 RTP/AVP 31\r\n');
    expect(answer).toContain('o=aybiza 7 1 IN IP4 203.0.113.10');
  });

  it('returns null (488) for a G.729-only offer, treats c=0.0.0.0 as hold, and refuses non-SDP', () => {
    expect(negotiate(parseSdp(OFFER.replace('m=audio 23622 RTP/AVP 8 0 96 13', 'm=audio 23622 RTP/AVP 18'))!)).toBeNull();
    const held = negotiate(parseSdp(OFFER.replace('c=IN IP4 198.51.100.20', 'c=IN IP4 0.0.0.0').replace('a=sendonly', 'a=sendrecv'))!)!;
    expect(held.remoteAddress).toBeNull();
    expect(held.direction).toBe('recvonly');
    expect(parseSdp('hello')).toBeNull();
    expect(parseSdp('v=0\r\nm=audio x RTP/AVP 0\r\n')).toBeNull();
  });
});
