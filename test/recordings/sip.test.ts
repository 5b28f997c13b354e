// A recorded SIP call (SIPp signalling, our RTP peer as the caller's phone):
// the right channel is the agent's RTP as the caller received it, frame for
// frame; the left channel is the caller's audio as the jitter buffer gave it
// to the call, which on loopback is the caller's frames in order.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { addTrunk, freeSipPort, inSeqOrder, RtpPeer, sipp, speechFrames, waitFor } from '../sip/helpers.js';
import { audibleFrames, parseWav } from './wav.js';

describe('dual recording of a SIP call', () => {
  let t: TestApp & { sipPort: number };
  beforeAll(async () => {
    const sipPort = await freeSipPort();
    const min = 20000 + 2 * Math.floor(Math.random() * 10000);
    const app = await startTestApp(
      { SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 400) },
      { recording: { enabled: true, channels: 'dual' } },
    );
    t = { ...app, sipPort };
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('holds the agent\'s RTP as received and the caller\'s audio after the jitter buffer', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const run = sipp(t, 'uac_call.xml', { rtpPort, args: ['-d', '6000'] });
    await waitFor(() => peer.packets.length > 0, 20_000, 'first RTP packet');
    const said = speechFrames(100);
    peer.stream(said);
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const row = await (async () => {
      const t0 = Date.now();
      for (;;) {
        const got = (await t.app.store.db.pool.query('select * from recordings where tenant_id = $1 and ready_at is not null', [t.tenantId])).rows[0];
        if (got || Date.now() - t0 > 15_000) return got;
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    expect(row).toBeDefined();
    const w = parseWav(fs.readFileSync(path.join(t.app.config.dataDir, 'recordings', row.key)));
    expect(w.channels).toBe(2);
    const received = audibleFrames(inSeqOrder(peer.packets).map((p) => p.payload));
    const right = audibleFrames(w.right!);
    expect(received.length).toBeGreaterThan(50);
    expect(right.length).toBe(received.length);
    expect(right.findIndex((f, i) => !f.equals(received[i]))).toBe(-1);
    // The jitter buffer may conceal a frame that came late on a loaded machine: every sent frame
    // found is in order, and nearly all are there.
    const left = audibleFrames(w.left);
    let k = 0;
    for (const f of left) {
      const at = said.findIndex((s, i) => i >= k && Buffer.from(s).equals(f));
      if (at >= 0) k = at + 1;
    }
    const found = left.filter((f) => said.some((s) => Buffer.from(s).equals(f))).length;
    expect(found).toBeGreaterThanOrEqual(90);
    expect(k).toBeGreaterThanOrEqual(90);
  });
});
