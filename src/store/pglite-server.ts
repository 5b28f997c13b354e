// Serves the embedded database (PGlite, one PostgreSQL session) to several
// `pg` connections on a loopback socket: the main thread's and one per media
// worker (WORKERS). PGlite has a single session, so whoever sends a message
// holds it until the backend is idle again — ReadyForQuery 'I' at the end of a
// simple query, of a Parse…Sync cycle, or of a whole transaction — and the
// others' messages wait their turn. (@electric-sql/pglite-socket interleaves
// connections message by message: another connection's Parse landed between
// one's Parse and Bind, and wrong statements were bound.) Named prepared
// statements are made private to their connection (pglite-protocol.ts).
// A client's startup packet never reaches PGlite (one with an empty user name
// left it unable to start any further connection): every connection gets the
// answer PGlite gave to ours when the server started — once it has proved it
// knows the per-boot password (SCRAM-SHA-256, pglite-auth.ts). Until then
// nothing it sends reaches PGlite, and it has a few seconds and a few
// kilobytes to get there: any local process can connect to a loopback port.
//
// What stays shared, as one session implies: SET, SQL-level PREPARE names,
// temporary tables. Our code uses none of them.
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { guard } from '../guard.js';
import { log } from '../log.js';
import { AUTH_FAILED_RESPONSE, AuthError, type AuthFailure, readPasswordMessage, SASL_REQUEST, ScramExchange, ScramVerifier } from './pglite-auth.js';
import {
  closeStatementMessage, endsCycle, startupPacket, IDLE, privateNames, ProtocolError, queryMessage, readUntyped, ReadyScanner, SYNC_MESSAGE, TERMINATE, typedLength,
} from './pglite-protocol.js';

export interface PgliteServerOptions {
  db: PGlite;
  host?: string;
  port?: number;
  maxConnections?: number;
  /**
   * A connection holding the session (mid-transaction) that sends nothing for
   * this long is closed and its transaction rolled back, so one stuck client
   * cannot stall every thread's database access.
   */
  holdTimeoutMs?: number;
  /** The per-boot password every connection must prove it knows (db.ts makes it; never logged). */
  password: string;
  /** A connection must have authenticated this long after it connected, or it is closed (slow-loris). */
  authTimeoutMs?: number;
  /** Each failed authentication, by reason (counted by the thread that owns /metrics). */
  onAuthFailure?: (reason: AuthFailure) => void;
}

/** Bytes a connection may send before it has authenticated: a startup packet and two SCRAM messages are well under this. */
const MAX_PRE_AUTH_BYTES = 16 * 1024;

class Connection {
  /** Where the connection is: startup packet, SCRAM client-first, SCRAM client-final, authenticated. */
  phase: 'startup' | 'sasl_first' | 'sasl_final' | 'ready' = 'startup';
  /** Refused (28P01 sent): whatever else it sends is ignored until it is closed. */
  refused = false;
  authTimer: NodeJS.Timeout | null = null;
  private preAuthBytes = 0;
  private readonly scram: ScramExchange;
  /** Complete frontend messages not yet run, names already made private. */
  readonly pending: Buffer[] = [];
  /** Its named statements (for closing them when it goes). */
  readonly statements = new Set<string>();
  /** Messages run since the backend was last ready (a cycle is open). */
  midCycle = false;
  closed = false;
  cleaned = false;
  holdTimer: NodeJS.Timeout | null = null;
  private input: Buffer = Buffer.alloc(0);

  constructor(readonly id: number, readonly socket: net.Socket, private readonly startupReply: Buffer, verifier: ScramVerifier) {
    this.scram = new ScramExchange(verifier);
  }

  get prefix(): string {
    return `c${this.id}_`;
  }

