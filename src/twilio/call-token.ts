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
  /**
   * An outbound call (src/outbound/twilio.ts): our call id. The token is
   * issued before Twilio names the call, so it is bound to the call row; the
   * gateway checks the stream's CallSid against that row.
   */
  callId?: string;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' | 'wrong_call' | 'replayed' };

export class CallTokens {
  constructor(private readonly secret: string, private readonly state: SharedState, private readonly ttlMs = 60_000) {}

  private sign(payload: string): string {
    return crypto.createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  /** `outbound`: an outbound call's id, and how long it may ring before the stream starts (the token must outlive the ringing). */
  issue(callSid: string, to: string, from: string, outbound?: { callId: string; ttlMs: number }): string {
    const claims: TokenClaims = {
      callSid, to, from, exp: Date.now() + (outbound?.ttlMs ?? this.ttlMs), nonce: crypto.randomBytes(16).toString('base64url'),
      ...(outbound ? { callId: outbound.callId } : {}),
    };
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
    if (claims.callId === undefined ? claims.callSid !== callSid : typeof claims.callId !== 'string') return { ok: false, reason: 'wrong_call' };
    if (Date.now() > claims.exp) return { ok: false, reason: 'expired' };
    // Claimed for as long as the token could still be presented.
    if (!(await this.state.claimOnce(`calltoken:${claims.nonce}`, Math.max(this.ttlMs * 2, claims.exp - Date.now() + this.ttlMs)))) return { ok: false, reason: 'replayed' };
    return { ok: true, claims };
  }
}
