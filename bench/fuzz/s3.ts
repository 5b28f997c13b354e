// Hostile requests for the S3 emulator's parsers (src/providers/emulators/s3.ts):
// the request line and headers (method, path-style bucket/key, the query
// that names the operation, the SigV4 Authorization form), the
// CompleteMultipartUpload XML and aws-chunked bodies — real shapes with
// mutated fields, mutated bytes and random text. Each parser must answer an
// operation or throw an S3Error (which the emulator renders as S3's XML
// error), never anything else. Run by `aybiza fuzz` and test/recordings/s3-fuzz.test.ts.
import type { Rand } from './random.js';
import { decodeAwsChunked, parseCompleteBody, parseS3Request, S3Error } from '../../src/providers/emulators/s3.js';

const AUTH = 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=' + 'a'.repeat(64);
const PATHS = ['/rec/ten_a/call_b.wav', '/rec/', '/rec', '/', '', '/REC/x', '/a/x', '/rec/%zz', '/rec/%00', '/rec/' + 'k'.repeat(1100), '/rec/a/../../etc/passwd', '//x', '/rec/ü'];
const QUERIES = ['', '?uploads', '?uploadId=u1', '?uploadId=u1&partNumber=1', '?uploadId=u1&partNumber=0', '?uploadId=u1&partNumber=10001', '?uploadId=&partNumber=1', '?partNumber=1e3&uploadId=x', '?uploads&uploadId=x', '?x-id=GetObject'];
const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'PATCH', 'OPTIONS', '', 'get'];

function request(r: Rand): { method: string; url: string; headers: Record<string, string | string[] | undefined> } {
  let url = r.pick(PATHS) + r.pick(QUERIES);
  if (r.chance(0.3)) url = r.mutate(Buffer.from(url), r.range(1, 4)).toString('latin1');
  if (r.chance(0.05)) url = r.text(r.size(3000));
  const auth = r.chance(0.7) ? AUTH : r.chance(0.5) ? r.mutate(Buffer.from(AUTH), r.range(1, 6)).toString('latin1') : r.pick([undefined, '', 'Bearer x', [AUTH, AUTH]]);
  return { method: r.pick(METHODS), url, headers: { authorization: auth as string | undefined } };
}

function completeXml(r: Rand): string {
  const parts = Array.from({ length: r.range(0, 4) }, (_, i) => `<Part><PartNumber>${r.chance(0.9) ? i + 1 : r.token()}</PartNumber><ETag>${r.chance(0.9) ? '"abc"' : r.token()}</ETag></Part>`).join('');
  let xml = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts}</CompleteMultipartUpload>`;
  if (r.chance(0.1)) xml = `<CompleteMultipartUpload>${'<Part>'.repeat(r.pick([1, 1000, 20_000]))}`;
  if (r.chance(0.3)) xml = r.mutate(Buffer.from(xml), r.range(1, 8)).toString('utf8');
  return xml;
}

function chunked(r: Rand): Buffer {
  const data = r.bytes(r.size(2000));
  let body: Buffer = Buffer.concat([Buffer.from(`${data.length.toString(16)};chunk-signature=${'0'.repeat(64)}\r\n`), data, Buffer.from('\r\n0;chunk-signature=x\r\n\r\n')]);
  if (r.chance(0.5)) body = r.mutate(body, r.range(1, 6));
  if (r.chance(0.1)) body = r.bytes(r.size(500));
  return body;
}

/** The parsers' one property over `cases` hostile inputs: an answer or an S3Error, never another exception. */
export function checkS3Parsers(r: Rand, cases: number): { cases: number; parsed: number; violations: string[] } {
  const violations: string[] = [];
  let parsed = 0;
  const attempt = (what: string, input: unknown, fn: () => unknown) => {
    try {
      fn();
      parsed++;
    } catch (err) {
      if (!(err instanceof S3Error)) violations.push(`${what}: ${(err as Error).name}: ${(err as Error).message} on ${JSON.stringify(input).slice(0, 300)}`);
      else if (err.status < 400 || err.status > 499) violations.push(`${what}: status ${err.status} for client input ${JSON.stringify(input).slice(0, 300)}`);
    }
  };
  for (let i = 0; i < cases && violations.length < 10; i++) {
    const req = request(r);
    attempt('request', req, () => parseS3Request(req.method, req.url, req.headers));
    const xml = completeXml(r);
    attempt('complete', xml, () => parseCompleteBody(xml));
    const body = chunked(r);
    attempt('aws-chunked', body.toString('latin1'), () => decodeAwsChunked(body));
  }
  return { cases, parsed, violations };
}
