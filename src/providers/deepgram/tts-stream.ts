// One call's Deepgram Aura-2 TTS stream, over one or more WebSockets in turn.
// Deepgram processes at most 20 Flush messages per 60 s *per connection* and
// answers the 21st with a Warning (EXCESSIVE_FLUSH) instead of audio, so a
// stream never waits for that window: before a connection would exceed it,
// the next flush group starts on a fresh (warm) connection. Preferably at an
// idle point (nothing pending on the old one); otherwise the new connection's
// audio is held until the old one has delivered its last Flushed, so the
// caller of onAudio/onFlushed sees one ordered stream of flush groups.
// Clear drops pending text and audio on every connection. A dropped socket is
// reopened and every group it had not confirmed is sent again.
import type { DeepgramClient } from '@deepgram/sdk';
import { checkpoint } from '../../checkpoint.js';
import { guard, reportInternalError } from '../../guard.js';
import { log } from '../../log.js';
import { providerErrors, wsCloseKind } from '../../metrics/index.js';
import type { TtsEvents, TtsStream, UsageMeter } from '../types.js';

export type Socket = Awaited<ReturnType<DeepgramClient['speak']['v1']['connect']>>;

/** Deepgram's limit: Flush messages per connection per window. */
export const FLUSH_LIMIT = 20;
/**
 * The window as we count it: the documented 60 s plus a margin, because the
 * service counts arrivals, not our sends (a report measured the allowance
 * back only ~64 s after the first flush). Counting long only rotates sooner.
 */
const FLUSH_WINDOW_MS = 65_000;
/**
 * At an idle point (nothing pending on the connection) a connection with no
 * more than this many flushes left is replaced already, so that the switch
 * mid-reply, which holds audio back behind the old connection, is rare.
 */
const IDLE_ROTATE_RESERVE = 6;
const REOPEN_DELAYS_MS = [0, 200, 600];

/**
 * The SDK hands every binary message to its listeners as a Blob (its
 * binaryAwareHandler wraps the ArrayBuffer the WebSocket delivered), and a
 * Blob gives its bytes back only asynchronously, through a copy: at a few
 * hundred calls that is several percent of a core and a steady stream of
 * garbage. The pinned SDK version (5.13) keeps the WebSocket and that handler
 * on the socket object; where both are there, binary messages are taken from
 * the WebSocket directly and text messages still go through the SDK's
 * handler. Returns false (and changes nothing) when the SDK is shaped
 * differently: audio then arrives as Blobs, slower but the same.
 */
export function rawAudio(socket: Socket, onAudio: (bytes: Uint8Array) => void, onError: (err: unknown) => void): boolean {
  type Listener = (event: { data: unknown }) => void;
  const inner = socket as unknown as {
    socket?: { addEventListener?: (type: string, l: Listener) => void; removeEventListener?: (type: string, l: Listener) => void };
    binaryAwareHandler?: Listener;
  };
  const ws = inner.socket;
  const sdkHandler = inner.binaryAwareHandler;
  if (!ws || typeof ws.addEventListener !== 'function' || typeof ws.removeEventListener !== 'function' || typeof sdkHandler !== 'function') return false;
  ws.removeEventListener('message', sdkHandler);
  ws.addEventListener('message', guard('provider', (event: { data: unknown }) => {
    checkpoint();
    if (event.data instanceof ArrayBuffer) onAudio(new Uint8Array(event.data));
    else sdkHandler(event);
  }, onError));
  return true;
}

function closeSocket(s: Socket): void {
  try {
    s.sendClose({ type: 'Close' });
  } catch {
    /* not open */
  }
  try {
    s.close();
  } catch {
    /* already closed */
  }
}

type ControlMessage = { type?: string; sequence_id?: number; description?: string; code?: string; warn_msg?: string; warn_code?: string };
/** A flush group: text sent since the previous Flush, and whether its Flush was sent. */
type Group = { text: string; flushed: boolean };
/** What a connection received while an older one still had audio to deliver: audio, or a Flushed. */
type Held = Uint8Array | 'flushed';

