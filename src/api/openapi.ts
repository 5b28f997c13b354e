// The OpenAPI 3 document, rendered from the route table.
import { VERSION } from '../version.js';
import { ROUTES } from './routes.js';
import { toJsonSchema } from './validate.js';

const error = { $ref: '#/components/responses/Error' };

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.list) {
      params.push({ name: 'limit', in: 'query', required: false, schema: { type: 'integer' } } as never);
      params.push({ name: 'cursor', in: 'query', required: false, schema: { type: 'string' } } as never);
    }
    const responses: Record<string, unknown> = {
      [String(r.status)]: r.status === 204 ? { description: 'done' } : { description: 'ok', content: { 'application/json': { schema: { type: 'object' } } } },
      '400': error, '401': error, '403': error, '404': error, '429': error,
    };
    if (r.body) Object.assign(responses, { '409': error, '413': error, '422': error });
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      'x-required-access': r.access,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(r.body) } } } } : {}),
      responses,
    };
  }
  paths['/v1/openapi.json'] = { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3 document' } } } };
  return {
    openapi: '3.0.3',
    info: { title: 'Aybiza admin API', version: VERSION },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
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
