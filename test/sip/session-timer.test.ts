// Session timers (RFC 4028, sip/session-timer.ts): the terms we answer, and
// calls against SIPp where the carrier refreshes (then stops: our BYE), where
// its interval is too small (422), and where we refresh (UPDATE, refused, then
// re-INVITE). The server's timer runs at 20 ms per second of interval, so a
// 90 s interval lasts 1.8 s.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetric } from '../helpers/app.js';
import { answerTimer, MAX_SE_S, termsFromAnswer } from '../../sip/session-timer.js';
import { addTrunk, RawUac, RtpPeer, sipp, startSipApp, waitFor, type SipTestApp, type SippResult } from './helpers.js';
import { RawSip, RtpEnd, sdp as rawSdp } from './raw-client.js';

const headers = (h: Record<string, string>) => ({ getHeader: (name: string) => h[name.toLowerCase()] });

describe('session timer terms (answerTimer)', () => {
  it('no Session-Expires, no timer, no headers', () => {
    expect(answerTimer(headers({ supported: 'timer' }), null)).toEqual({ status: 200, terms: null, headers: [] });
  });

  it('a caller that supports timers refreshes unless it names us; Require: timer when it refreshes', () => {
    expect(answerTimer(headers({ supported: 'replaces, timer', 'session-expires': '1800;refresher=uac' }), null)).toEqual({
      status: 200, terms: { intervalS: 1800, weRefresh: false }, headers: ['Session-Expires: 1800;refresher=uac', 'Require: timer'],
    });
    expect(answerTimer(headers({ supported: 'timer', 'session-expires': '1800' }), null)).toMatchObject({ terms: { weRefresh: false } });
    expect(answerTimer(headers({ k: 'timer', x: '600;refresher=uas' }), null)).toEqual({
      status: 200, terms: { intervalS: 600, weRefresh: true }, headers: ['Session-Expires: 600;refresher=uas'],
    });
  });

  it('a caller without timer support (a proxy added the header): we refresh, and a small interval is raised quietly', () => {
    expect(answerTimer(headers({ 'session-expires': '1800;refresher=uac' }), null)).toEqual({
      status: 200, terms: { intervalS: 1800, weRefresh: true }, headers: ['Session-Expires: 1800;refresher=uas'],
    });
    expect(answerTimer(headers({ 'session-expires': '30', 'min-se': '60' }), null)).toMatchObject({ status: 200, terms: { intervalS: 90 } });
  });

  it('too small for a caller that supports timers: 422 with the larger of our minimum and its Min-SE', () => {
    expect(answerTimer(headers({ supported: 'timer', 'session-expires': '60' }), null)).toEqual({ status: 422, reason: 'session_interval_too_small', headers: ['Min-SE: 90'] });
    expect(answerTimer(headers({ supported: 'timer', 'session-expires': '100', 'min-se': '120' }), null)).toMatchObject({ status: 422, headers: ['Min-SE: 120'] });
  });

  it('malformed headers are 400; a huge interval is shortened, never below the Min-SE', () => {
    for (const se of ['abc', '', '-5', '0', '90;refresher=me', '12345678901']) {
      expect(answerTimer(headers({ 'session-expires': se }), null)).toMatchObject({ status: 400, reason: 'bad_session_expires' });
    }
    expect(answerTimer(headers({ 'session-expires': '90', 'min-se': 'x' }), null)).toMatchObject({ status: 400, reason: 'bad_min_se' });
    expect(answerTimer(headers({ supported: 'timer', 'session-expires': '4294967295' }), null)).toMatchObject({ terms: { intervalS: MAX_SE_S } });
    expect(answerTimer(headers({ supported: 'timer', 'session-expires': '200000', 'min-se': '100000' }), null)).toMatchObject({ terms: { intervalS: 100000 } });
  });

  it('a refresh without Session-Expires keeps the interval and who refreshes', () => {
    expect(answerTimer(headers({ supported: 'timer' }), { intervalS: 600, weRefresh: true })).toMatchObject({ terms: { intervalS: 600, weRefresh: true } });
    expect(answerTimer(headers({ supported: 'timer' }), { intervalS: 600, weRefresh: false })).toMatchObject({ terms: { intervalS: 600, weRefresh: false } });
  });

  it('the 2xx to our request: refresher=uac names us; no Session-Expires, no timer', () => {
    expect(termsFromAnswer(headers({ 'session-expires': '90;refresher=uac' }))).toEqual({ intervalS: 90, weRefresh: true });
    expect(termsFromAnswer(headers({ 'session-expires': '1800;refresher=uas' }))).toEqual({ intervalS: 1800, weRefresh: false });
    expect(termsFromAnswer(headers({}))).toBeNull();
  });
});

