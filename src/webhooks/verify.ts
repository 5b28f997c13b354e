// Verification of Aybiza webhook deliveries, for receivers (the package
// export `aybiza/webhooks`). Depends on node:crypto only.
//
//   import { verifyWebhook } from 'aybiza/webhooks';
//   const event = verifyWebhook(rawBody, req.headers['aybiza-signature'], process.env.AYBIZA_WEBHOOK_SECRET);
//
// The MAC must be computed over the raw body as received (not a re-serialised
// parse of it), compared in constant time, and the timestamp must be recent:
// a signature is valid for `toleranceS` (default 300 s) either side of now,
// so a captured delivery cannot be replayed later. Deliveries are
// at-least-once: deduplicate on event.id (also in the Aybiza-Event-Id header).
import crypto from 'node:crypto';
import { SIGNATURE_HEADER, signatureHex } from './sign.js';
import type { WebhookEvent } from './events.js';

export { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from './sign.js';
export { WEBHOOK_EVENTS, type WebhookEvent, type WebhookEventType } from './events.js';

export const DEFAULT_TOLERANCE_S = 300;

export interface VerifyOptions {
  /** Seconds a signature stays valid either side of now (default 300). */
  toleranceS?: number;
  /** Now, in unix seconds (tests). */
  now?: number;
}

/** Why a delivery did not verify; `code` is stable. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly code: 'AYB_ERR_WEBHOOK_NO_SIGNATURE' | 'AYB_ERR_WEBHOOK_BAD_SIGNATURE' | 'AYB_ERR_WEBHOOK_TIMESTAMP' | 'AYB_ERR_WEBHOOK_BODY',
    message: string,
  ) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

/** t and every v1 of a header value; several v1 are allowed (a receiver may hold more than one secret while rotating). */
function parseHeader(header: string): { t: number; v1: string[] } | null {
  let t = NaN;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) v1.push(v);
  }
  return Number.isFinite(t) && v1.length > 0 ? { t, v1 } : null;
}

function check(body: string | Buffer, header: string | string[] | undefined, secret: string, opts: VerifyOptions): void {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) throw new WebhookVerificationError('AYB_ERR_WEBHOOK_NO_SIGNATURE', `no ${SIGNATURE_HEADER} header`);
  const parsed = parseHeader(value);
  if (!parsed) throw new WebhookVerificationError('AYB_ERR_WEBHOOK_NO_SIGNATURE', `${SIGNATURE_HEADER} has no t= and v1= parts`);
  const expected = Buffer.from(signatureHex(secret, parsed.t, body), 'hex');
  // timingSafeEqual on equal-length buffers: how many bytes match does not show in the time taken.
  const ok = parsed.v1.some((v) => crypto.timingSafeEqual(Buffer.from(v, 'hex'), expected));
  if (!ok) throw new WebhookVerificationError('AYB_ERR_WEBHOOK_BAD_SIGNATURE', 'the signature does not match the body and secret');
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const tolerance = opts.toleranceS ?? DEFAULT_TOLERANCE_S;
  if (Math.abs(now - parsed.t) > tolerance) {
    throw new WebhookVerificationError('AYB_ERR_WEBHOOK_TIMESTAMP', `the signature's timestamp is more than ${tolerance} s from now`);
  }
}

/** Whether `header` is a valid, recent signature of the raw `body` under `secret`. */
export function verifySignature(body: string | Buffer, header: string | string[] | undefined, secret: string, opts: VerifyOptions = {}): boolean {
  try {
    check(body, header, secret, opts);
    return true;
  } catch (err) {
    if (err instanceof WebhookVerificationError) return false;
    throw err;
  }
}

/** Verifies a delivery and returns its event; throws WebhookVerificationError when it does not verify. */
export function verifyWebhook<D = Record<string, unknown>>(body: string | Buffer, header: string | string[] | undefined, secret: string, opts: VerifyOptions = {}): WebhookEvent<D> {
  check(body, header, secret, opts);
  let event: WebhookEvent<D>;
  try {
    event = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as WebhookEvent<D>;
  } catch {
    throw new WebhookVerificationError('AYB_ERR_WEBHOOK_BODY', 'the body is not JSON');
  }
  if (typeof event?.id !== 'string' || typeof event.type !== 'string') throw new WebhookVerificationError('AYB_ERR_WEBHOOK_BODY', 'the body is not an event');
  return event;
}