  /**
   * Splits what arrived into messages; answers SSL/GSS requests and the
   * authentication exchange itself. False when the connection must end;
   * AuthError when it failed to authenticate.
   */
  receive(data: Buffer): boolean {
    if (this.phase !== 'ready' && (this.preAuthBytes += data.length) > MAX_PRE_AUTH_BYTES) throw new AuthError('auth_protocol', 'too many bytes before authentication');
    this.input = this.input.length ? Buffer.concat([this.input, data]) : data;
    for (;;) {
      if (this.phase === 'startup') {
        const m = readUntyped(this.input);
        if (!m) return true;
        this.input = this.input.subarray(m.bytes.length);
        if (m.kind === 'cancel') return false;
        // No TLS on a loopback socket: 'N' and the client carries on in plain text.
        if (m.kind === 'ssl' || m.kind === 'gssenc') this.socket.write('N');
        else {
          this.phase = 'sasl_first';
          this.socket.write(SASL_REQUEST);
        }
        continue;
      }
      if (this.phase !== 'ready') {
        const msg = readPasswordMessage(this.input);
        if (!msg) return true;
        this.input = this.input.subarray(msg.length);
        if (this.phase === 'sasl_first') {
          this.socket.write(this.scram.first(msg));
          this.phase = 'sasl_final';
        } else {
          // SASLFinal, then what PGlite answered our own startup (AuthenticationOk, parameters, ReadyForQuery).
          this.socket.write(Buffer.concat([this.scram.final(msg), this.startupReply]));
          this.phase = 'ready';
          if (this.authTimer) clearTimeout(this.authTimer);
          this.authTimer = null;
        }
        continue;
      }
      const len = typedLength(this.input);
      if (len === 0) return true;
      const msg = this.input.subarray(0, len);
      this.input = this.input.subarray(len);
      if (msg[0] === TERMINATE) return false;
      this.pending.push(privateNames(Buffer.from(msg), this.prefix, this.statements));
    }
  }

  /** The next messages to run as one step: up to and including the end of a cycle. */
  nextStep(): { bytes: Buffer; endsCycle: boolean } | null {
    if (this.pending.length === 0) return null;
    const end = this.pending.findIndex(endsCycle);
    const taken = this.pending.splice(0, end < 0 ? this.pending.length : end + 1);
    return { bytes: taken.length === 1 ? taken[0]! : Buffer.concat(taken), endsCycle: end >= 0 };
  }
}

export class PgliteServer {
  private readonly db: PGlite;
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  /** The connection holding the session, if any. */
  private owner: Connection | null = null;
  /** Connections with messages (or a clean-up) waiting for the session, first come first served. */
  private readonly waiting: Connection[] = [];
  private running = false;
  private nextId = 1;
  private readonly holdTimeoutMs: number;
  private startupReply = Buffer.alloc(0);
  private readonly verifier: ScramVerifier;
  private readonly authTimeoutMs: number;

  constructor(private readonly opts: PgliteServerOptions) {
    this.db = opts.db;
    this.holdTimeoutMs = opts.holdTimeoutMs ?? 30_000;
    this.authTimeoutMs = opts.authTimeoutMs ?? 5_000;
    if (!opts.password) throw new Error('the embedded database server needs a password');
    this.verifier = new ScramVerifier(opts.password);
    this.server = net.createServer(guard('store', (socket: net.Socket) => this.accept(socket)));
    this.server.maxConnections = opts.maxConnections ?? 64;
  }

  async start(): Promise<string> {
    this.startupReply = Buffer.from(await this.db.runExclusive(() => this.db.execProtocolRaw(startupPacket('postgres', 'postgres'))));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    const a = this.server.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const c = new Connection(this.nextId++, socket, this.startupReply, this.verifier);
    this.conns.add(c);
    socket.setNoDelay(true);
    c.authTimer = setTimeout(guard('store', () => this.refuse(c, new AuthError('auth_timeout', 'not authenticated in time')), () => socket.destroy()), this.authTimeoutMs);
    socket.on('data', guard('store', (data: Buffer) => {
      if (c.refused) return;
      let ok: boolean;
      try {
        ok = c.receive(data);
      } catch (err) {
        if (err instanceof AuthError) return this.refuse(c, err);
        if (!(err instanceof ProtocolError)) throw err;
        if (c.phase !== 'ready') return this.refuse(c, new AuthError('auth_protocol', err.message));
        log.warn('embedded database: bad message from a connection', { err: err.message });
        ok = false;
      }
      if (!ok) socket.destroy();
      if (c.pending.length) this.wake(c);
    }, () => socket.destroy()));
    socket.on('error', () => {});
    socket.on('close', guard('store', () => {
      if (!c.refused && (c.phase === 'sasl_first' || c.phase === 'sasl_final')) this.opts.onAuthFailure?.('auth_missing');
      c.closed = true;
      c.pending.length = 0;
      this.conns.delete(c);
      if (c.holdTimer) clearTimeout(c.holdTimer);
      if (c.authTimer) clearTimeout(c.authTimer);
      // What it left in the session (an open cycle or transaction, its statements) is undone in its turn.
      if (c.midCycle || c.statements.size || c === this.owner) this.wake(c);
    }));
  }

