// An S3-compatible object store on a socket, path-style (http://host/bucket/key),
// for the recordings tests: the official @aws-sdk/client-s3 talks to it as to
// MinIO. It serves the operations recordings use with S3's wire format:
// CreateMultipartUpload, UploadPart, CompleteMultipartUpload (parts of at
// least 5 MiB except the last, else EntityTooSmall), AbortMultipartUpload,
// PutObject, GetObject (with Range), HeadObject, DeleteObject. Requests must
// carry a SigV4 Authorization header (its presence and form are checked, not
// the signature). aws-chunked bodies (the SDK's streaming checksums) are
// decoded. Objects live in memory; a request body is capped.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_PARTS = 10_000;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export type S3Op =
  | { op: 'CreateMultipartUpload' | 'PutObject' | 'GetObject' | 'HeadObject' | 'DeleteObject'; bucket: string; key: string }
  | { op: 'UploadPart'; bucket: string; key: string; uploadId: string; partNumber: number }
  | { op: 'CompleteMultipartUpload' | 'AbortMultipartUpload'; bucket: string; key: string; uploadId: string };

export class S3Error extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The operation a request asks for, from its method, URL and headers (throws S3Error). */
export function parseS3Request(method: string, url: string, headers: Record<string, string | string[] | undefined>): S3Op {
  const auth = headers.authorization;
  if (typeof auth !== 'string' || !/^AWS4-HMAC-SHA256 Credential=[^/\s]+\/\d{8}\/[^/\s]+\/s3\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/.test(auth)) {
    throw new S3Error(403, 'AccessDenied', 'a SigV4 Authorization header is required');
  }
  let u: URL;
  try {
    u = new URL(url, 'http://s3.local');
  } catch {
    throw new S3Error(400, 'InvalidURI', 'the request URI could not be parsed');
  }
  const slash = u.pathname.indexOf('/', 1);
  if (slash < 0) throw new S3Error(400, 'InvalidRequest', 'path-style bucket/key expected');
  let bucket: string;
  let key: string;
  try {
    bucket = decodeURIComponent(u.pathname.slice(1, slash));
    key = decodeURIComponent(u.pathname.slice(slash + 1));
  } catch {
    throw new S3Error(400, 'InvalidURI', 'malformed percent-encoding');
  }
  if (!BUCKET.test(bucket)) throw new S3Error(400, 'InvalidBucketName', 'the bucket name is not valid');
  if (key.length === 0 || Buffer.byteLength(key) > 1024) throw new S3Error(400, 'KeyTooLongError', 'the key must be 1–1024 bytes');
  const q = u.searchParams;
  const uploadId = q.get('uploadId');
  switch (method) {
    case 'POST':
      if (q.has('uploads')) return { op: 'CreateMultipartUpload', bucket, key };
      if (uploadId) return { op: 'CompleteMultipartUpload', bucket, key, uploadId };
      break;
    case 'PUT': {
      if (uploadId === null) return { op: 'PutObject', bucket, key };
      const n = q.get('partNumber') ?? '';
      if (!/^\d{1,5}$/.test(n) || Number(n) < 1 || Number(n) > MAX_PARTS) throw new S3Error(400, 'InvalidArgument', 'partNumber must be 1–10000');
      return { op: 'UploadPart', bucket, key, uploadId, partNumber: Number(n) };
    }
    case 'GET':
      return { op: 'GetObject', bucket, key };
    case 'HEAD':
      return { op: 'HeadObject', bucket, key };
    case 'DELETE':
      return uploadId ? { op: 'AbortMultipartUpload', bucket, key, uploadId } : { op: 'DeleteObject', bucket, key };
  }
  throw new S3Error(405, 'MethodNotAllowed', `${method} is not allowed here`);
}

