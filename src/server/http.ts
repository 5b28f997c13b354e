// A small request/response layer over uWS routes: headers copied out before the
// handler goes async (uWS invalidates HttpRequest on return), bodies read with
// a size limit (413), errors rendered as {"error":{"code","message"}}, every
// response counted. Handlers are plain async functions returning a Reply.
// Every callback uWS invokes goes through the guard (src/guard.ts): an
// exception answers 500 on that request only and never reaches the event loop.
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';
import { countBadInput, httpRequests, httpStatusLabel } from '../metrics/index.js';
import { guard, guarded, reportInternalError } from '../guard.js';
import { StreamBody, streamReply } from './stream-reply.js';

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
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
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
    this.app[UWS_METHOD[method]](pattern, guardHttp(pattern, (res: HttpResponse, ureq: HttpRequest, state: ResponseState) => {
      const headers: Record<string, string> = {};
      ureq.forEach((k, v) => {
        headers[k] = v;
      });
      const path = ureq.getUrl();
      const rawQuery = ureq.getQuery() ?? '';
      const params: Record<string, string> = {};
      let malformed = !wellEncoded(path) || !wellEncoded(rawQuery);
      paramNames.forEach((name, i) => {
        const v = decodePart(ureq.getParameter(i) ?? '');
        if (v === null) malformed = true;
        else params[name] = v;
      });
      if (malformed) {
        countBadInput('http', 'bad_percent_encoding');
        send(res, state, pattern, BAD_ENCODING, true);
        return;
      }
      const query = new URLSearchParams(rawQuery);
      const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
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
            (err) => send(res, state, pattern, errorReply(err)),
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
      res.onData(guard('http', (chunk: ArrayBuffer, isLast: boolean) => {
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
      }, () => {
        rejected = true;
        send(res, state, pattern, INTERNAL, true);
      }));
    }));
  }

  /** 404 (or 405) for everything no route matched. Register after all routes. */
  fallback(): void {
    this.app.any('/*', guardHttp('unmatched', (res, req, state) => {
      const url = req.getUrl();
      const method = req.getMethod().toUpperCase();
      if (!wellEncoded(url) || !wellEncoded(req.getQuery() ?? '')) {
        countBadInput('http', 'bad_percent_encoding');
        send(res, state, 'unmatched', BAD_ENCODING, true);
        return;
      }
      const known = this.list.filter((r) => matches(r.pattern, url));
      if (known.length > 0) {
        send(res, state, 'unmatched', {
          status: 405,
          headers: { allow: known.map((r) => r.method).join(', ') },
          body: errorBody('method_not_allowed', `${method} is not allowed on ${url}`),
        });
        return;
      }
      send(res, state, 'unmatched', { status: 404, body: errorBody('not_found', `no route for ${method} ${url.slice(0, 200)}`) });
    }));
  }
}

/** Whether a response is still ours to write (uWS throws on a write after abort or end). */
export interface ResponseState {
  aborted: boolean;
  /** Told when the client goes away (a streamed reply stops reading its source). */
  onAborted?: () => void;
}

const INTERNAL: Reply = { status: 500, body: errorBody('internal', 'internal server error') };
const BAD_ENCODING: Reply = { status: 400, body: errorBody('bad_request', 'malformed percent-encoding in the path or query') };

/**
 * Wraps a raw uWS HTTP handler under the guard: whatever it throws, at once or
 * from a returned promise, answers 500 on that response only (if nothing was
 * written yet), is counted in aybiza_internal_errors_total{where="http"} and
 * logged once. The abort handler is attached before `fn` runs, so `fn` may go
 * async and must check `state.aborted` (or use send()) before writing.
 */
export function guardHttp(
  route: string,
  fn: (res: HttpResponse, req: HttpRequest, state: ResponseState) => unknown,
): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const state: ResponseState = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
      state.onAborted?.();
    });
    guarded('http', () => fn(res, req, state), () => send(res, state, route, INTERNAL, true));
  };
}

/** Writes a JSON reply under the guard's rules (once, not after an abort); for raw uWS routes. */
export function sendReply(res: HttpResponse, state: ResponseState, route: string, reply: Reply): void {
  send(res, state, route, reply);
}

/** True when every percent escape is two hex digits and the escapes decode as UTF-8. */
function wellEncoded(s: string): boolean {
  return !s.includes('%') || decodePart(s) !== null;
}

function decodePart(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

function matches(pattern: string, url: string): boolean {
  const p = pattern.split('/');
  const u = url.split('/');
  if (p.length !== u.length) return false;
  return p.every((seg, i) => seg.startsWith(':') || seg === u[i]);
}

function errorReply(err: unknown): Reply {
  if (err instanceof HttpError) {
    return { status: err.status, headers: err.headers, body: errorBody(err.code, err.message) };
  }
  reportInternalError('http', err);
  return INTERNAL;
}

function send(res: HttpResponse, state: { aborted: boolean }, route: string, reply: Reply, close = false): void {
  httpRequests.inc({ route, code: httpStatusLabel(reply.status) });
  if (state.aborted) return;
  if (reply.body instanceof StreamBody) return streamReply(res, state, statusLine(reply.status), reply.headers ?? {}, reply.body);
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
  try {
    res.cork(() => {
      res.writeStatus(statusLine(reply.status));
      const headers = reply.headers ?? {};
      if (type && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) res.writeHeader('content-type', type);
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      res.end(body, close);
    });
  } catch (err) {
    // The response is unusable (closed under us): nothing more to write to it.
    reportInternalError('http', err);
  }
}
