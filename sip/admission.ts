// Trunk admission for a new INVITE: who may call (source address in a trunk's
// allowedCidrs, or a valid digest against a trunk's credentials), which agent
// answers (dialled number → agent), and whether there is room. The trunk must
// belong to the number's tenant: one tenant's trunk never reaches another
// tenant's numbers (and learns nothing about them: 404, as in the admin API).
import { countBadInput } from '../src/metrics/index.js';
import type { ControlPlane } from '../src/store/index.js';
import type { ResolvedAgent, SipTrunkSecrets } from '../src/store/types.js';
import { DigestAuth, parseAuthorization } from './digest.js';

export type Admission =
  | { ok: true; trunk: SipTrunkSecrets; agent: ResolvedAgent; number: string }
  | { ok: false; status: number; reason: string; headers?: string[] };

export interface AdmissionRequest {
  sourceIp: string;
  method: string;
  /** Request-URI user, else the To user. */
  dialled: string;
  authorization: string | undefined;
}

const CREDENTIALS_CACHE_MS = 5000;

export class Admitter {
  readonly digest: DigestAuth;
  private credentialTrunks: { at: number; value: boolean } | null = null;

  constructor(private readonly store: ControlPlane, realm: string) {
    this.digest = new DigestAuth(realm);
  }

  async admit(r: AdmissionRequest): Promise<Admission> {
    const byAddress = await this.store.trunks.trunksForAddress(r.sourceIp);
    let authed: SipTrunkSecrets | null = null;
    if (byAddress.length === 0) {
      const creds = parseAuthorization(r.authorization);
      if (!creds) {
        if (r.authorization) countBadInput('sip', 'bad_authorization');
        // Nobody to challenge for: refusing is the honest answer.
        if (!(await this.anyCredentials())) return { ok: false, status: 403, reason: 'source_not_allowed' };
        return this.challenge(false, r.authorization ? 'bad_authorization' : 'no_credentials');
      }
      const trunk = await this.store.trunks.trunkForUsername(creds.username);
      const ha1 = trunk ? (creds.algorithm === 'MD5' ? trunk.ha1Md5 : trunk.ha1Sha256) : null;
      const v = this.digest.verify(r.method, creds, ha1);
      if (v !== 'ok') {
        if (v === 'invalid') countBadInput('sip', 'digest_failed');
        return this.challenge(v === 'stale', v === 'stale' ? 'stale_nonce' : 'digest_failed');
      }
      authed = trunk;
    }
    const number = normaliseNumber(r.dialled);
    const agent = number ? await this.store.resolver.resolveNumber(number) : null;
    if (!agent || !number) return { ok: false, status: 404, reason: 'unknown_number' };
    const trunk = authed ?? byAddress.find((t) => t.tenantId === agent.tenantId);
    if (!trunk || trunk.tenantId !== agent.tenantId) return { ok: false, status: 404, reason: 'unknown_number' };
    return { ok: true, trunk, agent, number };
  }

  private challenge(stale: boolean, reason: string): Admission {
    return { ok: false, status: 401, reason, headers: this.digest.challenge(stale).map((v) => `WWW-Authenticate: ${v}`) };
  }

  private async anyCredentials(): Promise<boolean> {
    const now = Date.now();
    if (!this.credentialTrunks || now - this.credentialTrunks.at > CREDENTIALS_CACHE_MS) {
      this.credentialTrunks = { at: now, value: await this.store.trunks.hasCredentialTrunks() };
    }
    return this.credentialTrunks.value;
  }
}

/** "+15557654321", "15557654321" or "tel-ish" user parts → E.164, else null. */
export function normaliseNumber(user: string): string | null {
  const digits = user.replace(/[\s().-]/g, '');
  if (/^\+[1-9]\d{6,14}$/.test(digits)) return digits;
  if (/^[1-9]\d{6,14}$/.test(digits)) return '+' + digits;
  return null;
}