/** One WebSocket of the stream (reopened in place if it drops) and what was sent on it. */
class Connection {
  socket: Socket | null = null;
  /** Audio taken from the WebSocket directly (see rawAudio). */
  raw = false;
  /** When each Flush was sent on the current socket: Deepgram counts per connection. */
  flushTimes: number[] = [];
  /** Groups sent here and not yet Flushed, oldest first; the last may still be open. */
  groups: Group[] = [];
  held: Held[] = [];
  /** Clears sent and not yet Cleared: audio and Flushed are dropped meanwhile. */
  clearsPending = 0;
  /** Closed by us (drained, cleared away or the stream closed): everything from it is ignored. */
  retired = false;
  /** Has had a socket (a reopen after a drop is not a wait for the limit). */
  attached = false;
  /** Flushes the service refused after all (Warning EXCESSIVE_FLUSH): the last ones sent. */
  refused = 0;

  /** Opened to replace a connection at its flush limit (flushDeferred while it connects). */
  constructor(readonly rotated: boolean) {}

  get pending(): number {
    let n = 0;
    for (const g of this.groups) if (g.flushed) n++;
    return n;
  }

  flushesInWindow(now: number): number {
    while (this.flushTimes.length && now - this.flushTimes[0] >= FLUSH_WINDOW_MS) this.flushTimes.shift();
    return this.flushTimes.length;
  }

  /** The open group (text since the last Flush), or null. */
  get open(): Group | null {
    const g = this.groups[this.groups.length - 1];
    return g && !g.flushed ? g : null;
  }
}

export class DeepgramTtsStream implements TtsStream {
  /** Oldest first: the first delivers, the last takes new text. */
  private conns: Connection[] = [];
  private closed = false;
  private chain: Promise<void> = Promise.resolve();
  /** Flushed events delivered: the sequence the stream's user sees, continuous across connections. */
  private flushedCount = 0;

  constructor(private readonly take: () => Promise<Socket>, private readonly events: TtsEvents, private readonly usage?: UsageMeter) {}

  /** Whether the current socket's audio comes straight from the WebSocket (see rawAudio). */
  get raw(): boolean {
    return this.current.raw;
  }

  /** Flushes the current connection may still take in the window. */
  get flushesLeft(): number {
    return FLUSH_LIMIT - this.current.flushesInWindow(Date.now());
  }

  /** Connections in use (the old one draining and its replacement during a switch). */
  get connections(): number {
    return this.conns.length;
  }

  /**
   * A flush waits because of the limit only when the connection that
   * replaced one at its limit is next to deliver and has not opened yet (the
   * old one is done): a warm socket makes that no wait at all.
   */
  get flushDeferred(): boolean {
    const head = this.conns[0];
    return head.rotated && !head.attached && head.pending > 0;
  }

  private get current(): Connection {
    return this.conns[this.conns.length - 1];
  }

  /** A handler of this stream threw: end this call (through the pipeline), nothing else. */
  private readonly failed = (err: unknown): void => {
    if (this.closed) return;
    this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
  };

  private readonly chainFailed = (err: unknown): void => {
    reportInternalError('provider', err);
    this.failed(err);
  };

  /** Starts the stream on its first socket. */
  start(socket: Socket): void {
    const c = new Connection(false);
    this.conns.push(c);
    this.attach(c, socket);
  }

