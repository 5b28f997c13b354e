// SIP trunk calls against SIPp: OPTIONS, a PCMU call with RTP both ways, the
// refusals (403, 404, 487, 488) and digest authentication (401, then 200).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetric } from '../helpers/app.js';
import { spawnServer, testWorkers } from '../helpers/spawn-server.js';
import { addTrunk, freeSipPort, RawUac, RtpPeer, sipp, speechFrames, startSipApp, waitFor, type SipTestApp } from './helpers.js';

/** A metric as the server's /metrics shows it (every worker's series with AYBIZA_TEST_WORKERS > 1). */
const metric = (on: SipTestApp, name: string, labels: Record<string, string>) => scrapeMetric(on.base, name, labels);

describe('SIP trunk (source-address trunks)', () => {
  let t: SipTestApp;
  // WORKERS=1 explicitly for the tests that reach into a live call (its session's dtmf/end, its
  // transfer): with AYBIZA_TEST_WORKERS > 1 those objects live in a worker thread. The same app when
  // the suite runs one worker.
  let inProcess: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp();
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'], allowRefer: true });
    if (testWorkers() === '1') inProcess = t;
    else {
      inProcess = await startSipApp({ WORKERS: '1' });
      await addTrunk(inProcess, { allowedCidrs: ['127.0.0.1/32'], allowRefer: true });
    }
  });
  afterAll(async () => {
    await t?.stop();
    if (inProcess !== t) await inProcess?.stop();
  });

  it('answers OPTIONS with 200', async () => {
    const r = await sipp(t, 'options.xml');
    expect(r.code, r.errors).toBe(0);
  });

  it('a PCMU call: 200 with an SDP answer, greeting as paced RTP, caller audio in, BYE → 200', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const before = await metric(t, 'aybiza_rtp_packets_total', { direction: 'in', event: 'received' });
    const run = sipp(t, 'uac_call.xml', { rtpPort, args: ['-d', '8000'] });
    // The greeting arrives first; then the caller speaks from the same port (symmetric RTP).
    await waitFor(() => peer.packets.length > 0, 20_000, 'first RTP packet');
    peer.stream(speechFrames(100));
    await waitFor(() => peer.packets.filter((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)).length > 50, 20_000, 'non-silent greeting');
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    // The SDP answer as SIPp received it.
    const log = (await import('node:fs')).readFileSync(`${r.dir}/${(await import('node:fs')).readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    const answer = /SIP\/2\.0 200 OK[\s\S]*?\r?\n\r?\n(v=0[\s\S]*?)(?:\r?\n\r?\n|-{5})/.exec(log)?.[1] ?? '';
    expect(answer).toMatch(/^m=audio \d+ RTP\/AVP 0 101$/m);
    expect(answer).toMatch(/^a=rtpmap:0 PCMU\/8000$/m);
    expect(answer).toMatch(/^a=rtpmap:101 telephone-event\/8000$/m);
    expect(answer).toMatch(/^a=ptime:20$/m);
    expect(answer).toMatch(/^a=sendrecv$/m);
    expect(answer).toMatch(/^c=IN IP4 127\.0\.0\.1$/m);
    const port = Number(/^m=audio (\d+)/m.exec(answer)![1]);
    expect(port % 2).toBe(0);
    // Our RTP comes from the port we answered with, one stream, correctly numbered.
    const pk = peer.packets;
    expect(pk.every((p) => p.from.port === port && p.pt === 0 && p.payload.length === 160)).toBe(true);
    expect(new Set(pk.map((p) => p.ssrc)).size).toBe(1);
    expect(pk[0]!.marker).toBe(true);
    for (let i = 1; i < pk.length; i++) {
      expect((pk[i]!.seq - pk[i - 1]!.seq) & 0xffff).toBe(1);
      const dts = (pk[i]!.ts - pk[i - 1]!.ts) >>> 0;
      expect(dts % 160).toBe(0);
      // Within a talkspurt timestamps advance one frame per packet; a new talkspurt is marked.
      if (dts !== 160) expect(pk[i]!.marker).toBe(true);
    }
    // Paced, not burst: the packets span (roughly) their own duration in real time.
    const spanMs = pk[pk.length - 1]!.at - pk[0]!.at;
    expect(spanMs).toBeGreaterThan(pk.length * 20 * 0.5);
    // The caller's audio reached the server and the call record.
    expect(await metric(t, 'aybiza_rtp_packets_total', { direction: 'in', event: 'received' }) - before).toBeGreaterThan(50);
    const calls = await t.app.store.calls.list(null, 10);
    const rec = calls.items.find((c) => c.transport === 'sip');
    expect(rec).toBeDefined();
    await waitFor(() => t.app.sip!.calls.size === 0, 10_000, 'call torn down');
    // Jitter-buffer and loss figures are stored with the call.
    let stored: Record<string, unknown> | null = null;
    await waitFor(() => stored !== null || (void t.app.store.calls.findCall("sip", rec!.externalId).then((c) => (stored = c?.mediaStats ?? null)), false), 10_000, 'media stats stored');
    expect(stored).toMatchObject({ codec: 'pcmu', lost: 0 });
    expect((stored as unknown as { received: number }).received).toBeGreaterThan(50);
    // The per-call jitter-buffer report (issue 19): late, lost, concealed, delay, time-scale steps.
    for (const k of ['late', 'concealed', 'meanDelayMs', 'p95DelayMs', 'stretched', 'compressed', 'stretchedMs', 'compressedMs', 'driftPpm']) {
      expect(typeof (stored as unknown as Record<string, unknown>)[k]).toBe('number');
    }
  });

  it('SIPp\'s uac_pcap: a PCMA + telephone-event offer is answered PCMA, its 30 ms A-law audio and an RFC 4733 digit arrive', async () => {
    const digits: string[] = [];
    const before = await metric(inProcess, 'aybiza_rtp_packets_total', { direction: 'in', event: 'received' });
    const run = sipp(inProcess, 'sn:uac_pcap', { args: ['-mp', String(await freeSipPort())] });
    await waitFor(() => inProcess.app.sip!.calls.size === 1, 20_000, 'the call');
    const session = [...inProcess.app.sip!.calls.values()][0]!.session!;
    const dtmf = session.dtmf.bind(session);
    session.dtmf = (d: string) => {
      digits.push(d);
      dtmf(d);
    };
    const r = await run;
    expect(r.code, r.errors).toBe(0);
    expect(digits).toEqual(['1']);
    expect(await metric(inProcess, 'aybiza_rtp_packets_total', { direction: 'in', event: 'received' }) - before).toBeGreaterThan(200);
    const fs = await import('node:fs');
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    expect(log).toMatch(/SIP\/2\.0 200 OK[\s\S]*?m=audio \d+ RTP\/AVP 8 101/);
  });

  it('the same call over TCP', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp(t, 'uac_call.xml', { rtpPort, args: ['-t', 't1', '-d', '3000'] });
    peer.close();
    expect(r.code, r.errors).toBe(0);
    expect(peer.packets.length).toBeGreaterThan(0);
  });

  it('a delayed offer: our offer in the 200, the answer in the ACK, then RTP to the answer\'s address', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const run = sipp(t, 'uac_delayed_offer.xml', { rtpPort, args: ['-d', '3000'] });
    await waitFor(() => peer.packets.length > 0, 20_000, 'RTP after the ACK');
    peer.stream(speechFrames(50));
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const fs = await import('node:fs');
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    expect(log).toMatch(/SIP\/2\.0 200 OK[\s\S]*?m=audio \d+ RTP\/AVP 0 8 101/);
    expect(peer.packets.every((p) => p.pt === 0)).toBe(true);
  });

  it('retransmits the 200 OK over UDP until the ACK arrives', async () => {
    const uac = new RawUac(t);
    await uac.open();
    uac.invite('z9hG4bK-raw-2xx-1');
    await waitFor(() => uac.answers('1 INVITE').filter((m) => m.startsWith('SIP/2.0 200')).length >= 2, 10_000, 'the 200 sent twice (T1 = 500 ms)');
    uac.learnToTag(uac.answers('1 INVITE').find((m) => m.startsWith('SIP/2.0 200'))!);
    uac.send('ACK', 'z9hG4bK-raw-2xx-2', 1);
    uac.send('BYE', 'z9hG4bK-raw-2xx-3', 2);
    await waitFor(() => uac.answers('2 BYE').length > 0, 10_000, '200 to the BYE');
    expect(uac.answers('2 BYE')[0]).toMatch(/^SIP\/2\.0 200/);
    uac.close();
  });

  it('retransmits a non-2xx INVITE answer over UDP until the ACK (Timer G)', async () => {
    const uac = new RawUac({ sipPort: t.sipPort, number: '+19995550001' });
    await uac.open();
    uac.invite('z9hG4bK-raw-g-1');
    await waitFor(() => uac.answers('1 INVITE').filter((m) => m.startsWith('SIP/2.0 404')).length >= 2, 10_000, 'the 404 sent twice');
    uac.send('ACK', 'z9hG4bK-raw-g-1', 1);
    uac.close();
  });

  it('answers 420 with Unsupported when a request requires an extension', async () => {
    const uac = new RawUac(t);
    await uac.open();
    uac.sock.send([`OPTIONS sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=z9hG4bK-raw-420;rport`,
      'From: <sip:a@127.0.0.1>;tag=1', `To: <sip:${t.number}@127.0.0.1>`, 'Call-ID: raw-420@127.0.0.1', 'CSeq: 1 OPTIONS', 'Require: 100rel, foo',
      'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n'), t.sipPort, '127.0.0.1');
    await waitFor(() => uac.answers('1 OPTIONS').length > 0, 10_000, 'an answer');
    expect(uac.answers('1 OPTIONS')[0]).toMatch(/^SIP\/2\.0 420[\s\S]*^Unsupported: 100rel, foo\r$/m);
    uac.close();
  });

  it('SIP INFO DTMF (application/dtmf-relay) reaches the session as a digit', async () => {
    const uac = new RawUac(inProcess);
    await uac.open();
    uac.invite('z9hG4bK-raw-info-1');
    await waitFor(() => uac.answers('1 INVITE').some((m) => m.startsWith('SIP/2.0 200')), 10_000, '200 to the INVITE');
    uac.learnToTag(uac.answers('1 INVITE').find((m) => m.startsWith('SIP/2.0 200'))!);
    uac.send('ACK', 'z9hG4bK-raw-info-2', 1);
    await waitFor(() => inProcess.app.sip!.calls.size === 1, 10_000, 'the call');
    const session = [...inProcess.app.sip!.calls.values()][0]!.session!;
    const digits: string[] = [];
    session.dtmf = (d: string) => void digits.push(d);
    uac.send('INFO', 'z9hG4bK-raw-info-3', 2, 'Signal=7\r\nDuration=160\r\n', 'application/dtmf-relay');
    await waitFor(() => uac.answers('2 INFO').length > 0, 10_000, 'an answer to INFO');
    expect(uac.answers('2 INFO')[0]).toMatch(/^SIP\/2\.0 200/);
    expect(digits).toEqual(['7']);
    uac.send('BYE', 'z9hG4bK-raw-info-4', 3);
    await waitFor(() => uac.answers('3 BYE').length > 0, 10_000, '200 to the BYE');
    uac.close();
  });

  it('a BYE retransmitted after its 200 gets the same 200 again (Timer J), not 481', async () => {
    // SIPp takes an identical second 200 for a retransmission and hides it, so a raw caller.
    const uac = new RawUac(t);
    await uac.open();
    uac.invite('z9hG4bK-raw-j-1');
    await waitFor(() => uac.answers('1 INVITE').some((m) => m.startsWith('SIP/2.0 200')), 10_000, '200 to the INVITE');
    uac.learnToTag(uac.answers('1 INVITE').find((m) => m.startsWith('SIP/2.0 200'))!);
    uac.send('ACK', 'z9hG4bK-raw-j-2', 1);
    uac.send('BYE', 'z9hG4bK-raw-j-3', 2);
    await waitFor(() => uac.answers('2 BYE').length === 1, 10_000, '200 to the BYE');
    uac.send('BYE', 'z9hG4bK-raw-j-3', 2);
    await waitFor(() => uac.answers('2 BYE').length === 2, 10_000, 'an answer to the retransmitted BYE');
    expect(uac.answers('2 BYE').map((m) => m.slice(0, 14))).toEqual(['SIP/2.0 200 OK', 'SIP/2.0 200 OK']);
    uac.close();
  });

  it('sends BYE when the agent ends the call; the caller answers 200', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const run = sipp(inProcess, 'uac_server_bye.xml', { rtpPort });
    await waitFor(() => peer.packets.length > 0, 20_000, 'call media');
    const call = [...inProcess.app.sip!.calls.values()][0]!;
    await call.session!.end('agent ended the call');
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    expect(inProcess.app.sip!.calls.size).toBe(0);
  });

  it('hold and resume by re-INVITE: sendonly is answered recvonly, then sendrecv', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp(t, 'uac_hold.xml', { rtpPort });
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const fs = await import('node:fs');
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    const answers = [...log.matchAll(/SIP\/2\.0 200 OK[\s\S]*?a=(sendrecv|recvonly|sendonly|inactive)/g)].map((m) => m[1]);
    expect(answers.slice(0, 3)).toEqual(['sendrecv', 'recvonly', 'sendrecv']);
    const versions = [...log.matchAll(/SIP\/2\.0 200 OK[\s\S]*?o=aybiza \d+ (\d+)/g)].map((m) => Number(m[1]));
    expect(versions.slice(0, 3)).toEqual([1, 2, 3]);
  });

  it('transfer_call is a blind REFER where the trunk allows it; the carrier NOTIFYs and hangs up', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const run = sipp(inProcess, 'uac_refer.xml', { rtpPort });
    await waitFor(() => peer.packets.length > 0, 20_000, 'call media');
    const call = [...inProcess.app.sip!.calls.values()][0]!;
    expect(await call.transfer!('+15559998888')).toBe(true);
    const r = await run;
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const fs = await import('node:fs');
    const log = fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
    expect(log).toMatch(/^Refer-To: <sip:\+15559998888@127\.0\.0\.1>/m);
    await waitFor(() => inProcess.app.sip!.calls.size === 0, 10_000, 'call torn down');
  });

  it('ends a call whose RTP stops (media timeout) with BYE, and records why', async () => {
    const before = t.app.sip!.mediaTimeoutMs;
    t.app.sip!.mediaTimeoutMs = 1500;
    try {
      const r = await sipp(t, 'uac_server_bye.xml');
      expect(r.code, r.errors).toBe(0);
    } finally {
      t.app.sip!.mediaTimeoutMs = before;
    }
    // With WORKERS > 1 the worker carrying the media stores the end reason on its own
    // connection, which may land just after SIPp has seen the BYE.
    let stored = false;
    await waitFor(() => stored || (void t.app.store.calls.list(null, 50).then((calls) => (stored = calls.items.some((c) => c.transport === 'sip' && c.endReason === 'media timeout'))), false), 10_000, 'the end reason stored');
  });

  it('answers 503 with Retry-After when over capacity', async () => {
    const before = t.app.config.maxConcurrentCalls;
    t.app.config.maxConcurrentCalls = 0;
    try {
      const r = await sipp(t, 'uac_expect_503.xml');
      expect(r.code, r.errors).toBe(0);
    } finally {
      t.app.config.maxConcurrentCalls = before;
    }
  });

  it('refuses an unknown number with 404', async () => {
    const r = await sipp(t, 'uac_expect_404.xml', { service: '+19995550000' });
    expect(r.code, r.errors).toBe(0);
  });

  it('refuses a G.729-only offer with 488', async () => {
    const r = await sipp(t, 'uac_expect_488.xml');
    expect(r.code, r.errors).toBe(0);
  });

  it('CANCEL before the answer gets 200, and the INVITE 487', async () => {
    // Admission waits until the CANCEL has arrived, so the INVITE is surely still pending.
    const trunks = t.app.store.trunks;
    const lookup = trunks.trunksForAddress.bind(trunks);
    const cancels = () => metric(t, 'aybiza_sip_messages_total', { method: 'CANCEL', direction: 'in' });
    const before = await cancels();
    trunks.trunksForAddress = async (ip: string) => {
      let seen = false;
      let asking = false;
      await waitFor(() => {
        // One /metrics scrape at a time.
        if (!seen && !asking) {
          asking = true;
          void cancels().then((n) => {
            seen = n > before;
            asking = false;
          });
        }
        return seen;
      }, 20_000, 'CANCEL received');
      return lookup(ip);
    };
    const r = await sipp(t, 'uac_cancel.xml').finally(() => (trunks.trunksForAddress = lookup));
    expect(r.code, r.errors).toBe(0);
    // With AYBIZA_TEST_WORKERS > 1 the count comes from the media workers, a message later.
    await waitFor(() => t.app.sip!.calls.size === 0, 5000, 'no call left');
  });

  it('refuses a source outside every trunk with 403', async () => {
    const r = await sipp(t, 'uac_expect_403.xml', { localIp: '127.0.0.2' });
    expect(r.code, r.errors).toBe(0);
  });

  it('while draining, OPTIONS and new INVITEs get 503', async () => {
    void t.app.sip!.drain();
    expect((await sipp(t, 'options_draining.xml')).code).toBe(0);
    const r = await sipp(t, 'uac_expect_503.xml');
    expect(r.code, r.errors).toBe(0);
  });
});

describe('SIP trunk (digest credentials)', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp();
    await addTrunk(t, { allowedCidrs: [], username: 'trunkuser', password: 's3cret' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a digest-authenticated INVITE (MD5) is answered 200 and ends with BYE', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp(t, 'uac_auth_ok.xml', { rtpPort, args: ['-au', 'trunkuser', '-ap', 's3cret', '-d', '1500'] });
    peer.close();
    expect(r.code, r.errors).toBe(0);
  });

  it('a wrong password gets a fresh 401', async () => {
    const r = await sipp(t, 'uac_auth_wrong.xml', { args: ['-au', 'trunkuser', '-ap', 'wrong'] });
    expect(r.code, r.errors).toBe(0);
  });
});

describe('aybiza serve (npm start)', () => {
  it('serves SIP on SIP_PORT: OPTIONS → 200', async () => {
    const sipPort = await freeSipPort();
    const min = 20000 + 2 * Math.floor(Math.random() * 10000);
    const server = await spawnServer({ SIP_PORT: String(sipPort), SIP_HOST: '127.0.0.1', SIP_PUBLIC_IP: '127.0.0.1', RTP_PORT_MIN: String(min), RTP_PORT_MAX: String(min + 100) });
    try {
      expect(server.logs.some((l) => l.includes('"sip listening"') && l.includes(`"port":${sipPort}`))).toBe(true);
      const r = await sipp({ sipPort, number: '+15555550100' }, 'options.xml');
      expect(r.code, r.errors).toBe(0);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
