// The inbound `media` message, read straight from the WebSocket's bytes.
// Fifty arrive per second per call: JSON.parse would build a string of the
// whole message, an object tree and a base64 string for each, and
// Buffer.from(payload, 'base64') a buffer, all garbage a few microseconds
// later. This reader walks the bytes once and decodes the payload into a
// buffer the caller reuses, allocating nothing.
//
// It is deliberately narrow: it accepts only a compact JSON object whose
// members are `event` ("media"), `sequenceNumber`, `streamSid` (the stream's
// own) and `media` (`track` "inbound", `chunk`, `timestamp`, `payload`),
// every value a string without escapes, each key at most once, in any order,
// and a non-empty, valid base64 payload that fits `out`. Anything else,
// valid or not, returns NOT_FAST and the message takes the general path
// (JSON.parse and the full checks, which count what is wrong), so both
// paths accept and refuse exactly the same messages.

export const NOT_FAST = -1;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const EQUALS = 0x3d;

/** base64 alphabet → 6-bit value; -1 elsewhere. */
const SEXTET = new Int8Array(256).fill(-1);
for (const [i, ch] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) SEXTET[ch.charCodeAt(0)] = i;

const enc = (s: string) => new TextEncoder().encode(s);
const K_EVENT = enc('event');
const K_SEQUENCE = enc('sequenceNumber');
const K_STREAM_SID = enc('streamSid');
const K_MEDIA = enc('media');
const K_TRACK = enc('track');
const K_CHUNK = enc('chunk');
const K_TIMESTAMP = enc('timestamp');
const K_PAYLOAD = enc('payload');
const V_MEDIA = enc('media');
const V_INBOUND = enc('inbound');

const EMPTY = new Uint8Array(0);

/** Scratch shared by one parse (single-threaded, never re-entered). */
let b: Uint8Array = EMPTY;
let end = 0;
/** Start and end (exclusive) of the last string read. */
let strStart = 0;
let strEnd = 0;

/** Reads a JSON string without escapes or control characters at `i`; returns the index after it or -1. */
function readString(i: number): number {
  if (i >= end || b[i] !== QUOTE) return -1;
  const start = ++i;
  while (i < end) {
    const c = b[i];
    if (c === QUOTE) {
      strStart = start;
      strEnd = i;
      return i + 1;
    }
    if (c === BACKSLASH || c < 0x20) return -1;
    i++;
  }
  return -1;
}

function strIs(word: Uint8Array): boolean {
  if (strEnd - strStart !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (b[strStart + k] !== word[k]) return false;
  return true;
}

/** Decodes the base64 string just read into out; returns its length or NOT_FAST. */
function decodePayload(out: Uint8Array): number {
  const n = strEnd - strStart;
  if (n === 0 || n % 4 !== 0) return NOT_FAST;
  let pad = 0;
  if (b[strEnd - 1] === EQUALS) pad = b[strEnd - 2] === EQUALS ? 2 : 1;
  const bytes = (n / 4) * 3 - pad;
  if (bytes > out.length) return NOT_FAST;
  let o = 0;
  const full = pad ? n - 4 : n;
  let i = strStart;
  for (const stop = strStart + full; i < stop; i += 4) {
    const v = (SEXTET[b[i]] << 18) | (SEXTET[b[i + 1]] << 12) | (SEXTET[b[i + 2]] << 6) | SEXTET[b[i + 3]];
    // A -1 (not base64) anywhere sets every bit above it: v goes negative.
    if (v < 0) return NOT_FAST;
    out[o++] = v >>> 16;
    out[o++] = (v >>> 8) & 255;
    out[o++] = v & 255;
  }
  if (pad) {
    const a = SEXTET[b[i]];
    const c = SEXTET[b[i + 1]];
    if (a < 0 || c < 0) return NOT_FAST;
    out[o++] = (a << 2) | (c >> 4);
    if (pad === 1) {
      const d = SEXTET[b[i + 2]];
      if (d < 0) return NOT_FAST;
      out[o++] = ((c & 15) << 4) | (d >> 2);
    }
  }
  return o;
}

let expectedSid: Uint8Array = EMPTY;

/**
 * Reads a `media` message of stream `sid` (its UTF-8 bytes) and decodes its
 * payload into `out`. Returns the payload's length, or NOT_FAST when the
 * message is anything else (then parse it in full).
 */
export function readMediaMessage(message: Uint8Array, sid: Uint8Array, out: Uint8Array): number {
  b = message;
  end = message.length;
  expectedSid = sid;
  try {
    return readTop(out);
  } finally {
    b = EMPTY; // do not keep the socket's buffer alive
    expectedSid = EMPTY;
  }
}

function readTop(out: Uint8Array): number {
  if (end === 0 || b[0] !== OPEN) return NOT_FAST;
  let i = 1;
  let seen = 0; // bits: 1 event, 2 sequenceNumber, 4 streamSid, 8 media
  let length = NOT_FAST;
  for (;;) {
    i = readString(i);
    if (i < 0 || b[i] !== COLON) return NOT_FAST;
    i++;
    if (strIs(K_MEDIA)) {
      if (seen & 8) return NOT_FAST;
      seen |= 8;
      i = readMediaObject(i, out);
      if (i < 0) return NOT_FAST;
      length = mediaLength;
    } else {
      let bit: number;
      if (strIs(K_EVENT)) bit = 1;
      else if (strIs(K_SEQUENCE)) bit = 2;
      else if (strIs(K_STREAM_SID)) bit = 4;
      else return NOT_FAST;
      if (seen & bit) return NOT_FAST;
      seen |= bit;
      i = readString(i);
      if (i < 0) return NOT_FAST;
      if (bit === 1 && !strIs(V_MEDIA)) return NOT_FAST;
      if (bit === 4 && !strIs(expectedSid)) return NOT_FAST;
    }
    if (b[i] === COMMA) {
      i++;
      continue;
    }
    if (b[i] !== CLOSE || i + 1 !== end) return NOT_FAST;
    break;
  }
  // event, streamSid and media are required; sequenceNumber is optional.
  return (seen & 13) === 13 ? length : NOT_FAST;
}

let mediaLength = NOT_FAST;

/** Reads the `media` object at i into out; returns the index after it or -1 (mediaLength is set). */
function readMediaObject(i: number, out: Uint8Array): number {
  if (b[i] !== OPEN) return -1;
  i++;
  let seen = 0; // 1 track, 2 chunk, 4 timestamp, 8 payload
  mediaLength = NOT_FAST;
  for (;;) {
    i = readString(i);
    if (i < 0 || b[i] !== COLON) return -1;
    i++;
    let bit: number;
    if (strIs(K_PAYLOAD)) bit = 8;
    else if (strIs(K_TRACK)) bit = 1;
    else if (strIs(K_CHUNK)) bit = 2;
    else if (strIs(K_TIMESTAMP)) bit = 4;
    else return -1;
    if (seen & bit) return -1;
    seen |= bit;
    i = readString(i);
    if (i < 0) return -1;
    if (bit === 8) {
      mediaLength = decodePayload(out);
      if (mediaLength < 0) return -1;
    } else if (bit === 1 && !strIs(V_INBOUND)) return -1;
    if (b[i] === COMMA) {
      i++;
      continue;
    }
    if (b[i] !== CLOSE) return -1;
    return seen & 8 ? i + 1 : -1;
  }
}
