// WORKERS=2 with SIP: signalling stays in the main thread and each call's
// media (RTP ports, jitter buffer, session, conversation) runs in a media
// worker; in-dialog requests (re-INVITE for hold and resume, BYE) are
// forwarded to it and answered from it. Against SIPp and `aybiza serve`.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/app.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';
import { freshDatabase, realPg } from '../helpers/databases.js';
import { freeSipPort, RtpPeer, sipp, speechFrames, waitFor } from '../sip/helpers.js';

const ADMIN_KEY = 'ayb_workers_sip_test_admin_key_0123456789ab';
const DEMO = '+15555550100';

describe.skipIf(!realPg)('WORKERS=2: SIP calls handed to media workers', () => {
  let srv: Spawned;
  let sipPort: number;
  let base: string;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
    });
    return (await res.json()) as Record<string, unknown>;
  };
  const perWorker = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return Object.fromEntries([...text.matchAll(/^aybiza_worker_calls_active\{worker="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  };

  beforeAll(async () => {
    sipPort = await freeSipPort();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const min = 20000 + 2 * Math.floor(Math.random() * 10000);
    srv = await spawnServer({
      // On a real PostgreSQL (workers.test.ts runs on both databases).
      DATABASE_URL: await freshDatabase(), PORT: String(port), WORKERS: '2', EMULATORS: 'on', ADMIN_API_KEY: ADMIN_KEY, SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1',
      RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 200),
    }, 150_000);
    const tenants = (await api('GET', '/v1/tenants')).items as { id: string }[];
    await api('POST', '/v1/sip-trunks', { name: 'loopback', tenantId: tenants[0]!.id, allowedCidrs: ['127.0.0.1/32'] });
  }, 180_000);
  afterAll(async () => {
    await srv?.stop('SIGKILL');
  });

  it('answers from a worker: greeting as RTP, caller audio in, BYE forwarded; the call is counted on that worker', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const run = sipp({ sipPort, number: DEMO }, 'uac_call.xml', { rtpPort, args: ['-d', '6000'] });
    await waitFor(() => peer.packets.length > 0, 30_000, 'first RTP packet');
    peer.stream(speechFrames(100));
    const per = await perWorker();
    expect((per['0'] ?? 0) + (per['1'] ?? 0)).toBe(1);
    expect(Object.keys(per).sort()).toEqual(['0', '1']);
    await waitFor(() => peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length > 50, 20_000, 'non-silent greeting');
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const answered = srv.logs.map((l) => { try { return JSON.parse(l) as { msg?: string; worker?: number }; } catch { return {}; } })
      .filter((l) => l.msg === 'sip call answered');
    expect(answered).toHaveLength(1);
    expect([0, 1]).toContain(answered[0]!.worker);
    let after: Record<string, number> = {};
    for (let i = 0; i < 50; i++) {
      after = await perWorker();
      if ((after['0'] ?? 0) + (after['1'] ?? 0) === 0) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    expect((after['0'] ?? 0) + (after['1'] ?? 0)).toBe(0);
  }, 60_000);

  it('hold and resume by re-INVITE are answered by the worker that has the media', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp({ sipPort, number: DEMO }, 'uac_hold.xml', { rtpPort });
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    // One answer per INVITE transaction: a 200 retransmitted before its ACK came (a loaded machine) is the same answer.
    const byCseq = new Map<string, string>();
    for (const m of log.matchAll(/SIP\/2\.0 200 OK[\s\S]*?CSeq:\s*(\d+) INVITE[\s\S]*?a=(sendrecv|recvonly|sendonly|inactive)/g)) {
      if (!byCseq.has(m[1])) byCseq.set(m[1], m[2]);
    }
    expect([...byCseq.values()].slice(0, 3)).toEqual(['sendrecv', 'recvonly', 'sendrecv']);
  }, 60_000);
});
