// Found by `aybiza fuzz`: sip.js's grammar costs ~2 µs per byte of header it
// parses, so a few dozen large datagrams a second (12 KB of `;p=x`
// parameters each) stalled the event loop, and every call on it, for over a
// second. Messages whose headers exceed 8 KiB or 256 parameters are now
// dropped and counted before any parsing; a long but valid request (RFC 4475
// longreq, ~5 KB) is still answered.
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics/index.js';
import { addTrunk, startSipApp, waitFor, type SipTestApp } from '../sip/helpers.js';

async function badInput(reason: string): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_bad_input_total')?.get())?.values ?? [];
  return m.filter((v) => v.labels.source === 'sip' && v.labels.reason === reason).reduce((a, v) => a + v.value, 0);
}

describe('SIP messages too costly to parse', () => {
  let t: SipTestApp;
  let sock: dgram.Socket;
  const got: string[] = [];
  beforeAll(async () => {
    t = await startSipApp();
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
    sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    sock.on('message', (m) => got.push(m.toString('latin1')));
  });
  afterAll(async () => {
    sock?.close();
    await t?.stop();
  });

  const options = (id: string, from: string, extra: string[] = []) => [
    `OPTIONS sip:x@127.0.0.1:${t.sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK-${id};rport`,
    from, 'To: <sip:c@127.0.0.1>', `Call-ID: ${id}@127.0.0.1`, 'CSeq: 1 OPTIONS', 'Max-Forwards: 70', ...extra, 'Content-Length: 0', '', '',
  ].join('\r\n');
  const answered = (id: string) => got.some((a) => a.startsWith('SIP/2.0 ') && a.includes(`${id}@127.0.0.1`));

  it('drops and counts headers over 8 KiB or 256 parameters, without answering them', async () => {
    const large0 = await badInput('headers_too_large');
    const params0 = await badInput('too_many_params');
    for (let i = 0; i < 5; i++) sock.send(options(`large${i}`, 'From: <sip:a@b>;tag=1;' + 'p=x;'.repeat(3000)), t.sipPort, '127.0.0.1');
    for (let i = 0; i < 5; i++) sock.send(options(`params${i}`, 'From: <sip:a@b>;tag=1;' + 'p;'.repeat(400)), t.sipPort, '127.0.0.1');
    let large = large0;
    let params = params0;
    await waitFor(() => (void badInput('headers_too_large').then((v) => (large = v)), void badInput('too_many_params').then((v) => (params = v)), large >= large0 + 5 && params >= params0 + 5), 10_000, 'the costly messages counted');
    // A cheap message sent after them is answered; the costly ones never were.
    sock.send(options('ping', 'From: <sip:a@b>;tag=1'), t.sipPort, '127.0.0.1');
    await waitFor(() => answered('ping'), 10_000, 'the ping answered');
    for (let i = 0; i < 5; i++) {
      expect(answered(`large${i}`)).toBe(false);
      expect(answered(`params${i}`)).toBe(false);
    }
  });

  it('still answers a long but valid request (RFC 4475 longreq, ~5 KB of headers)', async () => {
    const raw = fs.readFileSync(path.resolve(__dirname, '../../bench/fuzz/rfc4475/longreq.sip'), 'latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    expect(head.length).toBeGreaterThan(4000);
    // As an OPTIONS from us, so the answer comes back here.
    const long = head.split('\r\n').filter((l) => /^(To|F|Unknown-)/.test(l));
    sock.send(options('longreq', long.find((l) => l.startsWith('F:'))!.replace(/^F:/, 'From:'), long.filter((l) => !l.startsWith('F:'))), t.sipPort, '127.0.0.1');
    await waitFor(() => answered('longreq'), 10_000, 'the long request answered');
  });
});
