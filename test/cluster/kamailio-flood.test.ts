// Kamailio's flood limit in deploy/kamailio/kamailio.cfg (pike): an address
// that is neither an Aybiza node nor in TRUSTED_LIST and sends more than
// PIKE_DENSITY requests in 2 s has the rest dropped unanswered, while a
// trusted carrier's address and other quiet addresses are answered in full.
// Kamailio answers OPTIONS addressed to itself, so no node is needed.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KAMAILIO, sipOptions, startKamailio, type Kamailio } from './cluster.js';

const haveKamailio = spawnSync('sh', ['-c', `command -v ${KAMAILIO}`]).status === 0;

/** Sends n OPTIONS to Kamailio from `from` as fast as it can; resolves with how many were answered 200. */
async function burst(port: number, from: string, n: number): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, from, () => r()));
  const local = sock.address().port;
  let answered = 0;
  sock.on('message', (m) => {
    if (m.toString().startsWith('SIP/2.0 200')) answered++;
  });
  for (let i = 0; i < n; i++) {
    const branch = `z9hG4bK${crypto.randomBytes(6).toString('hex')}`;
    sock.send([
      `OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP ${from}:${local};branch=${branch};rport`,
      `From: <sip:flood@${from}:${local}>;tag=${i}`, `To: <sip:127.0.0.1:${port}>`,
      `Call-ID: ${branch}@${from}`, 'CSeq: 1 OPTIONS', 'Max-Forwards: 70', 'Content-Length: 0', '', '',
    ].join('\r\n'), port, '127.0.0.1');
  }
  await new Promise((r) => setTimeout(r, 1000));
  sock.close();
  return answered;
}

describe.skipIf(!haveKamailio)('Kamailio flood limit (pike)', () => {
  let k: Kamailio;
  beforeAll(async () => {
    // The start-up probe comes from 127.0.0.1, so it is trusted here too.
    k = await startKamailio([], { trusted: ['127.0.0.1', '127.0.0.3'], pikeDensity: 20 });
  }, 30_000);
  afterAll(async () => {
    await k?.stop();
  });

  it('drops what one address sends beyond the limit; a trusted carrier and a quiet address are answered in full', async () => {
    const flooder = await burst(k.port, '127.0.0.2', 150);
    expect(flooder).toBeGreaterThan(0);
    expect(flooder).toBeLessThan(60);
    // Still blocked while it keeps sending.
    expect(await burst(k.port, '127.0.0.2', 20)).toBe(0);
    expect(await burst(k.port, '127.0.0.3', 150)).toBe(150);
    expect(await sipOptions(k.port, 2000, '127.0.0.4')).toBe(200);
    expect(k.logs.some((l) => /PIKE.*BLOCK.*127\.0\.0\.2/i.test(l))).toBe(true);
  });
});
