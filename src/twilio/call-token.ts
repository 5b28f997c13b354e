// Single-use, short-lived call tokens: issued with the TwiML, carried by
// <Parameter>, checked on the Media Stream's `start`. HMAC-signed so any node
// can verify one; single use is enforced through SharedState (Redis across nodes).
import crypto from 'node:crypto';
import type { SharedState } from '../store/state.js';

export interface TokenClaims {
  callSid: string;
  to: string;
  from: string;
  exp: number;
  nonce: string;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' | 'wrong_call' | 'replayed' };

export class CallTokens {
  constructor(private readonly secret: string, private readonly state: SharedState, private readonly ttlMs = 60_000) {}

  private sign(payload: string): string {
    return crypto.createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  issue(callSid: string, to: string, from: string): string {
    const claims: TokenClaims = { callSid, to, from, exp: Date.now() + this.ttlMs, nonce: crypto.randomBytes(16).toString('base64url') };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  async redeem(token: unknown, callSid: string): Promise<TokenCheck> {
    if (typeof token !== 'string' || token.length > 1024) return { ok: false, reason: 'malformed' };
    const [payload, sig, extra] = token.split('.');
    if (!payload || !sig || extra !== undefined) return { ok: false, reason: 'malformed' };
    const expected = Buffer.from(this.sign(payload));
    const got = Buffer.from(sig);
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) return { ok: false, reason: 'bad_signature' };
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as TokenClaims;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (claims.callSid !== callSid) return { ok: false, reason: 'wrong_call' };
    if (Date.now() > claims.exp) return { ok: false, reason: 'expired' };
    if (!(await this.state.claimOnce(`calltoken:${claims.nonce}`, this.ttlMs * 2))) return { ok: false, reason: 'replayed' };
    return { ok: true, claims };
  }
}
