// The campaign routes of the admin API (mounted from src/api/routes.ts):
// create, add contacts (JSON or CSV), start/pause/cancel, read with counts.
import { HttpError, type Request } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { RouteSpec } from '../api/routes.js';
import { readScope, writeTenant } from '../api/auth.js';
import { body, check, limitParam } from '../api/validate.js';
import { isTimeZone } from './campaign-window.js';
import type { CampaignAction, CampaignSettings, NewContact } from './campaign-store.js';
import { CsvError, parseCsv } from './csv.js';
import * as S from './campaign-schemas.js';

const E164 = new RegExp(S.E164_PATTERN);

function invalid(reason: string, message: string): never {
  countBadInput('api', reason);
  throw new HttpError(422, reason === 'invalid_csv' ? 'invalid_csv' : 'invalid_field', message.length > 300 ? `${message.slice(0, 300)}…` : message);
}

/** Checks what JSON Schema cannot say: a zone this runtime knows, a window that is not empty. */
function checkSettings(s: CampaignSettings): void {
  if (!isTimeZone(s.window.timezone)) invalid('invalid_field', 'window.timezone: must be an IANA time zone, e.g. Europe/Paris');
  if (s.window.start === s.window.end) invalid('invalid_field', 'window.end: must differ from window.start');
  if (s.via === 'sip' && !s.trunkId) invalid('invalid_field', 'trunkId: is required with via "sip"');
}

/** A contact's variables: an object of at most MAX_VARIABLES strings with placeholder-safe names. */
function variables(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) invalid('invalid_field', `${where}: must be an object`);
  const entries = Object.entries(v);
  if (entries.length > S.MAX_VARIABLES) invalid('invalid_field', `${where}: at most ${S.MAX_VARIABLES} variables`);
  for (const [k, x] of entries) {
    if (!S.VARIABLE_NAME.test(k) || k === '__proto__') invalid('invalid_field', `${where}.${k.slice(0, 64)}: a name is letters, digits and _ (not starting with a digit), at most 64`);
    if (typeof x !== 'string') invalid('invalid_field', `${where}.${k}: must be a string`);
    if (x.length > S.MAX_VARIABLE_CHARS) invalid('invalid_field', `${where}.${k}: must have at most ${S.MAX_VARIABLE_CHARS} characters`);
  }
  // Own data properties only: Object.fromEntries never touches a prototype.
  return Object.fromEntries(entries) as Record<string, string>;
}

/** A CSV upload: a `to` column (any case) and one column per variable. */
export function contactsFromCsv(text: string): NewContact[] {
  let table;
  try {
    table = parseCsv(text, { maxRows: S.MAX_CONTACTS_PER_REQUEST, maxColumns: S.MAX_VARIABLES + 1, maxField: S.MAX_VARIABLE_CHARS });
  } catch (err) {
    if (err instanceof CsvError) invalid('invalid_csv', `csv ${err.message}`);
    throw err;
  }
  const names = table.header.map((h) => h.trim());
  const toAt = names.findIndex((h) => h.toLowerCase() === 'to');
  if (toAt < 0) invalid('invalid_csv', 'csv line 1: the header has no "to" column');
  const seen = new Set<string>();
  names.forEach((h, i) => {
    if (i === toAt) return;
    if (!S.VARIABLE_NAME.test(h) || h === '__proto__') invalid('invalid_csv', `csv line 1: column "${h.slice(0, 64)}" is not a variable name (letters, digits and _, not starting with a digit)`);
    if (seen.has(h)) invalid('invalid_csv', `csv line 1: column "${h}" appears twice`);
    seen.add(h);
  });
  return table.rows.map(({ line, fields }) => {
    const to = fields[toAt].trim();
    if (!E164.test(to)) invalid('invalid_csv', `csv line ${line}: "to" must be an E.164 number (+ and 7 to 15 digits)`);
    const vars: [string, string][] = [];
    fields.forEach((f, i) => i !== toAt && vars.push([names[i], f]));
    return vars.length ? { to, variables: Object.fromEntries(vars) } : { to };
  });
}

/** The contacts of a request: text/csv, or a JSON array of {to, variables?}. */
export function readContacts(req: Request): NewContact[] {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'text/csv') {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(req.body);
    return contactsFromCsv(text);
  }
  const value = req.json<unknown>();
  if (!Array.isArray(value)) {
    countBadInput('api', 'body_not_array');
    throw new HttpError(400, 'invalid_body', 'request body must be a JSON array of {"to", "variables"?} or text/csv');
  }
  check(S.contactsJson, value);
  return value.map((c: { to: string; variables?: unknown }, i) => {
    const vars = variables(c.variables, `[${i}].variables`);
    return vars ? { to: c.to, variables: vars } : { to: c.to };
  });
}

const action = (a: CampaignAction, summary: string): RouteSpec => ({
  method: 'POST', path: `/v1/campaigns/{id}/${a}`, summary, access: 'calls:write', status: 200,
  handler: async ({ req, p, cp }) => cp.campaigns.transition(p, readScope(p), req.params.id, a),
});

export const CAMPAIGN_ROUTES: RouteSpec[] = [
  {
    method: 'POST', path: '/v1/campaigns', summary: 'Create a campaign (draft: add contacts, then start)', access: 'calls:write', body: S.campaignCreate, status: 201,
    handler: async ({ req, p, cp }) => {
      const { tenantId, ...s } = body<CampaignSettings & { tenantId?: string }>(req, S.campaignCreate);
      checkSettings(s);
      return cp.campaigns.create(p, writeTenant(p, tenantId), s);
    },
  },
  {
    method: 'GET', path: '/v1/campaigns', summary: 'List campaigns with their counts, newest first', access: 'calls:read', status: 200, list: true,
    handler: async ({ req, p, cp }) => cp.campaigns.list(readScope(p), limitParam(req.query), req.query.get('cursor') ?? undefined),
  },
  {
    method: 'GET', path: '/v1/campaigns/{id}', summary: 'A campaign with its contacts counted per outcome', access: 'calls:read', status: 200,
    handler: async ({ req, p, cp }) => cp.campaigns.get(readScope(p), req.params.id),
  },
  {
    method: 'POST', path: '/v1/campaigns/{id}/contacts', summary: 'Add contacts (JSON array or text/csv with a "to" column); duplicates dropped', access: 'calls:write', body: S.contactsJson, status: 200,
    csv: { description: `RFC 4180: a header row with a "to" column (E.164) and one column per variable, then one row per contact; at most ${S.MAX_CONTACTS_PER_REQUEST} rows` },
    handler: async ({ req, p, cp }) => cp.campaigns.addContacts(p, readScope(p), req.params.id, readContacts(req)),
  },
  action('start', 'Start (or resume) dialling'),
  action('pause', 'Pause: no new dials; calls in progress go on'),
  action('cancel', 'Cancel: no more dials, ever; calls in progress go on'),
];
