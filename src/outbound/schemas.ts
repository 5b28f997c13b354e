// Request bodies of the outbound API (src/outbound/api.ts): one call, the
// do-not-call list, a tenant's outbound settings. Ajv enforces them and the
// OpenAPI document renders them. Variables and metadata are open objects
// here; their bounds are checked by the handler (variables.ts).
import type { Schema } from '../api/validate.js';
import { MAX_VARIABLES, MAX_VARIABLE_VALUE } from './variables.js';

export const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';
/** Serialized size of a call's metadata (stored with the call, returned as given). */
export const MAX_METADATA_CHARS = 4096;
export const MAX_DNC_PER_REQUEST = 1000;

const id = (description: string): Schema => ({ type: 'string', minLength: 1, maxLength: 64, description });

export const callCreate: Schema = {
  type: 'object',
  required: ['agentId', 'to', 'from', 'via'],
  additionalProperties: false,
  properties: {
    tenantId: id('required with a platform-admin key'),
    agentId: id('the agent that speaks on the call (its live version)'),
    to: { type: 'string', pattern: E164_PATTERN, description: 'callee, E.164; checked against the tenant\'s outbound.allowedCountries, do-not-call list and daily cap (422 destination_not_allowed | dnc | daily_cap)' },
    from: { type: 'string', pattern: E164_PATTERN, description: 'caller id, E.164 (a number the carrier lets you present)' },
    via: { type: 'string', enum: ['twilio', 'sip'] },
    trunkId: id('SIP trunk with an outbound target (via sip)'),
    amd: { type: 'string', enum: ['off', 'detect', 'detect_message_end'], description: 'answering-machine detection: detect reports as soon as it classifies; detect_message_end reports a machine at the end of its greeting. Default off' },
    voicemail: {
      type: 'object',
      required: ['message'],
      additionalProperties: false,
      description: 'with amd: on a machine, wait for the beep (or the end of the greeting), speak the message in the agent\'s voice, hang up',
      properties: { message: { type: 'string', minLength: 1, maxLength: 2000 } },
    },
    variables: { type: 'object', description: `fill {{name}} placeholders in the agent's prompt and greeting for this call: at most ${MAX_VARIABLES} string values of at most ${MAX_VARIABLE_VALUE} characters; names are a letter or _ then letters, digits, _` },
    metadata: { type: 'object', description: `yours, stored with the call and returned as given (at most ${MAX_METADATA_CHARS} characters as JSON)` },
  },
};

export const dncAdd: Schema = {
  type: 'object',
  required: ['numbers'],
  additionalProperties: false,
  properties: {
    tenantId: id('required with a platform-admin key'),
    numbers: { type: 'array', minItems: 1, maxItems: MAX_DNC_PER_REQUEST, items: { type: 'string', pattern: E164_PATTERN }, description: 'E.164 numbers never to dial (already listed ones are kept as they are)' },
  },
};

export const tenantOutbound: Schema = {
  type: 'object',
  additionalProperties: false,
  description: 'outbound guards: countries the tenant may dial (none: outbound off) and dials per UTC day',
  properties: {
    allowedCountries: { type: 'array', maxItems: 250, items: { type: 'string', pattern: '^[A-Z]{2}$' }, description: 'ISO 3166 alpha-2 codes, e.g. ["US","CA"]; default none (outbound off)' },
    dailyCap: { type: 'integer', minimum: 0, maximum: 10_000_000, description: 'dials per tenant per UTC day (default 1000); 0 stops outbound' },
  },
};

export const tenantPatch: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    maxConcurrentCalls: { type: 'integer', minimum: 1, maximum: 100000, description: 'per-tenant concurrent call limit' },
    outbound: tenantOutbound,
    recordingRetentionDays: { type: 'integer', minimum: 0, maximum: 36500, description: 'days call recordings are kept, then deleted by the sweeper; 0: kept until deleted (the default)' },
  },
};
