// Hostile answers to our outbound INVITEs (bench/fuzz/sip-uac.ts): every dial
// still ends with a final status, nothing throws inside the server, no RTP
// port or call is left behind, and the SIP server keeps answering.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { ADMIN } from '../helpers/app.js';
import { startSipApp, waitFor, type SipTestApp } from '../sip/helpers.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { SipCarrier } from '../../src/outbound/sip.js';
import { registry } from '../../src/metrics/index.js';
import { boundRtpPorts } from '../../sip/rtp.js';
import { HostileCallee } from '../../bench/fuzz/sip-uac.js';
import { newSeed, Rand } from '../../bench/fuzz/random.js';

async function internalErrors(): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_internal_errors_total')?.get())?.values ?? [];
  return m.reduce((a, v) => a + v.value, 0);
}

async function optionsAnswered(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const me = s.address().port;
  const got = new Promise<boolean>((resolve) => {
    s.on('message', (m) => resolve(m.toString().startsWith('SIP/2.0 200')));
    setTimeout(() => resolve(false), 3000);
  });
  s.send([
    `OPTIONS sip:probe@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bKprobe${me};rport`, 'From: <sip:probe@127.0.0.1>;tag=p',
    'To: <sip:probe@127.0.0.1>', `Call-ID: probe-${me}`, 'CSeq: 1 OPTIONS', 'Max-Forwards: 70', 'Content-Length: 0', '', '',
  ].join('\r\n'), port, '127.0.0.1');
  const ok = await got;
  s.close();
  return ok;
}

describe('outbound INVITE against a hostile callee', () => {
  let t: SipTestApp;
  let callee: HostileCallee;
  const seed = Number(process.env.FUZZ_SEED ?? newSeed());
  beforeAll(async () => {
    t = await startSipApp({ TOOLS_ALLOW_PRIVATE_NETWORKS: 'true' });
    await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
    callee = new HostileCallee(new Rand(seed));
    await callee.open();
  });
  afterAll(async () => {
    callee?.close();
    await t?.stop();
  });

  it(`every dial ends, nothing is left behind (seed ${seed}; FUZZ_SEED replays it)`, async () => {
    const dialer = OutboundDialer.for(t.app.store);
    dialer.register(new SipCarrier({ sip: t.app.sip!, store: t.app.store, network: { allowPrivateNetworks: true }, dialTimeoutMs: 800 }));
    const trunk = await t.app.store.trunks.create(ADMIN, t.tenantId, {
      name: 'hostile', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${callee.port}`, transport: 'udp', username: 'u', password: 'p' },
    });
    const ports0 = boundRtpPorts();
    const errors0 = await internalErrors();
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const call = await dialer.dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId: trunk.id });
      // An answered call is hung up by us after a moment; the rest end by themselves.
      const hangup = setTimeout(() => void dialer.hangup(t.tenantId, call.id).catch(() => {}), 1500);
      const final = await dialer.whenFinal(call.id, 30_000).finally(() => clearTimeout(hangup));
      outcomes[`${callee.scripts.at(-1)} → ${final.status}`] = (outcomes[`${callee.scripts.at(-1)} → ${final.status}`] ?? 0) + 1;
    }
    // What must never be answered: no response at all, media at the metadata address, no common codec.
    for (const [k, n] of Object.entries(outcomes)) {
      if (/^(silence|ok_metadata_media|ok_no_common_codec) /.test(k)) expect(k, String(n)).toMatch(/→ failed$/);
    }
    await waitFor(() => t.app.sip!.calls.size === 0 && boundRtpPorts() === ports0, 15_000, `calls and RTP ports released (${JSON.stringify(outcomes)})`);
    expect(await internalErrors(), JSON.stringify(outcomes)).toBe(errors0);
    expect(await optionsAnswered(t.sipPort)).toBe(true);
    expect(callee.invites).toBeGreaterThanOrEqual(40);
  });
});
