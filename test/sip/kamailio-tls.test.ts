// SIP over TLS against a real SIP stack: Kamailio (OpenSSL, tls module) in
// front, as a carrier's SBC would be. SIPp calls Kamailio over UDP and
// Kamailio relays to Aybiza's TLS port (a whole call: INVITE, 200, ACK, RTP,
// BYE through Record-Route); and an outbound call goes to Kamailio over TLS,
// which relays it to a SIPp callee over UDP. Both sides check certificates:
// Kamailio trusts Aybiza's (tls ca_list), Aybiza trusts Kamailio's
// (SIP_TLS_CA) and checks it names the trunk host.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/app.js';
import { tempDir } from '../helpers/spawn-server.js';
import { KAMAILIO, sipOptions } from '../cluster/cluster.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { sippCallee, sippMessages } from '../outbound/sip-uas.js';
import { addTrunk, freeSipPort, RtpPeer, selfSigned, sipp, startSipApp, waitFor, type SipTestApp } from './helpers.js';

const CONFIG = path.resolve(__dirname, 'fixtures/kamailio-tls.cfg');

describe('SIP over TLS with Kamailio as the peer', () => {
  let t: SipTestApp;
  let kamailio: ReturnType<typeof spawn>;
  const logs: string[] = [];
  let udpPort = 0;
  let tlsPort = 0;
  let calleePort = 0;
  beforeAll(async () => {
    const dir = tempDir('kamailio-tls-');
    const ours = selfSigned(dir, 'localhost');
    const theirs = selfSigned(dir, 'sbc.test');
    t = await startSipApp({
      SIP_TLS_PORT: String(await freeSipPort()), SIP_TLS_CERT: ours.cert, SIP_TLS_KEY: ours.key, SIP_TLS_CA: theirs.cert, TOOLS_ALLOW_PRIVATE_NETWORKS: 'true',
    });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
    udpPort = await freeSipPort();
    tlsPort = await freeSipPort();
    calleePort = await freeSipPort();
    kamailio = spawn(KAMAILIO, [
      '-f', CONFIG, '-DD', '-E', '-m', '64', '-M', '8', '-Y', dir, '-P', path.join(dir, 'kamailio.pid'),
      '-A', `UDP_PORT=${udpPort}`, '-A', `TLS_PORT=${tlsPort}`,
      '-A', `AYBIZA_URI="sip:127.0.0.1:${t.app.sip!.tlsPort};transport=tls"`, '-A', `CALLEE_URI="sip:127.0.0.1:${calleePort}"`,
      '-A', `TLS_CERT="${theirs.cert}"`, '-A', `TLS_KEY="${theirs.key}"`, '-A', `TLS_CA="${ours.cert}"`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean));
    kamailio.stdout!.on('data', collect);
    kamailio.stderr!.on('data', collect);
    let exited = false;
    kamailio.on('exit', () => (exited = true));
    // Up when it answers an OPTIONS addressed to itself.
    let up = false;
    await waitFor(() => exited || up || (void sipOptions(udpPort, 300).then((code) => (up = code === 200)), false), 20_000, 'kamailio to answer OPTIONS');
    if (exited) throw new Error(`kamailio exited:\n${logs.join('\n')}`);
  });
  afterAll(async () => {
    if (kamailio && kamailio.exitCode === null) {
      kamailio.kill('SIGTERM');
      await new Promise((r) => kamailio.once('exit', r));
    }
    await t?.stop();
  });

  it('a call from SIPp through Kamailio reaches us over TLS and ends with BYE through Record-Route', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp({ sipPort: udpPort, number: t.number }, 'uac_call.xml', { rtpPort, args: ['-d', '2000'] });
    peer.close();
    expect(r.code, `${r.errors}\n${logs.slice(-30).join('\n')}`).toBe(0);
    // Our greeting reached SIPp's RTP port: the SDP went through both legs.
    expect(peer.packets.length).toBeGreaterThan(10);
    expect(logs.some((l) => /kamailio-tls relay INVITE .* -> sip:127\.0\.0\.1:\d+;transport=tls/.test(l))).toBe(true);
    // SIPp saw our 200, relayed: its Record-Route names Kamailio's UDP and TLS sides.
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    expect(log).toMatch(/^Record-Route: <sip:127\.0\.0\.1:\d+;transport=tls;r2=on;lr[;>]/m);
    let stored = false;
    await waitFor(() => stored || (void t.app.store.calls.list(null, 50).then((calls) => (stored = calls.items.some((c) => c.transport === 'sip' && c.endReason === 'caller hung up'))), false), 10_000, 'the call stored as ended by the caller');
  });

  it('an outbound call over a TLS trunk to Kamailio reaches the SIPp callee, who hangs up', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const callee = await sippCallee('uas_callee_hangs_up.xml', { rtpPort, port: calleePort, args: ['-d', '1500'], timeoutS: 12 });
    const trunkId = (await t.app.store.trunks.create(ADMIN, t.tenantId, {
      name: 'via kamailio', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${tlsPort}`, transport: 'tls' },
    })).id;
    const call = await OutboundDialer.for(t.app.store).dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId });
    const final = await OutboundDialer.for(t.app.store).whenFinal(call.id, 30_000);
    peer.close();
    const r = await callee.done;
    expect(r.code, `${r.errors}\n${logs.slice(-30).join('\n')}`).toBe(0);
    expect(final.status).toBe('completed');
    expect(final.endReason).toBe('callee hung up');
    expect(sippMessages(r)).toMatch(/^INVITE sip:\+14155550123@127\.0\.0\.1:\d+;transport=tls SIP\/2\.0/m);
    expect(peer.packets.length).toBeGreaterThan(10);
  });
});
