// WORKERS=2: an outbound SIP call keeps its media on the main thread (src/server/workers.ts),
// so its recording is the main thread's. A shutdown in the middle of that call must end
// the call, complete the file (header counting the data) and mark the row ready before
// the main thread's store closes. This checks the outcome: the order that guarantees it
// (WorkerPool.closeMain closes this thread's recordings before the store) is not forced
// into a race here — the store's own drains at close take long enough that the test
// also passed with that step removed.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ADMIN, startTestApp } from '../helpers/app.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { freeSipPort, inSeqOrder, RtpPeer, waitFor } from '../sip/helpers.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { sippCallee } from '../outbound/sip-uas.js';
import { audibleFrames, parseWav } from './wav.js';

describe.skipIf(!realPg)('WORKERS=2: a recorded outbound SIP call at shutdown', () => {
  it('is ended, its file completed and its row marked ready before the store closes', async () => {
    const databaseUrl = await freshDatabase();
    const sipPort = await freeSipPort();
    const min = 20000 + 2 * Math.floor(Math.random() * 10000);
    const t = await startTestApp(
      {
        WORKERS: '2', DATABASE_URL: databaseUrl, TOOLS_ALLOW_PRIVATE_NETWORKS: 'true', DRAIN_TIMEOUT_S: '1',
        SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 400),
      },
      { recording: { enabled: true, channels: 'dual' } },
    );
    const peer = new RtpPeer();
    let stopped = false;
    try {
      await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
      const callee = await sippCallee('uas_answer.xml', { rtpPort: await peer.open() });
      const trunk = await t.app.store.trunks.create(ADMIN, t.tenantId, {
        name: 'outbound', allowedCidrs: ['127.0.0.1/32'], outbound: { uri: `sip:127.0.0.1:${callee.port}`, transport: 'udp' },
      });
      const call = await OutboundDialer.for(t.app.store).dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'sip', trunkId: trunk.id });
      // The greeting is being heard (more than a second of it): the call and its recording are live.
      await waitFor(() => peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length > 60, 20_000, 'greeting RTP');
      await t.stop();
      stopped = true;
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const row = (await db.query('select * from recordings where call_id = $1', [call.id])).rows[0];
        expect(row).toBeDefined();
        expect(row.ready_at).not.toBeNull();
        expect(Number(row.bytes)).toBeGreaterThan(58);
        const file = fs.readFileSync(path.join(t.app.config.dataDir, 'recordings', row.key));
        const w = parseWav(file);
        expect(w.channels).toBe(2);
        expect(w.dataBytes).toBe(file.length - 58);
        expect(Number(row.bytes)).toBe(file.length);
        // The agent's channel holds the greeting as the callee received it, up to the shutdown.
        const received = audibleFrames(inSeqOrder(peer.packets).map((p) => p.payload));
        const right = audibleFrames(w.right!);
        expect(right.length).toBeGreaterThan(60);
        expect(right.findIndex((f, i) => !f.equals(received[i]))).toBe(-1);
        const status = (await db.query('select status from calls where id = $1', [call.id])).rows[0]?.status;
        expect(status).toBe('completed');
      } finally {
        await db.end();
      }
      await callee.done;
    } finally {
      peer.close();
      if (!stopped) await t.stop();
    }
  }, 60_000);
});