  private attach(c: Connection, socket: Socket): void {
    c.socket = socket;
    c.attached = true;
    c.refused = 0;
    // Only the connection's current socket speaks for it: a socket it left
    // (after a refused flush) may still have messages in flight.
    c.raw = rawAudio(socket, (bytes) => socket === c.socket && this.audio(c, bytes), this.failed);
    // SDK event callbacks run under the guard: a throw ends this call, never the process.
    socket.on('message', guard('provider', (m: unknown) => {
      if (socket !== c.socket) return;
      if (m instanceof Blob) {
        // Blob → bytes is async: chain to keep audio and control messages in order.
        this.chain = this.chain.then(async () => this.audio(c, new Uint8Array(await m.arrayBuffer()))).catch(this.chainFailed);
        return;
      }
      // With raw audio everything is synchronous, in arrival order already.
      if (c.raw) this.control(c, m as ControlMessage);
      else this.chain = this.chain.then(() => this.control(c, m as ControlMessage)).catch(this.chainFailed);
    }, this.failed));
    socket.on('close', guard('provider', (e: { code?: number }) => {
      if (socket !== c.socket) return;
      c.socket = null;
      if (this.closed || c.retired) return;
      providerErrors.inc({ provider: 'tts', kind: wsCloseKind(e.code) });
      log.warn('deepgram tts socket dropped; reopening', { code: e.code });
      void this.connect(c);
    }));
    socket.on('error', guard('provider', (err: unknown) => log.debug('deepgram tts socket error', { err })));
    // A fresh socket (first use, or a reopen): everything not yet confirmed goes
    // (again) in order; a Clear sent on a dropped socket will not be answered.
    c.flushTimes = [];
    if (c.clearsPending > 0) {
      c.clearsPending = 0;
      this.events.onCleared?.();
    }
    const now = Date.now();
    for (const g of c.groups) {
      if (g.text) this.sendSpeak(c, g.text);
      if (g.flushed) {
        c.flushTimes.push(now);
        this.send(c, () => socket.sendFlush({ type: 'Flush' }));
      }
    }
  }

  /** Opens (or reopens) the socket of `c`: a warm one from the pool when there is one. */
  private async connect(c: Connection): Promise<void> {
    for (const delay of REOPEN_DELAYS_MS) {
      if (this.closed || c.retired) return;
      if (delay) await new Promise((r) => setTimeout(r, delay));
      try {
        const socket = await this.take();
        if (this.closed || c.retired) {
          // close() or a Clear ran meanwhile: the new socket must not outlive its use.
          closeSocket(socket);
          return;
        }
        this.attach(c, socket);
        return;
      } catch (err) {
        providerErrors.inc({ provider: 'tts', kind: 'reconnect_failed' });
        log.warn('deepgram tts connect failed', { err: (err as Error).message });
      }
    }
    if (!this.closed && !c.retired) this.events.onError?.(new Error('text-to-speech unavailable'));
  }

  /** Sends on the socket; while it is (re)connecting the group is sent on attach. */
  /** A Speak message: what Aura bills (characters sent, again when a reopened socket re-sends them). */
  private sendSpeak(c: Connection, text: string): void {
    this.send(c, () => {
      c.socket!.sendText({ type: 'Speak', text });
      if (this.usage) this.usage.ttsCharacters += text.length;
    });
  }

  private send(c: Connection, fn: () => void): void {
    if (!c.socket) return;
    try {
      fn();
    } catch {
      /* the socket is closing: its close handler reopens and re-sends */
    }
  }

  private audio(c: Connection, bytes: Uint8Array): void {
    if (this.closed || c.retired || c.clearsPending > 0) return;
    if (c === this.conns[0]) this.events.onAudio(bytes);
    else c.held.push(bytes);
  }

  private control(c: Connection, msg: ControlMessage): void {
    if (this.closed || c.retired) return;
    if (msg.type === 'Flushed') {
      if (c.clearsPending > 0) return;
      const i = c.groups.findIndex((g) => g.flushed);
      if (i < 0) return; // not ours (nothing pending)
      c.groups.splice(0, i + 1);
      if (c === this.conns[0]) this.deliverFlushed();
      else c.held.push('flushed');
      this.resendRefused(c);
      this.settle();
      // Idle now (the end of a reply, typically) and near the limit: switch now,
      // so the next reply's first sentence finds its socket open.
      if (c === this.current && c.pending === 0 && !c.open && this.rotationDue()) this.rotate();
    } else if (msg.type === 'Cleared') {
      if (c.clearsPending > 0 && --c.clearsPending === 0) this.events.onCleared?.();
    } else if (msg.type === 'Warning') {
      // Deepgram sends warn_code/warn_msg; the SDK's types say code/description.
      const code = msg.warn_code ?? msg.code;
      const flushLimit = code === 'EXCESSIVE_FLUSH';
      providerErrors.inc({ provider: 'tts', kind: flushLimit ? 'flush_limit' : 'warning' });
      // "Flush limit exceeded" is what `npm run load` counts in the logs.
      log.warn(flushLimit ? 'deepgram tts: Flush limit exceeded' : 'deepgram tts warning', { code, description: msg.warn_msg ?? msg.description });
      if (flushLimit && c.clearsPending === 0) {
        c.refused++;
        // No more flushes here: new groups go to a fresh connection.
        while (c.flushTimes.length < FLUSH_LIMIT) c.flushTimes.push(Date.now());
        this.resendRefused(c);
      }
    }
  }

