// Where transfer_call may send a caller: only to the agent's configured
// `transfer.targets`. The target comes from the model, which a caller can
// talk into dialling anything (an international premium number, a SIP URI
// on someone else's PBX), so it is matched against an allowlist the tenant
// wrote; no targets configured means no transfers.
//
// A pattern is an E.164 number (`+14155550123`), an E.164 prefix ending in
// `*` (`+1415555*`), a SIP URI (`sip:frontdesk@pbx.example.com`) or a SIP URI
// whose user part is `*` or ends in `*` (`sip:*@pbx.example.com`,
// `sip:sales-*@pbx.example.com`). The host of a SIP pattern is never a
// wildcard: the tenant names the PBX.

const USER = "[A-Za-z0-9._~+!$&'()=,%-]";
const HOST = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]{2,45}\\])(?::[0-9]{1,5})?';

/** JSON Schema `pattern` of one `transfer.targets` entry (also used by src/api/schemas.ts). */
export const TRANSFER_TARGET_PATTERN =
  `^(?:\\+[1-9][0-9]{6,14}|\\+[1-9][0-9]{0,13}\\*|sips?:(?:\\*|${USER}{1,64}\\*?)@${HOST})$`;

const PATTERN = new RegExp(TRANSFER_TARGET_PATTERN, 'u');
const E164 = /^\+[1-9][0-9]{6,14}$/;
const SIP_URI = new RegExp(`^(sips?):(${USER}{1,64})@(${HOST})$`, 'iu');

export function validTransferPattern(p: string): boolean {
  return PATTERN.test(p);
}

/**
 * The model's target in canonical form: a phone number without its
 * formatting (`+1 (415) 555-0123` → `+14155550123`, `tel:` dropped), a SIP
 * URI with its scheme and host lower-cased. null when it is neither (no
 * parameters or headers in a SIP URI, no number without its country code).
 */
export function normalizeTarget(raw: string): string | null {
  let t = raw.trim();
  if (/^tel:/i.test(t)) t = t.slice(4);
  if (/^\+[0-9 ().-]+$/.test(t)) {
    const n = t.replace(/[ ().-]/g, '');
    return E164.test(n) ? n : null;
  }
  const m = SIP_URI.exec(t);
  if (!m) return null;
  return `${m[1].toLowerCase()}:${m[2]}@${m[3].toLowerCase()}`;
}

const SIP_PATTERN = new RegExp(`^(sips?):(\\*|${USER}{1,64}\\*?)@(${HOST})$`, 'iu');

function matches(pattern: string, target: string): boolean {
  if (pattern.startsWith('+')) {
    if (!target.startsWith('+')) return false;
    return pattern.endsWith('*') ? target.startsWith(pattern.slice(0, -1)) : target === pattern;
  }
  const p = SIP_PATTERN.exec(pattern);
  const t = SIP_URI.exec(target);
  if (!p || !t) return false;
  const [, pScheme, pUser, pHost] = p;
  const [, tScheme, tUser, tHost] = t;
  if (pScheme.toLowerCase() !== tScheme || pHost.toLowerCase() !== tHost) return false;
  // The user part of a SIP URI is case-sensitive (RFC 3261 §19.1.4).
  return pUser.endsWith('*') ? tUser.startsWith(pUser.slice(0, -1)) : tUser === pUser;
}

export type TransferDecision = { allowed: true; target: string } | { allowed: false; reason: 'no_targets' | 'malformed' | 'not_allowed' };

/** Decides one transfer_call: allowed only onto a configured target. */
export function decideTransfer(targets: readonly string[] | undefined, raw: string): TransferDecision {
  if (!targets || targets.length === 0) return { allowed: false, reason: 'no_targets' };
  const target = normalizeTarget(raw);
  if (!target) return { allowed: false, reason: 'malformed' };
  return targets.some((p) => validTransferPattern(p) && matches(p, target)) ? { allowed: true, target } : { allowed: false, reason: 'not_allowed' };
}

/** For logs: enough to see where a refused transfer was headed (country code, PBX), not the full number. */
export function maskTarget(raw: string): string {
  const t = normalizeTarget(raw) ?? raw.trim().slice(0, 64);
  const at = t.indexOf('@');
  if (at >= 0) return `****${t.slice(at)}`;
  return t.length > 5 ? `${t.slice(0, 5)}…(${t.length})` : '****';
}
