// Webhook signatures, Stripe's scheme (CONTRACT §7):
//   Aybiza-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
// keyed with the webhook's secret string (its UTF-8 bytes). The timestamp is
// inside the MAC so a captured delivery cannot be replayed later with a fresh
// t; the receiver checks it against its clock (./verify.ts).
import crypto from 'node:crypto';

export const SIGNATURE_HEADER = 'Aybiza-Signature';
export const EVENT_ID_HEADER = 'Aybiza-Event-Id';

/** Hex HMAC-SHA256 of "<t>.<body>" under `secret`. */
export function signatureHex(secret: string, t: number, body: string | Buffer): string {
  return crypto.createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
}

/** The Aybiza-Signature value for `body` sent at unix second `t`. */
export function signatureHeader(secret: string, body: string | Buffer, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${signatureHex(secret, t, body)}`;
}
