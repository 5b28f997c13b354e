// Request bodies of the campaign API (src/outbound/campaign-api.ts), as JSON
// Schema: Ajv enforces them and the OpenAPI document renders them.
import type { Schema } from '../api/validate.js';
import { END_PATTERN, START_PATTERN, WEEKDAYS } from './campaign-window.js';
import { MAX_VARIABLES, MAX_VARIABLE_VALUE, VARIABLE_NAME } from './variables.js';

export const E164_PATTERN = '^\\+[1-9][0-9]{6,14}$';
/** Bounds on a campaign's pacing (Twilio itself allows at most 30 calls a second per account). */
export const MAX_CONCURRENCY = 1000;
export const MAX_CALLS_PER_SECOND = 100;
export const MAX_ATTEMPTS = 10;
/** Contacts per upload (JSON or CSV) and per campaign. */
export const MAX_CONTACTS_PER_REQUEST = 10_000;
export const MAX_CONTACTS_PER_CAMPAIGN = 100_000;
/** Variables per contact, their names and values: the same limits as a single call's (variables.ts). */
export { MAX_VARIABLES, VARIABLE_NAME };
export const MAX_VARIABLE_CHARS = MAX_VARIABLE_VALUE;

const id = (description: string): Schema => ({ type: 'string', minLength: 1, maxLength: 64, description });

export const campaignCreate: Schema = {
  type: 'object',
  required: ['agentId', 'from', 'via', 'concurrency', 'callsPerSecond', 'window', 'retry'],
  additionalProperties: false,
  properties: {
    tenantId: id('required with a platform-admin key'),
    name: { type: 'string', maxLength: 200 },
    agentId: id('the agent that speaks on every call'),
    from: { type: 'string', pattern: E164_PATTERN, description: 'caller id (E.164)' },
    via: { type: 'string', enum: ['twilio', 'sip'] },
    trunkId: id('SIP trunk with an outbound target (via sip)'),
    concurrency: { type: 'integer', minimum: 1, maximum: MAX_CONCURRENCY, description: 'attempts in progress at once, across every node' },
    callsPerSecond: { type: 'number', minimum: 0.01, maximum: MAX_CALLS_PER_SECOND, description: 'attempts started per second, across every node' },
    window: {
      type: 'object',
      required: ['timezone', 'days', 'start', 'end'],
      additionalProperties: false,
      description: "when calls may start, on the callee's wall clock; an end before the start runs over midnight",
      properties: {
        timezone: { type: 'string', minLength: 1, maxLength: 64, description: "IANA zone of the callees, e.g. America/New_York" },
        days: { type: 'array', minItems: 1, maxItems: 7, items: { type: 'string', enum: WEEKDAYS } },
        start: { type: 'string', pattern: START_PATTERN, description: 'HH:MM' },
        end: { type: 'string', pattern: END_PATTERN, description: 'HH:MM (24:00: end of day)' },
      },
    },
    retry: {
      type: 'object',
      required: ['maxAttempts', 'backoffS'],
      additionalProperties: false,
      properties: {
        maxAttempts: { type: 'integer', minimum: 1, maximum: MAX_ATTEMPTS, description: 'attempts per contact, the first included' },
        backoffS: { type: 'integer', minimum: 1, maximum: 86_400, description: 'wait before attempt n+1: backoffS × 2^(n−1), at most a day' },
        on: { type: 'array', maxItems: 3, items: { type: 'string', enum: ['busy', 'no-answer', 'failed'] }, description: 'outcomes that are retried (default busy, no-answer)' },
      },
    },
    amd: { type: 'string', enum: ['off', 'detect', 'detect_message_end'] },
    voicemail: {
      type: 'object',
      required: ['message'],
      additionalProperties: false,
      properties: { message: { type: 'string', minLength: 1, maxLength: 2000 } },
    },
  },
};

const contact: Schema = {
  type: 'object',
  required: ['to'],
  additionalProperties: false,
  properties: {
    to: { type: 'string', pattern: E164_PATTERN, description: 'E.164' },
    variables: { type: 'object', description: `fill {{name}} in the agent's prompt and greeting; string values, at most ${MAX_VARIABLES}` },
  },
};

export const contactsJson: Schema = {
  type: 'array',
  maxItems: MAX_CONTACTS_PER_REQUEST,
  items: contact,
  description: `or text/csv with a "to" column and one column per variable; at most ${MAX_CONTACTS_PER_REQUEST} contacts per request; a number already in the campaign is dropped`,
};
