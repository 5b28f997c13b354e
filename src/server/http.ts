// A small request/response layer over uWS routes: headers copied out before the
// handler goes async (uWS invalidates HttpRequest on return), bodies read with
// a size limit (413), errors rendered as {"error":{"code","message"}}, every
// response counted. Handlers are plain async functions returning a Reply.
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';
import { countBadInput, httpRequests } from '../metrics/index.js';
import { log } from '../log.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface Request {
  method: Method;
  path: string;
  /** Route pattern it matched, e.g. /v1/agents/:id (for metrics and docs). */
  route: string;
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string>;
  params: Record<string, string>;
  body: Buffer;
  remoteAddress: string;
  /** Parses the body as JSON; a malformed body is a 400. */
  json<T = unknown>(): T;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; strings and Buffers as they are. */
  body?: unknown;
}

export type Handler = (req: Request) => Promise<Reply> | Reply;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface RouteInfo {
  method: Method;
  pattern: string;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Status'}`;
}

const UWS_METHOD: Record<Method, 'get' | 'post' | 'patch' | 'put' | 'del'> = {
  GET: 'get', POST: 'post', PATCH: 'patch', PUT: 'put', DELETE: 'del',
};

export interface RouterOptions {
  /** Default body limit in bytes (413 above it). */
  bodyLimit?: number;
}

export class Router {
  private readonly list: RouteInfo[] = [];
  private readonly bodyLimit: number;

  constructor(private readonly app: TemplatedApp, opts: RouterOptions = {}) {
    this.bodyLimit = opts.bodyLimit ?? 1024 * 1024;
  }

  /** Every route registered, for the OpenAPI consistency test. */
  routes(): RouteInfo[] {
    return [...this.list];
  }

  route(method: Method, pattern: string, handler: Handler, opts: { bodyLimit?: number } = {}): void {
    this.list.push({ method, pattern });
    const paramNames = pattern.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1));
    const limit = opts.bodyLimit ?? this.bodyLimit;
    const hasBody = method !== 'GET' && method !== 'DELETE';
    this.app[UWS_METHOD[method]](pattern, (res: HttpResponse, ureq: HttpRequest) => {
      const headers: Record<string, string> = {};
      ureq.forEach((k, v) => {
        headers[k] = v;
      });
      const params: Record<string, string> = {};
      paramNames.forEach((name, i) => {
        params[name] = decodeURIComponent(ureq.getParameter(i) ?? '');
      });
      const path = ureq.getUrl();
      const query = new URLSearchParams(ureq.getQuery() ?? '');
      const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
      const state = { aborted: false };
      res.onAborted(() => {
        state.aborted = true;
      });
      const run = (body: Buffer) => {
        let parsed: unknown;
        let parsedDone = false;
        const req: Request = {
          method, path, route: pattern, query, headers, params, body, remoteAddress,
          json<T>(): T {
            if (!parsedDone) {
              if (body.length === 0) throw new HttpError(400, 'invalid_json', 'request body is empty; expected JSON');
              try {
                parsed = JSON.parse(body.toString('utf8'));
              } catch (err) {
                countBadInput('http', 'invalid_json');
                throw new HttpError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
              }
              parsedDone = true;
            }
            return parsed as T;
          },
        };
        Promise.resolve()
          .then(() => handler(req))
          .then(
            (reply) => send(res, state, pattern, reply),
            (err) => send(res, state, pattern, errorReply(err, pattern)),
          );
      };
      if (!hasBody) {
        run(Buffer.alloc(0));
        return;
      }
      const declared = Number(headers['content-length'] ?? '0');
      if (declared > limit) {
        countBadInput('http', 'body_too_large');
        send(res, state, pattern, { status: 413, body: errorBody('payload_too_large', `request body exceeds ${limit} bytes`) }, true);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let rejected = false;
      res.onData((chunk, isLast) => {
        if (rejected) return;
        size += chunk.byteLength;
        if (size > limit) {
          rejected = true;
          countBadInput('http', 'body_too_large');
          send(res, state, pattern, { status: 413, body: errorBody('payload_too_large', `request body exceeds ${limit} bytes`) }, true);
          return;
        }
        // uWS reuses the chunk's memory after this callback returns: copy.
        chunks.push(Buffer.from(new Uint8Array(chunk)));
        if (isLast) run(Buffer.concat(chunks, size));
      });
    });
  }

  /** 404 (or 405) for everything no route matched. Register after all routes. */
  fallback(): void {
    this.app.any('/*', (res, req) => {
      const url = req.getUrl();
      const method = req.getMethod().toUpperCase();
      const known = this.list.filter((r) => matches(r.pattern, url));
      const state = { aborted: false };
      if (known.length > 0) {
        send(res, state, 'unmatched', {
          status: 405,
          headers: { allow: known.map((r) => r.method).join(', ') },
          body: errorBody('method_not_allowed', `${method} is not allowed on ${url}`),
        });
        return;
      }
      send(res, state, 'unmatched', { status: 404, body: errorBody('not_found', `no route for ${method} ${url}`) });
    });
  }
}

function matches(pattern: string, url: string): boolean {
  const p = pattern.split('/');
  const u = url.split('/');
  if (p.length !== u.length) return false;
  return p.every((seg, i) => seg.startsWith(':') || seg === u[i]);
}

function errorReply(err: unknown, route: string): Reply {
  if (err instanceof HttpError) {
    return { status: err.status, headers: err.headers, body: errorBody(err.code, err.message) };
  }
  log.error('request handler failed', { route, err });
  return { status: 500, body: errorBody('internal', 'internal server error') };
}

function send(res: HttpResponse, state: { aborted: boolean }, route: string, reply: Reply, close = false): void {
  httpRequests.inc({ route, code: String(reply.status) });
  if (state.aborted) return;
  state.aborted = true; // a response is written once
  let body: string | Buffer = '';
  let type: string | undefined;
  if (reply.body === undefined || reply.body === null) {
    body = '';
  } else if (typeof reply.body === 'string') {
    body = reply.body;
  } else if (Buffer.isBuffer(reply.body)) {
    body = reply.body;
  } else {
    body = JSON.stringify(reply.body);
    type = 'application/json';
  }
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    const headers = reply.headers ?? {};
    if (type && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) res.writeHeader('content-type', type);
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(body, close);
  });
}
