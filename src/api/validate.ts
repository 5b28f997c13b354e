// Request validation from small schemas that also render as JSON Schema for
// the OpenAPI document, so the docs cannot drift from what is enforced.
// A body that is not JSON (or not an object) is a 400; a field that breaks
// its schema is a 422 naming the field.
import { HttpError } from '../server/http.js';
import { countBadInput } from '../metrics/index.js';

export type Schema =
  | { type: 'string'; minLength?: number; maxLength?: number; pattern?: string; enum?: readonly string[]; format?: string; description?: string }
  | { type: 'integer' | 'number'; minimum?: number; maximum?: number; description?: string }
  | { type: 'boolean'; description?: string }
  | { type: 'array'; items: Schema; maxItems?: number; minItems?: number; description?: string }
  | { type: 'object'; properties: Record<string, Schema>; required?: readonly string[]; additionalProperties?: boolean; description?: string }
  | { type: 'json-object'; description?: string };

function fail(path: string, message: string): never {
  countBadInput('api', 'invalid_field');
  throw new HttpError(422, 'invalid_field', `${path || 'body'}: ${message}`);
}

export function check(schema: Schema, value: unknown, path = ''): void {
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') fail(path, 'must be a string');
      if (schema.minLength !== undefined && value.length < schema.minLength) fail(path, schema.minLength === 1 ? 'must not be empty' : `must have at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) fail(path, `must have at most ${schema.maxLength} characters`);
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) fail(path, `must match ${schema.pattern}`);
      if (schema.enum && !schema.enum.includes(value)) fail(path, `must be one of ${schema.enum.join(', ')}`);
      return;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, `must be a ${schema.type}`);
      if (schema.type === 'integer' && !Number.isInteger(value)) fail(path, 'must be an integer');
      if (schema.minimum !== undefined && value < schema.minimum) fail(path, `must be at least ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) fail(path, `must be at most ${schema.maximum}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') fail(path, 'must be true or false');
      return;
    case 'array':
      if (!Array.isArray(value)) fail(path, 'must be an array');
      if (schema.minItems !== undefined && value.length < schema.minItems) fail(path, `must have at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(path, `must have at most ${schema.maxItems} items`);
      value.forEach((v, i) => check(schema.items, v, `${path}[${i}]`));
      return;
    case 'json-object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object');
      return;
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object');
      const obj = value as Record<string, unknown>;
      for (const key of schema.required ?? []) {
        if (obj[key] === undefined || obj[key] === null) fail(path ? `${path}.${key}` : key, 'is required');
      }
      for (const [key, v] of Object.entries(obj)) {
        const sub = schema.properties[key];
        const p = path ? `${path}.${key}` : key;
        if (!sub) {
          if (schema.additionalProperties === false) fail(p, 'is not a known field');
          continue;
        }
        if (v === undefined) continue;
        check(sub, v, p);
      }
      return;
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
  check(schema, value);
  return value as T;
}

/** JSON Schema (OpenAPI 3.0 subset) for a validation schema. */
export function toJsonSchema(s: Schema): Record<string, unknown> {
  const { description } = s;
  const base = description ? { description } : {};
  switch (s.type) {
    case 'json-object':
      return { ...base, type: 'object', additionalProperties: true };
    case 'array':
      return { ...base, type: 'array', items: toJsonSchema(s.items), ...(s.maxItems !== undefined ? { maxItems: s.maxItems } : {}), ...(s.minItems !== undefined ? { minItems: s.minItems } : {}) };
    case 'object':
      return {
        ...base,
        type: 'object',
        properties: Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, toJsonSchema(v)])),
        ...(s.required?.length ? { required: [...s.required] } : {}),
        ...(s.additionalProperties === false ? { additionalProperties: false } : {}),
      };
    default: {
      const { description: _d, ...rest } = s as Record<string, unknown>;
      return { ...base, ...rest };
    }
  }
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