  /** A connection that did not authenticate: 28P01 (as PostgreSQL answers a wrong password), counted, closed. */
  private refuse(c: Connection, err: AuthError): void {
    if (c.refused || c.closed) return;
    c.refused = true;
    if (c.authTimer) clearTimeout(c.authTimer);
    c.authTimer = null;
    log.debug('embedded database: a connection failed to authenticate', { reason: err.reason, err: err.message });
    this.opts.onAuthFailure?.(err.reason);
    c.socket.end(AUTH_FAILED_RESPONSE, () => c.socket.destroy());
  }

  private wake(c: Connection): void {
    if (c.holdTimer) {
      clearTimeout(c.holdTimer);
      c.holdTimer = null;
    }
    if (c !== this.owner && !this.waiting.includes(c)) this.waiting.push(c);
    void this.run();
  }

  /** Runs steps one at a time: the owner's while it holds the session, else the next waiting connection's. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const c = this.owner ?? (this.owner = this.waiting.shift() ?? null);
        if (!c) return;
        if (c.closed) {
          await this.cleanUp(c);
          this.owner = null;
          continue;
        }
        const step = c.nextStep();
        if (!step) {
          // Holding the session (a transaction or cycle is open) and waiting for its client.
          c.holdTimer ??= setTimeout(guard('store', () => {
            log.warn('embedded database: a connection held the session idle too long; closing it', { holdTimeoutMs: this.holdTimeoutMs });
            c.socket.destroy();
          }), this.holdTimeoutMs);
          return;
        }
        let status: number;
        try {
          status = await this.exec(step.bytes, (chunk) => c.socket.writable && c.socket.write(chunk));
        } catch (err) {
          // PGlite refused this input (e.g. a startup packet it cannot process): this connection ends, the session goes on.
          log.warn('embedded database: a connection\'s message failed; closing it', { err: (err as Error).message });
          c.socket.destroy();
          c.closed = true;
          c.midCycle = true;
          continue;
        }
        c.midCycle = !(step.endsCycle && status !== 0);
        if (step.endsCycle && status === IDLE) {
          this.owner = null;
          if (c.pending.length) this.waiting.push(c);
        }
      }
    } catch (err) {
      // Even undoing a connection's leftovers failed: PGlite itself is broken; every connection ends, as with a lost server.
      log.error('embedded database failed', { err });
      this.owner = null;
      this.waiting.length = 0;
      for (const c of this.conns) c.socket.destroy();
    } finally {
      this.running = false;
    }
  }

  /** Runs bytes on the session, handing its output to `out`; the last ReadyForQuery status (0 for none). */
  private async exec(bytes: Buffer, out: (chunk: Buffer) => unknown): Promise<number> {
    const scanner = new ReadyScanner();
    await this.db.runExclusive(() =>
      this.db.execProtocolRawStream(bytes, {
        onRawData: (chunk: Uint8Array) => {
          scanner.push(chunk);
          // PGlite reuses its buffer: copy before the socket keeps it.
          if (chunk.length) out(Buffer.from(chunk));
        },
      }),
    );
    return scanner.status;
  }

  /** A connection that went away: close its open cycle, roll back its transaction, drop its statements. */
  private async cleanUp(c: Connection): Promise<void> {
    if (c.cleaned) return;
    c.cleaned = true;
    const discard = () => {};
    if (c.midCycle) await this.exec(SYNC_MESSAGE, discard);
    if (this.db.isInTransaction()) await this.exec(queryMessage('rollback'), discard);
    if (c.statements.size) await this.exec(Buffer.concat([...[...c.statements].map(closeStatementMessage), SYNC_MESSAGE]), discard);
  }
}
