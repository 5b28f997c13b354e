// The OpenAPI 3 document, rendered from the route table.
import { VERSION } from '../version.js';
import { ROUTES } from './routes.js';
import { toJsonSchema } from './validate.js';
import { RECORDING_OPERATION, RECORDING_SUMMARY } from '../recordings/routes.js';

const error = { $ref: '#/components/responses/Error' };

const num = { type: 'number' };
const delay = {
  type: 'object',
  description: 'One-way delay Ta = network + receiver jitter buffer + packetisation and processing, ms',
  properties: { networkMs: num, networkSource: { type: 'string', enum: ['rtcp', 'assumed'] }, jitterBufferMs: num, processingMs: num },
};
const direction = (what: string) => ({
  type: 'object',
  nullable: true,
  description: what,
  properties: {
    r: num, mos: num, ieEff: { ...num, description: 'Ie,eff: codec + loss impairment' }, id: { ...num, description: 'Id: delay impairment' },
    lossPercent: num, burstR: num, oneWayDelayMs: num, delay, packets: { type: 'object' },
    jitterBuffer: { type: 'object', description: "inbound: our jitter buffer's counters and delays" },
    remoteJitterMs: { ...num, description: "outbound: the caller's interarrival jitter" },
  },
});
/** Response bodies described beyond "an object", where a field needs explaining. */
const RESPONSES: Record<string, unknown> = {
  'GET /v1/calls/{id}': { type: 'object', properties: { quality: { $ref: '#/components/schemas/CallQuality' }, cost: { $ref: '#/components/schemas/Cost' }, usage: { $ref: '#/components/schemas/Usage' }, recording: RECORDING_SUMMARY } },
  'GET /v1/usage': {
    type: 'object',
    properties: {
      from: { type: 'string' }, to: { type: 'string' }, groupBy: { type: 'string' }, currency: { type: 'string', enum: ['USD'] },
      items: { type: 'array', items: { type: 'object', properties: { key: { type: 'string', nullable: true, description: 'YYYY-MM-DD (UTC) or the agent id' }, calls: { type: 'integer' }, total: { type: 'string' }, components: { $ref: '#/components/schemas/Cost/properties/components' } } } },
    },
  },
};
const usd = { type: 'string', pattern: '^\\d+\\.\\d{6}$', description: 'USD, six decimals (exact)' };
const line = (props: Record<string, unknown>) => ({ type: 'array', items: { type: 'object', properties: { ...props, cost: usd } } });
/** src/usage: the call's cost (total = the exact sum of the components) and the metered lines it was priced from. */
const COST = {
  type: 'object', nullable: true, description: 'null until the call has been priced (at hang-up); the post-call analysis adds its tokens to llm',
  properties: { currency: { type: 'string', enum: ['USD'] }, total: usd, components: { type: 'object', properties: { telephony: usd, stt: usd, tts: usd, llm: usd } } },
};
const USAGE = {
  type: 'object', nullable: true,
  properties: {
    telephony: line({ transport: { type: 'string' }, direction: { type: 'string' }, charge: { type: 'string', enum: ['voice', 'media_streams'] }, seconds: num, billedSeconds: num }),
    stt: line({ model: { type: 'string' }, seconds: { ...num, description: 'audio streamed to the STT' } }),
    tts: line({ model: { type: 'string' }, characters: { type: 'integer', description: 'text sent to the TTS' } }),
    llm: line({ model: { type: 'string' }, purpose: { type: 'string', enum: ['conversation', 'analysis'] }, inputTokens: { type: 'integer' }, outputTokens: { type: 'integer' }, requests: { type: 'integer' }, estimatedRequests: { type: 'integer', description: 'of requests, those cut by a barge-in before the usage report (tokens estimated from characters / 4)' }, priced: { type: 'boolean' } }),
  },
};
const CALL_QUALITY = {
  type: 'object',
  nullable: true,
  description: 'ITU-T G.107 E-model estimate of a SIP call (G.711 with PLC): R and MOS-CQE of the worse direction; null for Twilio calls (no RTP to measure)',
  properties: {
    r: { ...num, nullable: true }, mos: { ...num, nullable: true }, model: { type: 'string' }, rttMs: { ...num, nullable: true },
    inbound: direction('caller → us, from RTP sequence numbers and our jitter buffer; null when no audio arrived'),
    outbound: direction("us → caller, from the caller's RTCP reports; null when it sent none"),
  },
};

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    for (const q of r.query ?? []) params.push({ name: q.name, in: 'query', required: q.required, description: q.description, schema: q.schema } as never);
    if (r.list) {
      params.push({ name: 'limit', in: 'query', required: false, schema: { type: 'integer' } } as never);
      params.push({ name: 'cursor', in: 'query', required: false, schema: { type: 'string' } } as never);
    }
    const responses: Record<string, unknown> = {
      [String(r.status)]: r.status === 204 ? { description: 'done' } : { description: 'ok', content: { 'application/json': { schema: RESPONSES[`${r.method} ${r.path}`] ?? { type: 'object' } } } },
      '400': error, '401': error, '403': error, '404': error, '429': error,
    };
    if (r.body) Object.assign(responses, { '409': error, '413': error, '422': error });
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      'x-required-access': r.access,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? {
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: toJsonSchema(r.body) },
            ...(r.csv ? { 'text/csv': { schema: { type: 'string', description: r.csv.description } } } : {}),
          },
        },
      } : {}),
      responses,
    };
  }
  Object.assign(paths['/v1/calls/{id}/recording'].get as object, RECORDING_OPERATION);
  paths['/v1/openapi.json'] = { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3 document' } } } };
  return {
    openapi: '3.0.3',
    info: { title: 'Aybiza admin API', version: VERSION },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { CallQuality: CALL_QUALITY, Cost: COST, Usage: USAGE },
      responses: {
        Error: {
          description: 'error',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
              },
            },
          },
        },
      },
    },
  };
}
