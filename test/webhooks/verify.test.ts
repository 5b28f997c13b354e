// Signatures as receivers check them (the `aybiza/webhooks` export) and the
// retry schedule: first retry within a minute, exponential, given up at 24 h.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signatureHeader } from '../../src/webhooks/sign.js';
import { verifySignature, verifyWebhook, WebhookVerificationError } from '../../src/webhooks/verify.js';
import { DEFAULT_RETRY_SCHEDULE, nextRetryDelay } from '../../src/webhooks/retry.js';

const SECRET = 'whsec_test-secret-of-some-length';
const body = JSON.stringify({ id: 'evt_1', type: 'call.ended', createdAt: '2026-12-01T00:00:00.000Z', data: { callId: 'call_1' } });

describe('webhook signatures', () => {
  it('is the hex HMAC-SHA256 of "<t>.<body>" under the secret, Stripe style', () => {
    const h = signatureHeader(SECRET, body, 1764547200);
    const expected = crypto.createHmac('sha256', SECRET).update(`1764547200.${body}`).digest('hex');
    expect(h).toBe(`t=1764547200,v1=${expected}`);
  });

  it('verifies a fresh signature and returns the event', () => {
    const h = signatureHeader(SECRET, body);
    expect(verifySignature(body, h, SECRET)).toBe(true);
    expect(verifySignature(Buffer.from(body), h, SECRET)).toBe(true);
    expect(verifyWebhook(body, h, SECRET)).toMatchObject({ id: 'evt_1', type: 'call.ended', data: { callId: 'call_1' } });
  });

  it('refuses another body, another secret, a missing or malformed header', () => {
    const h = signatureHeader(SECRET, body);
    expect(verifySignature(body.replace('call_1', 'call_2'), h, SECRET)).toBe(false);
    expect(verifySignature(`${body} `, h, SECRET)).toBe(false); // re-serialised bodies do not verify: use the raw bytes
    expect(verifySignature(body, h, `${SECRET}x`)).toBe(false);
    expect(verifySignature(body, undefined, SECRET)).toBe(false);
    expect(verifySignature(body, 't=abc,v1=zz', SECRET)).toBe(false);
    expect(verifySignature(body, h.replace(/v1=[0-9a-f]{4}/, 'v1=0000'), SECRET)).toBe(false);
    expect(() => verifyWebhook(body, h, 'wrong-secret-0123456789')).toThrow(WebhookVerificationError);
    try {
      verifyWebhook(body, undefined, SECRET);
    } catch (err) {
      expect((err as WebhookVerificationError).code).toBe('AYB_ERR_WEBHOOK_NO_SIGNATURE');
    }
  });

  it('refuses a replay outside the timestamp tolerance, either side', () => {
    const now = 1764547200;
    const old = signatureHeader(SECRET, body, now - 301);
    expect(verifySignature(body, old, SECRET, { now })).toBe(false);
    expect(verifySignature(body, signatureHeader(SECRET, body, now + 301), SECRET, { now })).toBe(false);
    expect(verifySignature(body, signatureHeader(SECRET, body, now - 299), SECRET, { now })).toBe(true);
    expect(verifySignature(body, old, SECRET, { now, toleranceS: 600 })).toBe(true);
    try {
      verifyWebhook(body, old, SECRET, { now });
    } catch (err) {
      expect((err as WebhookVerificationError).code).toBe('AYB_ERR_WEBHOOK_TIMESTAMP');
    }
  });

  it('accepts any of several v1 values (a receiver rotating secrets)', () => {
    const t = Math.floor(Date.now() / 1000);
    const other = signatureHeader('another-secret-0123456789', body, t).split(',')[1];
    const mine = signatureHeader(SECRET, body, t).split(',')[1];
    expect(verifySignature(body, `t=${t},${other},${mine}`, SECRET)).toBe(true);
  });
});

describe('retry schedule', () => {
  it('retries first within 60 s, then backs off exponentially, and gives up at 24 h', () => {
    const offsets: number[] = [0];
    for (let attempts = 1; ; attempts++) {
      const d = nextRetryDelay(DEFAULT_RETRY_SCHEDULE, attempts);
      if (d === null) break;
      offsets.push(offsets[offsets.length - 1] + d);
    }
    const s = (ms: number) => ms / 1000;
    expect(s(offsets[1])).toBeLessThanOrEqual(60);
    expect(offsets.map(s)).toEqual([0, 30, 150, 630, 2550, 10230, 39030, 67830, 86400]);
    // Each wait is the previous times four until the 8 h cap.
    const waits = offsets.slice(1).map((o, i) => o - offsets[i]);
    expect(waits.slice(0, 5)).toEqual([30_000, 120_000, 480_000, 1_920_000, 7_680_000]);
    expect(offsets[offsets.length - 1]).toBe(24 * 3600_000);
  });
});
