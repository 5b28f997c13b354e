// application/vnd.amazon.eventstream framing (see reference/bedrock.md §4):
// total length, headers length, prelude CRC32, string headers, JSON payload,
// message CRC32 — all big-endian, CRC32 as zlib computes it.
import zlib from 'node:zlib';

function header(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  const out = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
  out[0] = n.length;
  n.copy(out, 1);
  out[1 + n.length] = 7; // string
  out.writeUInt16BE(v.length, 2 + n.length);
  v.copy(out, 4 + n.length);
  return out;
}

export function encodeMessage(headers: Record<string, string>, payload: unknown, corruptCrc = false): Buffer {
  const h = Buffer.concat(Object.entries(headers).map(([k, v]) => header(k, v)));
  const body = Buffer.from(JSON.stringify(payload));
  const total = 12 + h.length + body.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(h.length, 4);
  out.writeUInt32BE(zlib.crc32(out.subarray(0, 8)), 8);
  h.copy(out, 12);
  body.copy(out, 12 + h.length);
  out.writeUInt32BE((zlib.crc32(out.subarray(0, total - 4)) ^ (corruptCrc ? 0xdeadbeef : 0)) >>> 0, total - 4);
  return out;
}

export function eventFrame(eventType: string, payload: unknown, corruptCrc = false): Buffer {
  return encodeMessage({ ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' }, payload, corruptCrc);
}

export function exceptionFrame(exceptionType: string, message: string): Buffer {
  return encodeMessage({ ':exception-type': exceptionType, ':content-type': 'application/json', ':message-type': 'exception' }, { message });
}