/** The parts a CompleteMultipartUpload body lists, in order (throws MalformedXML). */
export function parseCompleteBody(xml: string): { partNumber: number; etag: string }[] {
  const parts: { partNumber: number; etag: string }[] = [];
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<CompleteMultipartUpload[\s>]/.test(xml)) throw new S3Error(400, 'MalformedXML', 'expected <CompleteMultipartUpload>');
  if (xml.length > 1024 * 1024) throw new S3Error(400, 'MalformedXML', 'the body is too large');
  // Scanned with indexOf, not a lazy regex: an unclosed <Part> repeated must not cost quadratic time.
  for (let at = xml.indexOf('<Part>'); at >= 0; at = xml.indexOf('<Part>', at)) {
    const close = xml.indexOf('</Part>', at);
    if (close < 0) throw new S3Error(400, 'MalformedXML', 'unclosed Part');
    const part = xml.slice(at + 6, close);
    at = close + 7;
    const n = /<PartNumber>\s*(\d{1,5})\s*<\/PartNumber>/.exec(part);
    const e = /<ETag>\s*([^<]{1,200})\s*<\/ETag>/.exec(part);
    if (!n || !e) throw new S3Error(400, 'MalformedXML', 'each Part needs PartNumber and ETag');
    parts.push({ partNumber: Number(n[1]), etag: e[1].replace(/&quot;/g, '"').trim() });
    if (parts.length > MAX_PARTS) throw new S3Error(400, 'MalformedXML', 'too many parts');
  }
  if (parts.length === 0) throw new S3Error(400, 'MalformedXML', 'no parts');
  return parts;
}

