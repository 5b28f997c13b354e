// Trunk admission for a new INVITE: who may call, which agent answers
// (dialled number → agent). The dialled number's tenant decides which trunks
// apply: a source in one of that tenant's trunk CIDRs, else a valid digest
// for one of that tenant's credential trunks. A trunk of one tenant never
// reaches another tenant's numbers, and never stops them being challenged.
//
// What an outsider learns (the ordering is deliberate):
// - A source in no trunk's CIDR and without a valid digest gets 401 (when any
//   trunk has credentials) or 403 before the number is even looked up: it
//   learns nothing about which numbers exist, and its flood costs no query.
// - A caller that is someone (a CIDR match or a valid digest) but not for the
//   number's tenant gets the same answer whether the number is unknown or
//   another tenant's: 401 when it has no valid digest and credentials exist
//   anywhere (so tenant B's credential trunk can still authenticate from a
//   shared carrier block that tenant A allows), else 404.
// Trunks come from the in-memory TrunkIndex (src/store/trunks.ts): no
// database query per INVITE.
import { countBadInput } from '../src/metrics/index.js';
import type { ControlPlane } from '../src/store/index.js';
import type { ResolvedAgent, SipTrunkSecrets } from '../src/store/types.js';
import { DigestAuth, parseAuthorization, type DigestCredentials, type DigestVerdict } from './digest.js';

export type Admission =
  | { ok: true; trunk: SipTrunkSecrets; agent: ResolvedAgent; number: string }
  | { ok: false; status: number; reason: string; headers?: string[] };

export interface AdmissionRequest {
  sourceIp: string;
  method: string;
  /** The Request-URI as received (the digest `uri` must equal it). */
  requestUri: string;
  /** Request-URI user, else the To user. */
  dialled: string;
  authorization: string | undefined;
}

export class Admitter {
  readonly digest: DigestAuth;

  constructor(private readonly store: ControlPlane, realm: string) {
    this.digest = new DigestAuth(realm, {
      key: () => store.trunks.nonceKey(),
      claimOnce: (key, ttlMs) => store.state.claimOnce(key, ttlMs),
    });
  }

  async admit(r: AdmissionRequest): Promise<Admission> {
    const byAddress = await this.store.trunks.trunksForAddress(r.sourceIp);
    const index = await this.store.trunks.index();
    const creds = parseAuthorization(r.authorization);
    if (r.authorization && !creds) countBadInput('sip', 'bad_authorization');
    let authed: SipTrunkSecrets | null = null;

    const checkDigest = async (c: DigestCredentials): Promise<Admission | null> => {
      const trunk = index.forUsername(c.username);
      const ha1 = trunk ? (c.algorithm === 'MD5' ? trunk.ha1Md5 : trunk.ha1Sha256) : null;
      const v = await this.digest.verify(r.method, r.requestUri, c, ha1);
      if (v === 'ok') {
        authed = trunk;
        return null;
      }
      return this.refused(v);
    };

    if (byAddress.length === 0) {
      // Nobody we know: answer before looking at the number.
      if (!creds) {
        if (!index.anyCredentials) return { ok: false, status: 403, reason: 'source_not_allowed' };
        return this.challenge(false, r.authorization ? 'bad_authorization' : 'no_credentials');
      }
      const refused = await checkDigest(creds);
      if (refused) return refused;
    }

    const number = normaliseNumber(r.dialled);
    const agent = number ? await this.store.resolver.resolveNumber(number) : null;
    const tenantId = agent?.tenantId;
    const viaCidr = tenantId ? byAddress.find((t) => t.tenantId === tenantId) : undefined;
    if (viaCidr && agent && number) return { ok: true, trunk: viaCidr, agent, number };
    // A known source, but not for this number's tenant: that tenant's credentials may still admit it.
    if (!authed && creds && byAddress.length > 0) {
      const refused = await checkDigest(creds);
      if (refused) return refused;
    }
    const viaDigest = authed as SipTrunkSecrets | null;
    if (viaDigest && agent && number && viaDigest.tenantId === agent.tenantId) return { ok: true, trunk: viaDigest, agent, number };
    // Same answer for an unknown number and another tenant's: nothing leaks.
    if (!viaDigest && index.anyCredentials) return this.challenge(false, 'not_allowed_for_number');
    return { ok: false, status: 404, reason: 'unknown_number' };
  }

  private async refused(v: Exclude<DigestVerdict, 'ok'>): Promise<Admission> {
    if (v === 'invalid') {
      countBadInput('sip', 'digest_failed');
      return this.challenge(false, 'digest_failed');
    }
    if (v === 'replay') countBadInput('sip', 'digest_replay');
    // stale=true: the client retries with the fresh nonce without asking anyone for a password.
    return this.challenge(true, v === 'stale' ? 'stale_nonce' : 'digest_replay');
  }

  private async challenge(stale: boolean, reason: string): Promise<Admission> {
    return { ok: false, status: 401, reason, headers: (await this.digest.challenge(stale)).map((v) => `WWW-Authenticate: ${v}`) };
  }
}

/** "+15557654321", "15557654321" or "tel-ish" user parts → E.164, else null. */
export function normaliseNumber(user: string): string | null {
  const digits = user.replace(/[\s().-]/g, '');
  if (/^\+[1-9]\d{6,14}$/.test(digits)) return digits;
  if (/^[1-9]\d{6,14}$/.test(digits)) return '+' + digits;
  return null;
}