  /**
   * The service counted differently from us and refused the last flushes
   * sent on `c`: once every flush it accepted has been Flushed, `c` moves to
   * a fresh socket and sends the refused groups again (no audio twice, and
   * in place, so still in order).
   */
  private resendRefused(c: Connection): void {
    if (c.refused === 0 || c.pending > c.refused || !c.socket) return;
    const s = c.socket;
    c.socket = null;
    c.refused = 0;
    closeSocket(s);
    void this.connect(c);
  }

  private deliverFlushed(): void {
    this.events.onFlushed?.(this.flushedCount++);
  }

  /**
   * Retires connections that are done: an older connection with nothing
   * pending is closed, and the next one hands over what it held back.
   */
  private settle(): void {
    for (let i = 0; i < this.conns.length - 1; i++) {
      const c = this.conns[i];
      if (c.pending === 0 && !c.retired) this.retire(c);
    }
    while (this.conns.length > 1 && this.conns[0].retired && this.conns[0].held.length === 0) {
      this.conns.shift();
      const head = this.conns[0];
      const held = head.held;
      head.held = [];
      for (const h of held) {
        if (h === 'flushed') this.deliverFlushed();
        else this.events.onAudio(h);
        if (this.closed || this.conns[0] !== head) return; // a handler closed or cleared the stream
      }
    }
  }

  private retire(c: Connection): void {
    c.retired = true;
    const s = c.socket;
    c.socket = null;
    if (s) closeSocket(s);
  }

  /** Whether the current connection must be replaced before its next group: at its limit, or idle and near it. */
  private rotationDue(): boolean {
    const c = this.current;
    const used = c.flushesInWindow(Date.now());
    return used >= FLUSH_LIMIT || (c.pending === 0 && used >= FLUSH_LIMIT - IDLE_ROTATE_RESERVE);
  }

  /** New groups go to a fresh connection from now on; an idle old one closes at once. */
  private rotate(): void {
    const next = new Connection(true);
    this.conns.push(next);
    void this.connect(next);
    this.settle();
  }

  private openGroup(): { c: Connection; g: Group } {
    const open = this.current.open;
    if (open) return { c: this.current, g: open };
    if (this.rotationDue()) this.rotate();
    const c = this.current;
    const g: Group = { text: '', flushed: false };
    c.groups.push(g);
    return { c, g };
  }

  speak(text: string): void {
    if (this.closed || !text) return;
    const chunk = /\s$/.test(text) ? text : text + ' ';
    const { c, g } = this.openGroup();
    g.text += chunk;
    this.sendSpeak(c, chunk);
  }

  flush(): void {
    if (this.closed) return;
    const { c, g } = this.openGroup();
    g.flushed = true;
    // Counted now even while the socket opens (then it is sent, and counted again, on attach).
    c.flushTimes.push(Date.now());
    this.send(c, () => c.socket!.sendFlush({ type: 'Flush' }));
  }

  clear(): void {
    if (this.closed) return;
    // Older connections only hold audio of cleared groups: close them.
    const keep = this.current;
    for (const c of this.conns) if (c !== keep) this.retire(c);
    this.conns = [keep];
    keep.held = [];
    keep.groups = [];
    keep.refused = 0;
    if (!keep.socket) return; // connecting: nothing was sent on it, nothing will be
    keep.clearsPending++;
    this.send(keep, () => keep.socket!.sendClear({ type: 'Clear' }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.conns) this.retire(c);
  }
}
