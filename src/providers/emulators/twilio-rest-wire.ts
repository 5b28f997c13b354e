// The Twilio REST API's wire details the emulator (twilio-rest.ts) needs:
// its error (an HTTP status with {code, message, more_info, status}) and
// form bodies as `twilio` sends them (repeated keys for arrays).
import crypto from 'node:crypto';

/** A Twilio REST error: {code, message, more_info, status} with the same HTTP status. */
export class RestError extends Error {
  constructor(readonly status: number, readonly code: number, message: string) {
    super(message);
  }
}

/** application/x-www-form-urlencoded with repeated keys as arrays (the SDK's arrayFormat 'repeat'). */
export function parseForm(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of new URLSearchParams(raw)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? (prev.length < 100 ? [...prev, v] : prev) : [prev, v];
  }
  return out;
}

export function one(p: Record<string, string | string[]>, key: string): string | undefined {
  const v = p[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

export function all(p: Record<string, string | string[]>, key: string): string[] {
  const v = p[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

