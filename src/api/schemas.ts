// Request bodies of the admin API (CONTRACT §4).
import type { Schema } from './validate.js';
import { TENANT_SCOPES } from '../store/types.js';
import { TRANSFER_TARGET_PATTERN } from '../pipeline/transfer-policy.js';
import { tenantOutbound } from '../outbound/schemas.js';
import { agentAnalysis, agentMemory } from '../postcall/schema.js';
import { AMD_DEFAULTS, AMD_LIMITS } from '../call/amd.js';

const id = (description: string): Schema => ({ type: 'string', minLength: 1, maxLength: 64, description });

export const tenantCreate: Schema = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    maxConcurrentCalls: { type: 'integer', minimum: 1, maximum: 100000, description: 'per-tenant concurrent call limit' },
    outbound: tenantOutbound,
  },
};

export const apiKeyCreate: Schema = {
  type: 'object',
  required: ['tenantId'],
  additionalProperties: false,
  properties: {
    tenantId: id('tenant the key belongs to'),
    name: { type: 'string', maxLength: 200 },
    scopes: { type: 'array', minItems: 1, items: { type: 'string', enum: TENANT_SCOPES }, description: 'defaults to all tenant scopes' },
  },
};

const tool: Schema = {
  type: 'object',
  required: ['name', 'description', 'parameters', 'url'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    description: { type: 'string', minLength: 1, maxLength: 1000 },
    parameters: { type: 'object', description: 'JSON Schema of the tool input' },
    url: { type: 'string', pattern: '^https?://', maxLength: 2000, description: 'POSTed the tool input as JSON; loopback, private, link-local/metadata, multicast and reserved addresses are refused (loopback/private allowed with TOOLS_ALLOW_PRIVATE_NETWORKS); redirects are not followed; response at most 64 KiB' },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 60000 },
    authHeader: { type: 'string', maxLength: 2000, description: 'sent as the Authorization header; stored encrypted, answered as "****" and its last 4 characters (send that mask back to keep the stored value)' },
  },
};

const agentFields: Record<string, Schema> = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  prompt: { type: 'string', minLength: 1, maxLength: 50000, description: 'system prompt' },
  greeting: { type: 'string', maxLength: 2000, description: 'spoken when the call is answered' },
  voice: { type: 'string', maxLength: 100, description: 'TTS voice, e.g. aura-2-thalia-en' },
  language: { type: 'string', maxLength: 20, description: 'BCP-47, e.g. en-US' },
  llm: {
    type: 'object',
    additionalProperties: false,
    properties: {
      model: { type: 'string', maxLength: 200 },
      temperature: { type: 'number', minimum: 0, maximum: 1 },
      maxTokens: { type: 'integer', minimum: 1, maximum: 8192 },
    },
  },
  stt: {
    type: 'object',
    additionalProperties: false,
    properties: {
      model: { type: 'string', maxLength: 100, description: 'nova-3 (default) or flux-general-en (Deepgram Flux: the model ends the turn)' },
      endpointingMs: { type: 'integer', minimum: 10, maximum: 5000 },
      eotThreshold: { type: 'number', minimum: 0.5, maximum: 1, description: 'Flux: end-of-turn confidence that ends a turn (default 0.7; 1.0 leaves only eotTimeoutMs)' },
      eagerEotThreshold: { type: 'number', minimum: 0.3, maximum: 0.9, description: 'Flux: confidence for an early EagerEndOfTurn, at most eotThreshold; unset: no eager events' },
      eotTimeoutMs: { type: 'integer', minimum: 500, maximum: 60000, description: 'Flux: a turn ends this long after speech whatever the confidence (default 5000)' },
    },
  },
  tools: { type: 'array', maxItems: 32, items: tool },
  latencyBudgetMs: { type: 'integer', minimum: 100, maximum: 60000, description: 'end-to-end turn latency budget' },
  amd: {
    type: 'object',
    additionalProperties: false,
    description: 'our answering-machine detection on outbound SIP calls (src/call/amd.ts), in the spirit of Asterisk app_amd; every field optional, defaults in brackets',
    properties: {
      ...Object.fromEntries(Object.entries(AMD_LIMITS).map(([k, [minimum, maximum]]) => [
        k, { type: k === 'speechProbability' ? 'number' : 'integer', minimum, maximum, description: `[${AMD_DEFAULTS[k as keyof typeof AMD_LIMITS]}]` },
      ])),
      transcript: { type: 'boolean', description: 'the STT transcript breaks ties (voicemail phrases are a machine) [true]' },
    },
  },
  preemptive: { type: 'boolean', description: 'start the reply on an early end-of-turn signal (Flux EagerEndOfTurn, Nova-3 stable interim in silence), kept only if the final words match; default true' },
  transfer: {
    type: 'object',
    required: ['targets'],
    additionalProperties: false,
    properties: {
      targets: {
        type: 'array',
        maxItems: 100,
        items: { type: 'string', maxLength: 300, pattern: TRANSFER_TARGET_PATTERN },
        description: 'where transfer_call may go: E.164 numbers (+14155550123), E.164 prefixes (+1415555*), sip: URIs (sip:desk@pbx.example.com, sip:*@pbx.example.com); none: transfers refused',
      },
    },
  },
  analysis: agentAnalysis,
  memory: agentMemory,
  recording: {
    type: 'object',
    required: ['enabled'],
    additionalProperties: false,
    description: 'call recording: both sides as heard, 8 kHz μ-law WAV (GET /v1/calls/{id}/recording); default off',
    properties: {
      enabled: { type: 'boolean' },
      channels: { type: 'string', enum: ['dual', 'mixed'], description: 'dual: stereo, caller left, agent right (default); mixed: mono' },
    },
  },
};

