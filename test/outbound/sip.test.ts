// Outbound calls through a SIP trunk against SIPp as the callee (test/sip/
// scenarios/uas_*.xml): answer with RTP both ways, busy, no answer (CANCEL at
// the dial timeout), a 407 challenge answered once, early media then answer,
// the callee hanging up; and the trunk's outbound settings (validation, the
// password sealed and masked, the address policy).
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/app.js';
import { testWorkers } from '../helpers/spawn-server.js';
import { RtpPeer, speechFrames, startSipApp, waitFor, type SipTestApp } from '../sip/helpers.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { SipCarrier } from '../../src/outbound/sip.js';
import type { TrunkOutbound } from '../../src/store/trunk-outbound.js';
import type { DialRequest } from '../../src/outbound/types.js';
import { sippCallee, sippMessages } from './sip-uas.js';

describe('outbound calls over a SIP trunk (SIPp as the callee)', () => {
  let t: SipTestApp;
  let dialer: OutboundDialer;
  // WORKERS=1 explicitly for the tests that read the live call (its session, its RTP counters):
  // with AYBIZA_TEST_WORKERS > 1 the test's app offers only a count of calls. The same app when
  // the suite runs one worker.
  let one: SipTestApp;
  const start = async (vars: Record<string, string> = {}) => {
    // The callee is on loopback: allowed only with the private-network policy.
    const a = await startSipApp({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', ...vars });
    await a.app.store.tenants.update(ADMIN, a.tenantId, { outbound: { allowedCountries: ['US'] } });
    return a;
  };
  beforeAll(async () => {
    t = await start();
    dialer = OutboundDialer.for(t.app.store);
    one = testWorkers() === '1' ? t : await start({ WORKERS: '1' });
  });
  afterAll(async () => {
    if (one !== t) await one?.stop();
    await t?.stop();
  });

  async function trunk(port: number, extra: Partial<TrunkOutbound> = {}, on = t): Promise<string> {
    const r = await on.app.store.trunks.create(ADMIN, on.tenantId, {
      name: 'outbound', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${port}`, transport: 'udp', ...extra },
    });
    return r.id;
  }

  const dial = (trunkId: string, extra: Partial<DialRequest> = {}, on = t) =>
    OutboundDialer.for(on.app.store).dial(on.tenantId, { agentId: on.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId, ...extra });

  it('answered: our offer, the greeting as RTP, the callee\'s audio in, our BYE at hang-up', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const callee = await sippCallee('uas_answer.xml', { rtpPort });
    const call = await dial(await trunk(callee.port, {}, one), {}, one);
    expect(call.direction).toBe('outbound');
    await waitFor(() => peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length > 50, 20_000, 'greeting RTP');
    peer.stream(speechFrames(100));
    const live = one.app.sip!.calls.get(call.id)!;
    // Through the jitter buffer into the session, as an inbound call's audio.
    await waitFor(() => live.session!.framesIn > 50, 10_000, 'callee audio in');
    const ended = await OutboundDialer.for(one.app.store).hangup(one.tenantId, call.id);
    expect(ended.status).toBe('completed');
    const r = await callee.done;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    // The INVITE SIPp received: our offer, and the Request-URI at the trunk.
    const log = sippMessages(r);
    expect(log).toMatch(/INVITE sip:\+14155550123@127\.0\.0\.1:\d+ SIP\/2\.0/);
    expect(log).toMatch(/^m=audio \d+ RTP\/AVP 0 8 101\s*$/m);
    expect(log).toMatch(/^From: <sip:\+14155550100@127\.0\.0\.1>;tag=/m);
    // Our RTP came from the port we offered.
    const port = Number(/^m=audio (\d+)/m.exec(log)![1]);
    expect(peer.packets.every((p) => p.from.port === port && p.pt === 0)).toBe(true);
    const rec = await one.app.store.calls.byId(call.id);
    expect(rec!.externalId).toMatch(/\S+/);
    expect(rec!.externalId.startsWith('pending:')).toBe(false);
    const detail = await one.app.store.calls.detail(one.tenantId, call.id);
    expect(detail.transcript.some((s) => s.speaker === 'agent' && /Hello/.test(s.text))).toBe(true);
  });

  it('busy: 486 → busy, ACKed', async () => {
    const callee = await sippCallee('uas_busy.xml');
    const call = await dial(await trunk(callee.port));
    const final = await dialer.whenFinal(call.id, 20_000);
    expect(final.status).toBe('busy');
    expect(final.endReason).toMatch(/486/);
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
  });

  it('no answer: CANCEL at the dial timeout, 487 ACKed → no-answer', async () => {
    const short = new SipCarrier({ sip: t.app.sip!, store: t.app.store, network: { allowPrivateNetworks: true }, dialTimeoutMs: 1500 });
    const normal = dialer.carrier('sip')!;
    dialer.register(short);
    try {
      const callee = await sippCallee('uas_no_answer.xml');
      const call = await dial(await trunk(callee.port));
      const final = await dialer.whenFinal(call.id, 20_000);
      expect(final.status).toBe('no-answer');
      const r = await callee.done;
      expect(r.code, r.errors).toBe(0);
      expect(sippMessages(r)).toMatch(/^CANCEL sip:/m);
    } finally {
      dialer.register(normal);
    }
  });

  /** A call through a trunk whose callee challenges with 407 (`scenario`), then answers; the digest recomputed with `hash` over this run's values. */
  async function challenged(scenario: string, hash: 'md5' | 'sha256'): Promise<Record<string, string>> {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const callee = await sippCallee(scenario, { rtpPort, args: ['-d', '1500'] });
    const call = await dial(await trunk(callee.port, { username: 'aybiza-out', password: 'trunk-secret-1' }));
    const final = await dialer.whenFinal(call.id, 30_000);
    peer.close();
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
    expect(final.status).toBe('completed');
    expect(final.answeredAt).not.toBeNull();
    const auth = /^Proxy-Authorization: Digest (.*)$/m.exec(sippMessages(r))![1]!;
    const param = (k: string) => new RegExp(`(?:^|[ ,])${k}="?([^",]+)"?`).exec(auth)![1]!;
    const h = (x: string) => createHash(hash).update(x).digest('hex');
    const ha1 = h('aybiza-out:trunk.example:trunk-secret-1');
    const ha2 = h(`INVITE:${param('uri')}`);
    expect(param('username')).toBe('aybiza-out');
    expect(param('response')).toBe(h(`${ha1}:${param('nonce')}:${param('nc')}:${param('cnonce')}:auth:${ha2}`));
    return { algorithm: param('algorithm') };
  }

  it('407: the digest (MD5, qop=auth) is answered once, the call is answered; the callee hangs up', async () => {
    expect((await challenged('uas_auth.xml', 'md5')).algorithm).toBe('MD5');
  });

  it('407 with a SHA-256 challenge (RFC 8760): answered with a SHA-256 digest', async () => {
    expect((await challenged('uas_auth_sha256.xml', 'sha256')).algorithm).toBe('SHA-256');
  });

  it('a second challenge is not answered again: 407 twice → failed', async () => {
    const callee = await sippCallee('uas_auth_twice.xml');
    const call = await dial(await trunk(callee.port, { username: 'aybiza-out', password: 'wrong-secret' }));
    const final = await dialer.whenFinal(call.id, 20_000);
    expect(final.status).toBe('failed');
    expect(final.endReason).toMatch(/407/);
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
    expect(sippMessages(r).match(/^INVITE sip:/gm)).toHaveLength(2);
  });

  it('early media (183 + RTP) is counted and played to nobody, then the answer', async () => {
    const callee = await sippCallee('uas_early_media.xml', { args: ['-d', '1500'] });
    const call = await dial(await trunk(callee.port, {}, one), {}, one);
    await waitFor(() => one.app.sip!.calls.has(call.id), 10_000, 'answer');
    const live = one.app.sip!.calls.get(call.id)!;
    const early = live.o.rtp.earlyPackets;
    const final = await OutboundDialer.for(one.app.store).whenFinal(call.id, 30_000);
    expect(final.status).toBe('completed');
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
    // ~1.5 s of 30 ms packets before the 200.
    expect(early).toBeGreaterThan(20);
    let stats: Record<string, unknown> | null = null;
    await waitFor(() => stats !== null || (void one.app.store.calls.byId(call.id).then((c) => (stats = c?.mediaStats ?? null)), false), 10_000, 'media stats');
    expect(stats).toMatchObject({ earlyPackets: early, codec: 'pcma' });
  });

  it('session timer (RFC 4028): we offer Supported: timer; a 200 that makes us the refresher gets UPDATE refreshes', async () => {
    const before = one.app.sip!.timerMsPerSecond;
    // 20 ms per second: the callee's 90 s interval lasts 1.8 s, refreshed every 0.9 s.
    one.app.sip!.timerMsPerSecond = 20;
    try {
      const peer = new RtpPeer();
      const rtpPort = await peer.open();
      const callee = await sippCallee('uas_timer_refreshed.xml', { rtpPort });
      const call = await dial(await trunk(callee.port, {}, one), {}, one);
      const final = await OutboundDialer.for(one.app.store).whenFinal(call.id, 30_000);
      peer.close();
      expect(final.endReason).toBe('callee hung up');
      const r = await callee.done;
      expect(r.code, r.errors).toBe(0);
      const log = sippMessages(r);
      expect(log).toMatch(/^INVITE [\s\S]*?^Supported: timer\r?$/m);
      expect(log).toMatch(/^UPDATE [\s\S]*?^Session-Expires: 90;refresher=uac\r?$/m);
    } finally {
      one.app.sip!.timerMsPerSecond = before;
    }
  });

  it('the callee hangs up (BYE over TCP) → completed', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const callee = await sippCallee('uas_callee_hangs_up.xml', { rtpPort, tcp: true, args: ['-d', '1500'] });
    const call = await dial(await trunk(callee.port, { transport: 'tcp' }, one), {}, one);
    const final = await OutboundDialer.for(one.app.store).whenFinal(call.id, 30_000);
    peer.close();
    expect(final.status).toBe('completed');
    expect(final.endReason).toBe('callee hung up');
    const r = await callee.done;
    expect(r.code, r.errors).toBe(0);
    expect(peer.packets.length).toBeGreaterThan(10);
    await waitFor(() => !one.app.sip!.calls.has(call.id), 5000, 'call released');
  });
});

describe('trunk outbound settings', () => {
  let t: SipTestApp;
  const ADMIN_KEY = 'admin-key-for-trunk-outbound-tests';
  beforeAll(async () => {
    t = await startSipApp({ ADMIN_API_KEY: ADMIN_KEY });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const create = (outbound: Partial<TrunkOutbound>) =>
    t.app.store.trunks.create(ADMIN, t.tenantId, { name: 'o', allowedCidrs: ['198.51.100.7/32'], outbound: { uri: 'sip:carrier.example', transport: 'udp', ...outbound } as TrunkOutbound });

  it('validates the uri and refuses targets that cannot be a carrier', async () => {
    for (const uri of ['sip:user@carrier.example', 'sip:carrier.example;transport=tcp', 'sips:carrier.example', 'sip:127.1', 'sip:[::1]', 'sip:carrier.example:0', 'sip:a b']) {
      await expect(create({ uri }), uri).rejects.toThrow(/outbound\.uri/);
    }
    for (const uri of ['sip:169.254.169.254', 'sip:224.0.0.1:5060', 'sip:0.0.0.0', 'sip:192.0.2.10']) {
      await expect(create({ uri }), uri).rejects.toThrow(/cannot be a SIP trunk/);
    }
    await expect(create({ uri: 'sip:carrier.example', username: 'u' })).rejects.toThrow(/outbound\.password/);
    const ok = await create({ uri: 'sip:Carrier.Example:5080', transport: 'tcp', fromUser: '+14155550100' });
    expect(ok.outbound).toEqual({ uri: 'sip:carrier.example:5080', transport: 'tcp', fromUser: '+14155550100' });
  });

  it('seals the password: masked in answers and the audit log, a mask sent back keeps it, plaintext only for dialling', async () => {
    const tr = await create({ uri: 'sip:carrier.example', username: 'acct', password: 'a-long-trunk-password' });
    expect(tr.outbound!.password).toBe('****word');
    const row = (await t.app.store.db.pool.query('select outbound from sip_trunks where id = $1', [tr.id])).rows[0].outbound;
    expect(row.password).toMatch(/^enc:v1:/);
    const audit = (await t.app.store.db.pool.query("select after from audit_log where object_id = $1", [tr.id])).rows;
    expect(JSON.stringify(audit)).not.toContain('a-long-trunk-password');
    const kept = await t.app.store.trunks.update(ADMIN, t.tenantId, tr.id, { outbound: { ...tr.outbound!, fromUser: 'main' } });
    expect(kept.outbound!.fromUser).toBe('main');
    expect((await t.app.store.trunks.outboundFor(t.tenantId, tr.id))!.password).toBe('a-long-trunk-password');
    const list = await t.app.store.trunks.list(t.tenantId);
    expect(JSON.stringify(list)).not.toContain('a-long-trunk-password');
  });

  it('over the admin API: 422 naming the field, the password never echoed', async () => {
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${t.base}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const bad = await call('POST', '/v1/sip-trunks', { tenantId: t.tenantId, name: 'x', allowedCidrs: ['198.51.100.7/32'], outbound: { uri: 'sip:169.254.169.254' } });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toMatch(/outbound\.uri/);
    const extra = await call('POST', '/v1/sip-trunks', { tenantId: t.tenantId, name: 'x', allowedCidrs: ['198.51.100.7/32'], outbound: { uri: 'sip:carrier.example', proxy: 'x' } });
    expect(extra.status).toBe(422);
    const res = await call('POST', '/v1/sip-trunks', { tenantId: t.tenantId, name: 'x', allowedCidrs: ['198.51.100.7/32'], outbound: { uri: 'sip:carrier.example', username: 'acct', password: 'api-trunk-password' } });
    expect(res.status).toBe(201);
    const created = await res.text();
    expect(created).not.toContain('api-trunk-password');
    const id = (JSON.parse(created) as { id: string }).id;
    const got = await (await call('GET', `/v1/sip-trunks/${id}`)).json() as { outbound: TrunkOutbound };
    expect(got.outbound).toEqual({ uri: 'sip:carrier.example', transport: 'udp', username: 'acct', password: '****word' });
    const audit = await (await call('GET', '/v1/audit-log')).text();
    expect(audit).not.toContain('api-trunk-password');
  });

  it('a loopback or private trunk is refused when dialling without TOOLS_ALLOW_PRIVATE_NETWORKS; nothing is sent', async () => {
    const tr = await create({ uri: 'sip:127.0.0.1:5999' });
    const call = await OutboundDialer.for(t.app.store).dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId: tr.id });
    expect(call.status).toBe('failed');
    expect(call.endReason).toMatch(/loopback/);
  });
});
