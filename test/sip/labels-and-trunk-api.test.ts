// Issue 13, items 3 and 4 over the wire: SIP input cannot add metric series
// (method and code labels are a closed set), and the trunk API refuses CIDRs
// that admit the internet.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sipCodeLabel, sipMethodLabel } from '../../src/metrics/index.js';
import { addTrunk, startSipApp, type SipTestApp } from './helpers.js';

const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

describe('SIP metric labels and trunk CIDR rules', () => {
  let t: SipTestApp;
  beforeAll(async () => {
    t = await startSipApp({ ADMIN_API_KEY: ADMIN_KEY });
    await addTrunk(t, { allowedCidrs: ['127.0.0.1/32'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const series = async () => {
    const text = await (await fetch(`${t.base}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('aybiza_sip_messages_total{'));
  };

  it('maps methods and codes to a closed set', () => {
    expect(sipMethodLabel('INVITE')).toBe('INVITE');
    expect(sipMethodLabel('invite')).toBe('other');
    expect(sipMethodLabel('FOO123')).toBe('other');
    expect(sipMethodLabel(undefined)).toBe('other');
    expect(sipCodeLabel(486)).toBe('486');
    expect(sipCodeLabel('299')).toBe('other');
    expect(sipCodeLabel(undefined)).toBe('');
  });

  it('500 requests with random method tokens over UDP leave the aybiza_sip_messages_total series count bounded', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    let answered = 0;
    sock.on('message', () => answered++);
    try {
      for (let b = 0; b < 25; b++) {
        for (let i = 0; i < 20; i++) {
          const method = `X${crypto.randomBytes(6).toString('hex').toUpperCase()}`;
          const msg = [
            `${method} sip:${t.number}@127.0.0.1:${t.sipPort} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${crypto.randomBytes(8).toString('hex')};rport`,
            'Max-Forwards: 70', `From: <sip:a@127.0.0.1>;tag=${b}x${i}`, `To: <sip:${t.number}@127.0.0.1>`,
            `Call-ID: lbl-${b}-${i}@test`, `CSeq: 1 ${method}`, 'Content-Length: 0', '', '',
          ].join('\r\n');
          sock.send(msg, t.sipPort, '127.0.0.1');
        }
        // In batches, so the socket buffer does not drop what we mean to count.
        const want = (b + 1) * 20;
        for (let w = 0; w < 200 && answered < want; w++) await new Promise((r) => setTimeout(r, 10));
      }
      const lines = await series();
      expect(answered).toBeGreaterThanOrEqual(500);
      expect(lines.some((l) => l.includes('method="other"') && l.includes('direction="in"'))).toBe(true);
      // Every label value comes from the closed sets: 13 methods + other, 2 directions, known codes.
      expect(lines.length).toBeLessThan(30);
      for (const l of lines) expect(l).not.toMatch(/method="X[0-9A-F]{12}"/);
    } finally {
      sock.close();
    }
  });

  it('refuses /0 and broader-than-/8 blocks at create and update (422 naming the field) unless allowBroadCidr', async () => {
    const call = (method: string, path: string, body: unknown) =>
      fetch(`${t.base}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const create = (b: Record<string, unknown>) => call('POST', '/v1/sip-trunks', { name: 'x', tenantId: t.tenantId, ...b });

    let r = await create({ allowedCidrs: ['192.0.2.0/24', '0.0.0.0/0'] });
    expect(r.status).toBe(422);
    expect(JSON.stringify(await r.json())).toContain('allowedCidrs[1]');
    r = await create({ allowedCidrs: ['::/0'], allowBroadCidr: true });
    expect(r.status).toBe(422);
    r = await create({ allowedCidrs: ['10.0.0.0/7'] });
    expect(r.status).toBe(422);
    expect(JSON.stringify(await r.json())).toContain('allowBroadCidr');
    r = await create({ allowedCidrs: ['2001:db8::/31'] });
    expect(r.status).toBe(422);
    r = await create({ allowedCidrs: ['10.1.2.3/8'] });
    expect(r.status).toBe(422);

    r = await create({ allowedCidrs: ['10.0.0.0/7'], allowBroadCidr: true });
    expect(r.status).toBe(201);
    const broad = (await r.json()) as { id: string; allowBroadCidr: boolean };
    expect(broad.allowBroadCidr).toBe(true);
    // Turning the flag off re-checks the blocks already there.
    r = await call('PATCH', `/v1/sip-trunks/${broad.id}`, { allowBroadCidr: false });
    expect(r.status).toBe(422);
    expect(JSON.stringify(await r.json())).toContain('allowedCidrs[0]');
    r = await call('PATCH', `/v1/sip-trunks/${broad.id}`, { allowedCidrs: ['0.0.0.0/0'] });
    expect(r.status).toBe(422);
    r = await call('PATCH', `/v1/sip-trunks/${broad.id}`, { allowedCidrs: ['10.0.0.0/8'], allowBroadCidr: false });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { allowedCidrs: string[] }).allowedCidrs).toEqual(['10.0.0.0/8']);
  });
});