export const agentCreate: Schema = {
  type: 'object',
  required: ['name', 'prompt'],
  additionalProperties: false,
  properties: { ...agentFields, tenantId: id('required with a platform-admin key') },
};

export const agentPatch: Schema = { type: 'object', additionalProperties: false, properties: agentFields };

export const agentDeploy: Schema = {
  type: 'object',
  required: ['version'],
  additionalProperties: false,
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    percent: { type: 'integer', minimum: 0, maximum: 100, description: 'share of calls for this version (A/B); omit for all' },
  },
};

export const phoneNumberCreate: Schema = {
  type: 'object',
  required: ['number', 'agentId'],
  additionalProperties: false,
  properties: {
    number: { type: 'string', pattern: '^\\+[1-9][0-9]{6,14}$', description: 'E.164' },
    agentId: id('agent answering this number'),
  },
};

const trunkOutbound: Schema = {
  type: 'object',
  required: ['uri'],
  additionalProperties: false,
  description: 'where calls placed through this trunk go (POST /v1/calls with via "sip"); replaced as a whole by PATCH',
  properties: {
    uri: { type: 'string', maxLength: 300, pattern: '^sip:', description: 'sip:host[:port] (IPv4 address or host name; port 5060 by default). Loopback and private addresses are refused when dialling unless TOOLS_ALLOW_PRIVATE_NETWORKS; link-local, metadata, multicast and reserved ones always' },
    transport: { type: 'string', enum: ['udp', 'tcp', 'tls'], description: 'default udp; tls: the trunk\'s certificate must name its host (SIP_TLS_CA adds trusted CAs); a uri without a port means 5061' },
    username: { type: 'string', pattern: '^[A-Za-z0-9._~!$&*+=-]{1,64}$', description: 'digest user for the carrier\'s 401/407 (with password)' },
    password: { type: 'string', minLength: 1, maxLength: 200, description: 'stored encrypted, answered as "****" and its last 4 characters (send that mask back to keep the stored value)' },
    fromUser: { type: 'string', pattern: '^[A-Za-z0-9._~!$&*+=-]{1,64}$', description: 'From user (caller ID); default: the dial\'s from' },
    fromDomain: { type: 'string', maxLength: 253, description: 'From host; default: the trunk host' },
  },
};

export const sipTrunkCreate: Schema = {
  type: 'object',
  required: ['name', 'allowedCidrs'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    allowedCidrs: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 64 } },
    username: { type: 'string', pattern: '^[A-Za-z0-9._~!$&*+=-]{1,64}$' },
    password: { type: 'string', minLength: 8, maxLength: 200, description: 'stored only as digest HA1 hashes; never returned' },
    allowRefer: { type: 'boolean', description: 'transfer_call may use a blind REFER on this trunk' },
    allowBroadCidr: { type: 'boolean', description: 'allowedCidrs may hold blocks broader than /8 (IPv4) or /32 (IPv6); /0 is refused always' },
    outbound: trunkOutbound,
    tenantId: id('required with a platform-admin key'),
  },
};

export const sipTrunkPatch: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    allowedCidrs: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 64 } },
    username: { type: 'string', pattern: '^[A-Za-z0-9._~!$&*+=-]{1,64}$', description: 'with password: replaces the credentials' },
    password: { type: 'string', minLength: 8, maxLength: 200, description: 'stored only as digest HA1 hashes; never returned' },
    allowRefer: { type: 'boolean' },
    allowBroadCidr: { type: 'boolean', description: 'turning it off re-checks allowedCidrs' },
    outbound: trunkOutbound,
  },
};