/** An aws-chunked body (`<hex size>;chunk-signature=…\r\n<data>\r\n` … `0\r\n<trailers>`) as its data. */
export function decodeAwsChunked(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new S3Error(400, 'IncompleteBody', 'chunk header without CRLF');
    const size = parseInt(body.toString('latin1', at, eol).split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new S3Error(400, 'IncompleteBody', 'bad chunk size');
    if (size === 0) return Buffer.concat(out);
    if (eol + 2 + size > body.length) throw new S3Error(400, 'IncompleteBody', 'chunk longer than the body');
    out.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

const xmlEscape = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
const etagOf = (b: Buffer) => `"${crypto.createHash('md5').update(b).digest('hex')}"`;

interface Upload {
  bucket: string;
  key: string;
  parts: Map<number, { data: Buffer; etag: string }>;
}

export interface S3Stats {
  multipartCompleted: number;
  partsUploaded: number;
  puts: number;
  gets: number;
  rangeGets: number;
  deletes: number;
}

export class S3Emulator {
  readonly objects = new Map<string, { data: Buffer; etag: string; type: string; modified: Date }>();
  private readonly uploads = new Map<string, Upload>();
  readonly stats: S3Stats = { multipartCompleted: 0, partsUploaded: 0, puts: 0, gets: 0, rangeGets: 0, deletes: 0 };
  private server: http.Server | null = null;
  url = '';

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => (this.server ? this.server.close(r) : r(null)));
    this.server = null;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      try {
        if (tooLarge) throw new S3Error(400, 'EntityTooLarge', `bodies above ${MAX_BODY_BYTES} bytes are refused here`);
        let body: Buffer = Buffer.concat(chunks);
        if (/aws-chunked/.test(String(req.headers['content-encoding'] ?? ''))) body = decodeAwsChunked(body);
        this.answer(parseS3Request(req.method ?? '', req.url ?? '/', req.headers), req, res, body);
      } catch (err) {
        const e = err instanceof S3Error ? err : new S3Error(500, 'InternalError', (err as Error).message);
        res.writeHead(e.status, { 'content-type': 'application/xml', 'x-amz-request-id': crypto.randomBytes(8).toString('hex') });
        res.end(req.method === 'HEAD' ? undefined : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message><RequestId>0</RequestId></Error>`);
      }
    });
  }

  private answer(op: S3Op, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const id = `${op.bucket}/${op.key}`;
    const xml = (s: string) => {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${s}`);
    };
    const upload = (uploadId: string): Upload => {
      const u = this.uploads.get(uploadId);
      if (!u || u.bucket !== op.bucket || u.key !== op.key) throw new S3Error(404, 'NoSuchUpload', 'the upload does not exist');
      return u;
    };
    const ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
    switch (op.op) {
      case 'CreateMultipartUpload': {
        const uploadId = crypto.randomBytes(16).toString('hex');
        this.uploads.set(uploadId, { bucket: op.bucket, key: op.key, parts: new Map() });
        return xml(`<InitiateMultipartUploadResult ${ns}><Bucket>${xmlEscape(op.bucket)}</Bucket><Key>${xmlEscape(op.key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
      }
      case 'UploadPart': {
        const etag = etagOf(body);
        upload(op.uploadId).parts.set(op.partNumber, { data: body, etag });
        this.stats.partsUploaded++;
        res.writeHead(200, { etag });
        return void res.end();
      }
      case 'CompleteMultipartUpload': {
        const u = upload(op.uploadId);
        const listed = parseCompleteBody(body.toString('utf8'));
        const data: Buffer[] = [];
        listed.forEach((p, i) => {
          const part = u.parts.get(p.partNumber);
          if (!part || part.etag !== p.etag) throw new S3Error(400, 'InvalidPart', `part ${p.partNumber} was not uploaded with that ETag`);
          if (i > 0 && p.partNumber <= listed[i - 1].partNumber) throw new S3Error(400, 'InvalidPartOrder', 'parts must be in ascending order');
          if (i < listed.length - 1 && part.data.length < MIN_PART_BYTES) throw new S3Error(400, 'EntityTooSmall', `part ${p.partNumber} is smaller than 5 MiB`);
          data.push(part.data);
        });
        const all = Buffer.concat(data);
        const etag = `"${crypto.createHash('md5').update(Buffer.concat(listed.map((p) => Buffer.from(u.parts.get(p.partNumber)!.etag.slice(1, -1), 'hex')))).digest('hex')}-${listed.length}"`;
        this.objects.set(id, { data: all, etag, type: 'audio/wav', modified: new Date() });
        this.uploads.delete(op.uploadId);
        this.stats.multipartCompleted++;
        return xml(`<CompleteMultipartUploadResult ${ns}><Location>${xmlEscape(`${this.url}/${id}`)}</Location><Bucket>${xmlEscape(op.bucket)}</Bucket><Key>${xmlEscape(op.key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`);
      }
      case 'AbortMultipartUpload':
        upload(op.uploadId);
        this.uploads.delete(op.uploadId);
        res.writeHead(204);
        return void res.end();
      case 'PutObject': {
        const etag = etagOf(body);
        this.objects.set(id, { data: body, etag, type: String(req.headers['content-type'] ?? 'application/octet-stream'), modified: new Date() });
        this.stats.puts++;
        res.writeHead(200, { etag });
        return void res.end();
      }
      case 'DeleteObject':
        this.objects.delete(id);
        this.stats.deletes++;
        res.writeHead(204);
        return void res.end();
      case 'GetObject':
      case 'HeadObject': {
        const o = this.objects.get(id);
        if (!o) throw new S3Error(404, 'NoSuchKey', 'the object does not exist');
        const headers: Record<string, string | number> = { etag: o.etag, 'content-type': o.type, 'last-modified': o.modified.toUTCString(), 'accept-ranges': 'bytes' };
        const range = op.op === 'GetObject' ? byteRange(req.headers.range, o.data.length) : null;
        if (op.op === 'GetObject') this.stats.gets++;
        if (range) {
          this.stats.rangeGets++;
          res.writeHead(206, { ...headers, 'content-length': range[1] - range[0] + 1, 'content-range': `bytes ${range[0]}-${range[1]}/${o.data.length}` });
          return void res.end(o.data.subarray(range[0], range[1] + 1));
        }
        res.writeHead(200, { ...headers, 'content-length': o.data.length });
        return void res.end(op.op === 'HeadObject' ? undefined : o.data);
      }
    }
  }
}

/** [start, end] of a `bytes=` Range within size; null: no Range; InvalidRange when unsatisfiable. */
function byteRange(header: string | undefined, size: number): [number, number] | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new S3Error(416, 'InvalidRange', 'the requested range is not satisfiable');
  const start = m[1] === '' ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  const end = m[1] === '' || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start > end || start >= size) throw new S3Error(416, 'InvalidRange', 'the requested range is not satisfiable');
  return [start, end];
}