describe('session timers on SIP calls (SIPp)', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp();
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
    t.app.sip!.timerMsPerSecond = 20;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const messages = (r: SippResult) => fs.readFileSync(`${r.dir}/${fs.readdirSync(r.dir).find((f) => f.endsWith('_messages.log'))}`, 'utf8');
  /** SIPp's message log as [direction, first line + headers] per message. */
  const sent = (log: string) => log.split(/-{20,}.*\n/).filter((m) => /\S/.test(m));
  const endReason = async (reason: string) => {
    // With WORKERS > 1 the worker carrying the media stores the end reason, perhaps just after SIPp finished.
    let stored = false;
    await waitFor(() => stored || (void t.app.store.calls.list(null, 50).then((calls) => (stored = calls.items.some((c) => c.transport === 'sip' && c.endReason === reason))), false), 10_000, `end reason "${reason}" stored`);
  };

  it('the carrier refreshes (UPDATE, re-INVITE), each refresh restarts the interval, then our BYE when it stops', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp(t, 'uac_timer_carrier_refreshes.xml', { rtpPort });
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const oks = sent(messages(r)).filter((m) => /^SIP\/2\.0 200 OK/m.test(m) && /^CSeq: \d+ (INVITE|UPDATE)/m.test(m));
    expect(oks.length).toBeGreaterThanOrEqual(3);
    for (const ok of oks) {
      expect(ok).toMatch(/^Session-Expires: 90;refresher=uac\r?$/m);
      expect(ok).toMatch(/^Require: timer\r?$/m);
      expect(ok).toMatch(/^Supported: timer\r?$/m);
    }
    await endReason('session timer expired');
  });

  it('an interval under 90 s from a caller that supports timers gets 422 with Min-SE: 90', async () => {
    const r = await sipp(t, 'uac_timer_too_small.xml');
    expect(r.code, r.errors).toBe(0);
    expect(messages(r)).toMatch(/SIP\/2\.0 422[^\n]*\n[\s\S]*?^Min-SE: 90\r?$/m);
  });

  it('we refresh where the caller does not support timers: UPDATE, then re-INVITE after a 501; a 200 without Session-Expires ends the timer', async () => {
    const peer = new RtpPeer();
    const rtpPort = await peer.open();
    const r = await sipp(t, 'uac_timer_we_refresh.xml', { rtpPort });
    peer.close();
    expect(r.code, r.errors).toBe(0);
    const log = sent(messages(r));
    const answer = log.find((m) => /^SIP\/2\.0 200 OK/m.test(m) && /^CSeq: 1 INVITE/m.test(m))!;
    expect(answer).toMatch(/^Session-Expires: 90;refresher=uas\r?$/m);
    expect(answer).not.toMatch(/^Require:/m);
    const update = log.find((m) => /^UPDATE /m.test(m))!;
    expect(update).toMatch(/^Session-Expires: 90;refresher=uac\r?$/m);
    // The re-INVITE repeats our description: same o= line as the 200's.
    const reinvite = log.find((m) => /^INVITE /m.test(m) && !/^From: "Test Caller"/m.test(m))!;
    expect(reinvite).toMatch(/^Session-Expires: 90;refresher=uac\r?$/m);
    expect(/^o=.*$/m.exec(reinvite)![0]).toBe(/^o=.*$/m.exec(answer)![0]);
    // Two refreshes by re-INVITE and no more (the second 200 had no Session-Expires); the caller's BYE ended it.
    expect(log.filter((m) => /^INVITE /m.test(m) && !/^From: "Test Caller"/m.test(m))).toHaveLength(2);
    await endReason('caller hung up');
  });

  it('Require: timer is accepted; other option tags still get 420 naming only those', async () => {
    const uac = new RawUac(t);
    await uac.open();
    uac.sock.send([`OPTIONS sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=z9hG4bK-raw-st1;rport`,
      'From: <sip:a@127.0.0.1>;tag=1', `To: <sip:${t.number}@127.0.0.1>`, 'Call-ID: raw-st@127.0.0.1', 'CSeq: 1 OPTIONS', 'Require: timer, 100rel',
      'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n'), t.sipPort, '127.0.0.1');
    uac.sock.send([`OPTIONS sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=z9hG4bK-raw-st2;rport`,
      'From: <sip:a@127.0.0.1>;tag=1', `To: <sip:${t.number}@127.0.0.1>`, 'Call-ID: raw-st@127.0.0.1', 'CSeq: 2 OPTIONS', 'Require: timer',
      'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n'), t.sipPort, '127.0.0.1');
    await waitFor(() => uac.answers('1 OPTIONS').length > 0 && uac.answers('2 OPTIONS').length > 0, 10_000, 'answers');
    expect(uac.answers('1 OPTIONS')[0]).toMatch(/^SIP\/2\.0 420[\s\S]*^Unsupported: 100rel\r$/m);
    expect(uac.answers('2 OPTIONS')[0]).toMatch(/^SIP\/2\.0 200[\s\S]*^Supported: timer\r$/m);
    uac.close();
  });

  it('a re-INVITE refused 422 for its interval leaves the media where it was', async () => {
    const c = new RawSip({ proto: 'udp', sipPort: t.sipPort, number: t.number });
    await c.open();
    const oldEnd = new RtpEnd();
    const newEnd = new RtpEnd();
    const { status } = await c.call(await oldEnd.open());
    await newEnd.open();
    expect(status).toBe(200);
    await waitFor(() => oldEnd.received > 0, 15_000, 'our RTP at the first port');
    c.send('INVITE', 2, { body: rawSdp(newEnd.port, 2), raw: (m) => m.replace('Max-Forwards: 70', 'Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 30') });
    expect((await c.final('2 INVITE')).slice(0, 11)).toBe('SIP/2.0 422');
    c.send('ACK', 2);
    const before = oldEnd.received;
    await waitFor(() => oldEnd.received > before + 10, 10_000, 'our RTP still at the first port');
    expect(newEnd.received).toBe(0);
    c.send('BYE', 3);
    await c.final('3 BYE');
    c.close();
    oldEnd.close();
    newEnd.close();
  });

  it('a malformed Session-Expires gets 400 and is counted', async () => {
    const before = await scrapeMetric(t.base, 'aybiza_bad_input_total', { source: 'sip', reason: 'bad_session_expires' });
    const uac = new RawUac(t);
    await uac.open();
    const lines = [`INVITE sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${uac.port};branch=z9hG4bK-raw-st3;rport`,
      'From: <sip:a@127.0.0.1>;tag=1', `To: <sip:${t.number}@127.0.0.1>`, 'Call-ID: raw-st3@127.0.0.1', 'CSeq: 1 INVITE', 'Session-Expires: soon',
      `Contact: <sip:a@127.0.0.1:${uac.port}>`, 'Max-Forwards: 70', 'Content-Length: 0', '', ''];
    uac.sock.send(lines.join('\r\n'), t.sipPort, '127.0.0.1');
    await waitFor(() => uac.answers('1 INVITE').some((m) => !m.startsWith('SIP/2.0 100')), 10_000, 'a final answer');
    expect(uac.answers('1 INVITE').find((m) => !m.startsWith('SIP/2.0 100'))).toMatch(/^SIP\/2\.0 400/);
    expect(await scrapeMetric(t.base, 'aybiza_bad_input_total', { source: 'sip', reason: 'bad_session_expires' })).toBe(before + 1);
    uac.close();
  });
});
