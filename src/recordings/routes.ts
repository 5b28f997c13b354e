// GET /v1/calls/{id}/recording: the WAV streamed from its file or bucket,
// whole or one byte range (RFC 9110 §14: `bytes=a-b`, `bytes=a-`, `bytes=-n`;
// one range per request). Tenant-isolated like the call itself: another
// tenant's call is a 404, whether or not it has a recording.
import { HttpError } from '../server/http.js';
import { DirectReply, StreamBody } from '../server/stream-reply.js';
import { countBadInput } from '../metrics/index.js';
import { readScope } from '../api/auth.js';
import type { RouteSpec } from '../api/routes.js';
import type { ControlPlane } from '../store/index.js';
import type { CallDetail } from '../store/types.js';
import { Recordings } from './recordings.js';
import { summaryOf } from './rows.js';
import type { ByteRange } from './storage.js';

/** The range a Range header asks for within `size` bytes; null: the whole object; 'bad': malformed, several ranges or not satisfiable (all answered 416). */
export function parseRange(header: string | undefined, size: number): ByteRange | null | 'bad' {
  if (header === undefined) return null;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  if (m[1] === '') {
    // A suffix: the last n bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'bad';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'bad';
  return { start, end };
}

function recordingsOf(cp: ControlPlane): Recordings {
  const r = Recordings.of(cp);
  if (!r) throw new HttpError(404, 'not_found', 'recordings are not set up on this node');
  return r;
}

/** The call detail with its recording, when it has one. */
export async function withRecording(cp: ControlPlane, call: CallDetail): Promise<CallDetail> {
  const recordings = Recordings.of(cp);
  const r = recordings && (await recordings.rows.find(call.tenantId, call.id));
  return r ? { ...call, recording: summaryOf(r) } : call;
}

export const RECORDING_ROUTES: RouteSpec[] = [
  {
    method: 'GET', path: '/v1/calls/{id}/recording',
    summary: 'The call\'s recording as 8 kHz μ-law WAV (dual: stereo, caller left), streamed; Range: bytes=a-b gives 206, an unsatisfiable range 416',
    access: 'recordings:read', status: 200,
    handler: async ({ req, p, cp }) => {
      const recordings = recordingsOf(cp);
      const row = await recordings.rows.find(readScope(p), req.params.id);
      if (!row) throw new HttpError(404, 'not_found', 'no recording for this call');
      // Until it is complete (or after a crash) the recording is the local file being written.
      const storage = row.readyAt && row.storage === recordings.storage.kind ? recordings.storage : recordings.local;
      const size = await storage.size(row.key);
      if (size === null) throw new HttpError(404, 'not_found', 'the recording is gone');
      const range = parseRange(req.headers.range, size);
      if (range === 'bad') {
        countBadInput('api', 'bad_range');
        throw new HttpError(416, 'range_not_satisfiable', `Range must be one satisfiable bytes=a-b within ${size} bytes`, { 'content-range': `bytes */${size}` });
      }
      const stream = await storage.open(row.key, range ?? undefined);
      const headers: Record<string, string> = { 'content-type': 'audio/wav', 'accept-ranges': 'bytes', 'cache-control': 'private, no-store' };
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
      const length = range ? range.end - range.start + 1 : size;
      return new DirectReply({ status: range ? 206 : 200, headers, body: new StreamBody(stream, length) });
    },
  },
];

/** OpenAPI: the call detail's `recording` field. */
export const RECORDING_SUMMARY = {
  type: 'object',
  description: 'present when the call was recorded (and the recording not yet deleted by retention)',
  properties: {
    channels: { type: 'string', enum: ['dual', 'mixed'] }, durationMs: { type: 'integer' }, bytes: { type: 'integer' },
    url: { type: 'string', description: 'GET it (scope recordings:read)' },
  },
};

/** OpenAPI: the recording route answers audio, whole or one range. */
export const RECORDING_OPERATION = {
  parameters: [
    { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
    { name: 'Range', in: 'header', required: false, description: 'one range: bytes=a-b, bytes=a- or bytes=-n', schema: { type: 'string' } },
  ],
  responses: {
    '200': { description: 'the whole WAV', content: { 'audio/wav': { schema: { type: 'string', format: 'binary' } } } },
    '206': { description: 'the asked range, with Content-Range', content: { 'audio/wav': { schema: { type: 'string', format: 'binary' } } } },
    '416': { $ref: '#/components/responses/Error' },
    '401': { $ref: '#/components/responses/Error' }, '403': { $ref: '#/components/responses/Error' },
    '404': { $ref: '#/components/responses/Error' }, '429': { $ref: '#/components/responses/Error' },
  },
};
