// Request validation with Ajv (JSON Schema draft-07, strict mode). The schemas
// in schemas.ts are plain JSON Schema objects: Ajv compiles each once at
// startup and the same objects render the OpenAPI document, so the docs cannot
// drift from what is enforced. A body that is not JSON (or not an object) is a
// 400; a field that breaks its schema is a 422 naming the field in the dotted
// form clients see elsewhere ("llm.temperature", "tools[0].url").
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';

/** The JSON Schema subset our request bodies use (each is valid OpenAPI 3.0 as it stands). */
export type Schema =
  | { type: 'string'; minLength?: number; maxLength?: number; pattern?: string; enum?: readonly string[]; description?: string }
  | { type: 'integer' | 'number'; minimum?: number; maximum?: number; description?: string }
  | { type: 'boolean'; description?: string }
  | { type: 'array'; items: Schema; maxItems?: number; minItems?: number; description?: string }
  | { type: 'object'; properties?: Record<string, Schema>; required?: readonly string[]; additionalProperties?: boolean; description?: string };

const Ajv = AjvModule.default;
// strict: unknown keywords, ambiguous types and non-finite numbers (JSON.parse
// turns 1e400 into Infinity) are refused rather than silently ignored.
const ajv = new Ajv({ strict: true, allErrors: false, allowUnionTypes: false });
const compiled = new WeakMap<Schema, ValidateFunction>();

/** Compiles a schema (once: later calls return the same validator). Call at startup. */
export function compile(schema: Schema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema as object);
    compiled.set(schema, v);
  }
  return v;
}

/** Bodies nested deeper than this are refused before validation (JSON.stringify and pg recurse). */
export const MAX_DEPTH = 32;

function fail(path: string, message: string): never {
  countBadInput('api', 'invalid_field');
  // A path is built from the client's keys: bound what is echoed back.
  const field = path.length > 200 ? `${path.slice(0, 200)}…` : path;
  throw new HttpError(422, 'invalid_field', `${field || 'body'}: ${message}`);
}

/** JSON Pointer (Ajv's instancePath) → "tools[0].url", walking the data to tell array indexes from keys. */
export function fieldName(pointer: string, data: unknown): string {
  if (!pointer) return '';
  let out = '';
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
    cur = cur !== null && typeof cur === 'object' && Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
  }
  return out;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'must be a string', number: 'must be a number', integer: 'must be an integer', boolean: 'must be true or false',
  array: 'must be an array', object: 'must be an object', null: 'must be null',
};

/** One Ajv error → [field, message] in the wording the API has always used. */
function describe(e: ErrorObject, data: unknown): [string, string] {
  const at = fieldName(e.instancePath, data);
  const p = e.params as Record<string, unknown>;
  const child = (name: unknown) => (at ? `${at}.${String(name)}` : String(name));
  switch (e.keyword) {
    case 'type':
      return [at, TYPE_WORDS[String(p.type)] ?? `must be ${String(p.type)}`];
    case 'required':
      return [child(p.missingProperty), 'is required'];
    case 'additionalProperties':
      return [child(p.additionalProperty), 'is not a known field'];
    case 'minLength':
      return [at, p.limit === 1 ? 'must not be empty' : `must have at least ${p.limit} characters`];
    case 'maxLength':
      return [at, `must have at most ${p.limit} characters`];
    case 'pattern':
      return [at, `must match ${String(p.pattern)}`];
    case 'enum':
      return [at, `must be one of ${(p.allowedValues as unknown[]).join(', ')}`];
    case 'minimum':
      return [at, `must be at least ${p.limit}`];
    case 'maximum':
      return [at, `must be at most ${p.limit}`];
    case 'minItems':
      return [at, `must have at least ${p.limit} items`];
    case 'maxItems':
      return [at, `must have at most ${p.limit} items`];
    default:
      return [at, e.message ?? 'is not valid'];
  }
}

/** Throws a 422 naming the first field that breaks the schema. */
export function check(schema: Schema, value: unknown): void {
  const v = compile(schema);
  if (v(value)) return;
  const [field, message] = describe(v.errors![0], value);
  fail(field, message);
}

/**
 * Walks the parsed body without recursion: refuses nesting deeper than
 * MAX_DEPTH and any "__proto__" key, which is never a field of ours and is the
 * one key some object operations (Object.assign, a[k] = v) turn into a
 * prototype change. JSON.parse keeps it as an own property, so Ajv's
 * additionalProperties already refuses it where the schema is closed; this
 * also covers open objects such as a tool's `parameters`.
 */
function checkShape(value: unknown): void {
  const stack: Array<[unknown, string, number]> = [[value, '', 0]];
  while (stack.length) {
    const [v, path, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_DEPTH) fail(path, `is nested deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push([item, `${path}[${i}]`, depth + 1]));
      continue;
    }
    for (const key of Object.keys(v)) {
      const p = path ? `${path}.${key}` : key;
      if (key === '__proto__') fail(p, 'is not a known field');
      stack.push([(v as Record<string, unknown>)[key], p, depth + 1]);
    }
  }
}

/** Parses the JSON body (400 if malformed or not an object) and checks it against the schema. */
export function body<T>(req: { json<U>(): U }, schema: Schema): T {
  const value = req.json<unknown>();
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    countBadInput('api', 'body_not_object');
    throw new HttpError(400, 'invalid_body', 'request body must be a JSON object');
  }
  checkShape(value);
  check(schema, value);
  return value as T;
}

/** JSON Schema for the OpenAPI document: the validation schema itself (a copy, so the document cannot alter it). */
export function toJsonSchema(s: Schema): Record<string, unknown> {
  return structuredClone(s) as Record<string, unknown>;
}

/** ?limit= between 1 and 200 (default 50). */
export function limitParam(q: URLSearchParams): number {
  const raw = q.get('limit');
  if (raw === null) return 50;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 200) {
    countBadInput('api', 'invalid_query');
    throw new HttpError(400, 'invalid_query', 'limit: must be an integer between 1 and 200');
  }
  return Number(raw);
}
