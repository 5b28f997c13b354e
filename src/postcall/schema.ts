// The agent's `analysis` and `memory` settings as the admin API validates
// them, and the JSON Schema a client gives for the structured data: checked
// at POST/PATCH (compiled, bounded, refused with a 422 naming the field)
// and compiled again by the analyzer to validate what the model answered.
//
// A client's schema is code the server runs on every analysis, so it is
// held to more than well-formedness: at most 16 KiB and 12 levels, no
// regular expressions (`pattern`, `patternProperties`: a backtracking
// pattern from a client would run on our event loop; Ajv has no safe
// engine here), Ajv's security meta-schema (uniqueItems on objects needs
// maxItems…), no remote $ref (nothing is fetched), and an object at the
// top (it becomes a property of Bedrock's tool input schema).
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';
import type { Schema } from '../api/validate.js';
import type { AgentConfig } from '../store/types.js';

export const MAX_SCHEMA_BYTES = 16 * 1024;
export const MAX_SCHEMA_DEPTH = 12;
export const MAX_OUTCOMES = 32;

export const agentAnalysis: Schema = {
  type: 'object',
  required: ['outcomes'],
  additionalProperties: false,
  description: 'post-call analysis with Bedrock Converse after hang-up: summary, sentiment, one of the outcomes, a quality score against the rubric, and `data` extracted to `schema`; shown as the call\'s `analysis`',
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200, description: 'Bedrock model id (default: llm.model, else BEDROCK_MODEL_ID)' },
    outcomes: {
      type: 'array', minItems: 1, maxItems: MAX_OUTCOMES,
      items: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9 _-]*$' },
      description: 'the outcome categories; the analysis picks exactly one',
    },
    rubric: { type: 'string', maxLength: 4000, description: 'what a good call is, for the 0–100 quality score' },
    schema: {
      type: 'object',
      description: `JSON Schema (draft-07) of the structured data to extract; "type": "object" at the top; at most ${MAX_SCHEMA_BYTES / 1024} KiB and ${MAX_SCHEMA_DEPTH} levels; no pattern/patternProperties, no remote $ref; the model's answer is validated against it (retried once with the errors, then stored as an error)`,
    },
  },
};

export const agentMemory: Schema = {
  type: 'object',
  required: ['enabled'],
  additionalProperties: false,
  description: 'memory across calls: after each analysed call its summary is kept for the caller\'s number (hashed at rest, PII-redacted); the most recent ones (about 1,000 tokens) join the system prompt of the next call from that number',
  properties: {
    enabled: { type: 'boolean' },
    retentionDays: { type: 'integer', minimum: 1, maximum: 3650, description: 'summaries older than this are deleted (default 90)' },
  },
};

const Ajv = AjvModule.default;
// Strict about keywords (a misspelt "requierd" is refused, not ignored); lax
// about the type rules strict mode adds for our own schemas, which a
// client's ordinary schema need not follow; formats are annotations.
const ajvOptions = { strict: true, strictTypes: false, strictTuples: false, strictRequired: false, validateFormats: false, allErrors: true, logger: false } as const;
// One instance for every client schema: a fresh one per schema compiles the
// draft-07 meta-schema again each time (about twice the cost). Each schema
// is removed from its cache right after compiling (its validator stays
// usable), so the instance keeps none of them and two schemas with one $id
// never collide; the caller caches validators it reuses (analyzer.ts).
const clientAjv = new Ajv(ajvOptions);
const isSecure = new Ajv({ strict: false, logger: false }).compile(createRequire(import.meta.url)('ajv/dist/refs/json-schema-secure.json') as object);

const FORBIDDEN = new Set(['pattern', 'patternProperties']);

/** What is wrong with a client's data schema (null: nothing), walked without recursion. */
function shapeProblem(schema: Record<string, unknown>): string | null {
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) return `is larger than ${MAX_SCHEMA_BYTES / 1024} KiB`;
  if (schema.type !== 'object') return 'must have "type": "object" at the top';
  const stack: Array<[unknown, number, string | null]> = [[schema, 0, null]];
  while (stack.length) {
    const [v, depth, parentKey] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_SCHEMA_DEPTH) return `is nested deeper than ${MAX_SCHEMA_DEPTH} levels`;
    // Keys under properties/definitions are names, not keywords.
    const names = parentKey === 'properties' || parentKey === 'definitions' || parentKey === '$defs';
    for (const [k, x] of Object.entries(v)) {
      if (!names && !Array.isArray(v) && FORBIDDEN.has(k)) return `${k} is not supported (no client regular expressions run on the server)`;
      if (!names && k === '$ref' && typeof x === 'string' && !x.startsWith('#')) return '$ref may only point inside the schema (#/…)';
      stack.push([x, depth + 1, Array.isArray(v) ? null : k]);
    }
  }
  return null;
}

/**
 * Compiles a client's data schema; throws an Error whose message says what
 * is wrong. Ajv generates code: a 10 KiB schema takes tens of milliseconds
 * (0.5 ms for a small one), so compiled validators are reused, not rebuilt.
 */
export function compileDataSchema(schema: Record<string, unknown>): ValidateFunction {
  const problem = shapeProblem(schema);
  if (problem) throw new Error(problem);
  if (!isSecure(schema)) throw new Error(`is unsafe to validate with: ${ajvErrors(isSecure.errors)}`);
  try {
    return clientAjv.compile(schema);
  } finally {
    clientAjv.removeSchema(schema);
  }
}

/** Ajv errors as one short line ("/partySize must be integer; …"), for a 422 or the model's retry. */
export function ajvErrors(errors: ErrorObject[] | null | undefined, max = 8): string {
  const list = (errors ?? []).slice(0, max).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}`);
  return list.join('; ').slice(0, 1000) || 'is not valid';
}

/** The agent's analysis schema at POST/PATCH /v1/agents: a 422 naming analysis.schema when it cannot be used. */
export function checkAnalysisConfig(config: Partial<AgentConfig>): void {
  const schema = config.analysis?.schema;
  if (schema !== undefined) {
    try {
      compileDataSchema(schema);
    } catch (err) {
      countBadInput('api', 'invalid_field');
      throw new HttpError(422, 'invalid_field', `analysis.schema: ${(err as Error).message.slice(0, 500)}`);
    }
  }
  const outcomes = config.analysis?.outcomes;
  if (outcomes && new Set(outcomes.map((o) => o.toLowerCase())).size !== outcomes.length) {
    countBadInput('api', 'invalid_field');
    throw new HttpError(422, 'invalid_field', 'analysis.outcomes: must not repeat an outcome');
  }
}
