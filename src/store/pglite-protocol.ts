// The few PostgreSQL wire-protocol (v3) facts the embedded database's socket
// server needs to share one PGlite session between connections: frontend
// message framing, the statement names a connection uses (made private to it),
// and the ReadyForQuery status in what the backend sends back.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html

export const PROTOCOL_3 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
/** Larger frontend messages are refused (our statements and parameters are small; a length is outside input). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Frontend message types after authentication. Not 'p' (password/SASL): the
 * socket server authenticates itself, and PGlite handed one mid-session spun
 * forever, stalling every thread's database (found by the pg_wire fuzzer).
 */
const FRONTEND_TYPES = new Set('BCdcfDEHFPQSX'.split('').map((c) => c.charCodeAt(0)));
/** Messages after which the backend may say ReadyForQuery: Sync, simple Query, FunctionCall, CopyDone, CopyFail. */
const CYCLE_ENDS = new Set('SQFcf'.split('').map((c) => c.charCodeAt(0)));

export const TERMINATE = 'X'.charCodeAt(0);
const PARSE = 'P'.charCodeAt(0);
const BIND = 'B'.charCodeAt(0);
const DESCRIBE = 'D'.charCodeAt(0);
const CLOSE = 'C'.charCodeAt(0);
const SYNC = 'S'.charCodeAt(0);
const QUERY = 'Q'.charCodeAt(0);
const READY_FOR_QUERY = 'Z'.charCodeAt(0);
const STATEMENT = 'S'.charCodeAt(0);

export class ProtocolError extends Error {
  readonly code = 'AYB_ERR_PG_PROTOCOL';
}

export type Untyped = { kind: 'startup' | 'ssl' | 'gssenc' | 'cancel'; bytes: Buffer };

/** The first message of a connection (no type byte), or null until it is complete. */
export function readUntyped(buf: Buffer): Untyped | null {
  if (buf.length < 8) return null;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > 10_000) throw new ProtocolError(`startup message length ${len}`);
  if (buf.length < len) return null;
  const code = buf.readInt32BE(4);
  const kind = code === PROTOCOL_3 ? 'startup' : code === SSL_REQUEST ? 'ssl' : code === GSSENC_REQUEST ? 'gssenc' : code === CANCEL_REQUEST ? 'cancel' : null;
  if (!kind) throw new ProtocolError(`unsupported protocol code ${code}`);
  return { kind, bytes: buf.subarray(0, len) };
}

/** Length of the typed message at the start of buf, or 0 until it is complete. */
export function typedLength(buf: Buffer): number {
  if (buf.length < 5) return 0;
  if (!FRONTEND_TYPES.has(buf[0]!)) throw new ProtocolError(`unknown message type 0x${buf[0]!.toString(16)}`);
  const len = buf.readInt32BE(1);
  if (len < 4 || len > MAX_MESSAGE_BYTES) throw new ProtocolError(`message length ${len}`);
  return buf.length >= len + 1 ? len + 1 : 0;
}

export function endsCycle(msg: Buffer): boolean {
  return CYCLE_ENDS.has(msg[0]!);
}

export const SYNC_MESSAGE = Buffer.from([SYNC, 0, 0, 0, 4]);

export function startupPacket(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(PROTOCOL_3, 4);
  body.copy(out, 8);
  return out;
}

/** A frontend message: type byte, length (itself included), body. */
function frontendMessage(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export function queryMessage(sql: string): Buffer {
  return frontendMessage(QUERY, Buffer.from(sql + '\0', 'utf8'));
}

export function closeStatementMessage(name: string): Buffer {
  return frontendMessage(CLOSE, Buffer.concat([Buffer.from([STATEMENT]), Buffer.from(name + '\0', 'utf8')]));
}

/**
 * Named prepared statements live in the one PGlite session, so two
 * connections preparing "q1" would collide: each connection's names get its
 * own prefix in Parse, Bind, Describe and Close. `seen` learns the names the
 * connection creates (Parse) and forgets the ones it closes. Unnamed
 * statements and portals need nothing: a connection holds the session from
 * its first message until it is idle again, and they do not outlive that.
 */
export function privateNames(msg: Buffer, prefix: string, seen: Set<string>): Buffer {
  const type = msg[0];
  if (type === PARSE) {
    const [name, end] = cstring(msg, 5);
    if (!name) return msg;
    seen.add(prefix + name);
    return splice(msg, 5, end, prefix + name);
  }
  if (type === BIND) {
    const [, portalEnd] = cstring(msg, 5);
    const [name, end] = cstring(msg, portalEnd);
    return name ? splice(msg, portalEnd, end, prefix + name) : msg;
  }
  if ((type === DESCRIBE || type === CLOSE) && msg.length > 6 && msg[5] === STATEMENT) {
    const [name, end] = cstring(msg, 6);
    if (!name) return msg;
    if (type === CLOSE) seen.delete(prefix + name);
    return splice(msg, 6, end, prefix + name);
  }
  return msg;
}

/** The string at `at` and the offset after its NUL. */
function cstring(msg: Buffer, at: number): [string, number] {
  const nul = msg.indexOf(0, at);
  if (nul < 0) throw new ProtocolError(`message '${String.fromCharCode(msg[0]!)}' has an unterminated string`);
  return [msg.toString('utf8', at, nul), nul + 1];
}

/** msg with bytes [from, to) (a name and its NUL) replaced by `name` and a NUL, its length fixed. */
function splice(msg: Buffer, from: number, to: number, name: string): Buffer {
  const out = Buffer.concat([msg.subarray(0, from), Buffer.from(name + '\0', 'utf8'), msg.subarray(to)]);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

/**
 * Follows backend messages across the chunks PGlite hands out (a message may
 * straddle two) and remembers the status of the last ReadyForQuery:
 * 'I' idle, 'T' in a transaction, 'E' in a failed transaction.
 */
export class ReadyScanner {
  /** Status byte of the last ReadyForQuery seen, or 0 for none yet. */
  status = 0;
  private header = Buffer.alloc(6);
  private headerLen = 0;
  private skip = 0;
  private type = 0;

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      // Gather type + length (+ the status byte of a ReadyForQuery).
      this.header[this.headerLen++] = chunk[i++]!;
      if (this.headerLen === 5) {
        this.type = this.header[0]!;
        const len = this.header.readInt32BE(1);
        if (this.type !== READY_FOR_QUERY) {
          this.skip = len - 4;
          this.headerLen = 0;
        }
      } else if (this.headerLen === 6) {
        this.status = this.header[5]!;
        this.skip = this.header.readInt32BE(1) - 5;
        this.headerLen = 0;
      }
    }
  }
}

export const IDLE = 'I'.charCodeAt(0);
