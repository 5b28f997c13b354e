// Recording files, written while calls go on by one writer thread per node
// (per worker isolate). The frame path only hands a finished second of audio
// over: the recorder fills a pooled buffer that has room for the WAV header
// in front, the header is put there, and the buffer is *transferred* (not
// copied) to the thread in one message per BATCH_MS for every file that had
// a chunk. The thread appends the data and rewrites the header with plain
// synchronous writes, then transfers the buffers back to the pool. Measured
// at 400 recorded calls (bench notes in the README), the libuv thread pool's
// two asynchronous writes per chunk and a copying message each cost several
// times the CPU of this (wake-ups, promises, and per-chunk garbage on both
// sides). A slow disk blocks the writer thread, never the pacing clock:
// chunks it has not written within MAX_BACKLOG_BYTES of a file are dropped
// and counted instead of growing the heap.
//
// A process killed at any moment leaves a file whose header counts at most
// the data that reached it: a valid, playable WAV up to the last chunk.
import { Worker } from 'node:worker_threads';
import { reportInternalError } from '../guard.js';
import { ULAW_WAV_HEADER_BYTES, ulawWavHeader, ulawWavHeaderInto } from '../media/wav.js';

/** Unwritten chunks held at most per file (a stalled disk must not grow the heap without end): 30 s of audio. */
const MAX_BACKLOG_BYTES = 30 * 16_000;

/** How long ops wait to leave together. */
const BATCH_MS = 100;

/**
 * A pooled chunk buffer: HEADER_AT bytes of padding (so the data that
 * follows the header starts 4-byte aligned, for the recorder's 32-bit
 * interleave), the header, then the data.
 */
const HEADER_AT = 2;
const DATA_AT = HEADER_AT + ULAW_WAV_HEADER_BYTES;
/** Pooled buffers kept per size (more come back only after a burst). */
const POOL_MAX = 256;

type Op =
  | { t: 'open'; id: number; file: string; header: Uint8Array }
  /** `buf` holds the header at HEADER_AT and `len` data bytes at DATA_AT, for file offset `at`. */
  | { t: 'data'; id: number; at: number; size: number; buf: ArrayBuffer; len: number }
  | { t: 'close'; id: number };

/** What the thread reports back per file after a batch: data bytes on disk with a header counting them, an error, closed. */
interface Ack {
  id: number;
  written?: number;
  error?: string;
  closed?: boolean;
}

// Self-contained (CommonJS, no imports of ours): it runs the same from dist/ and under vitest's TypeScript.
const THREAD = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const files = new Map();
const HEADER_AT = ${HEADER_AT}, DATA_AT = ${DATA_AT};
parentPort.on('message', (ops) => {
  const acks = new Map();
  const back = [];
  const ack = (id) => { let a = acks.get(id); if (!a) acks.set(id, (a = { id })); return a; };
  for (const op of ops) {
    const f = files.get(op.id);
    try {
      if (op.t === 'open') {
        fs.mkdirSync(path.dirname(op.file), { recursive: true });
        const fd = fs.openSync(op.file, 'w', 0o640);
        files.set(op.id, { fd, failed: false });
        fs.writeSync(fd, op.header, 0, op.header.length, 0);
      } else if (op.t === 'data') {
        back.push(op.buf);
        if (!f || f.failed) continue;
        const u8 = new Uint8Array(op.buf);
        fs.writeSync(f.fd, u8, DATA_AT, op.len, op.at);
        // The sizes move only once the data they count is in the file.
        fs.writeSync(f.fd, u8, HEADER_AT, DATA_AT - HEADER_AT, 0);
        ack(op.id).written = op.size;
      } else if (op.t === 'close') {
        files.delete(op.id);
        ack(op.id).closed = true;
        if (f && f.fd >= 0) fs.closeSync(f.fd);
      }
    } catch (err) {
      if (f) f.failed = true;
      else if (op.t === 'open') files.set(op.id, { fd: -1, failed: true });
      ack(op.id).error = String(err && err.message || err);
    }
  }
  parentPort.postMessage({ acks: [...acks.values()], back }, back);
});
`;

/** The node's writer thread: started with the first recording, stopped by `stop()`; a thread that dies fails its open files and is replaced on the next open. */
export class RecordingWriter {
  private worker: Worker | null = null;
  private readonly files = new Map<number, RecordingFile>();
  private nextId = 1;
  private batch: Op[] = [];
  /** The buffers the batch transfers. */
  private transfer: ArrayBuffer[] = [];
  private scheduled = false;
  /** Chunk buffers by data size, back from the thread. */
  private readonly pool = new Map<number, ArrayBuffer[]>();

  /** A chunk buffer of `bytes` data bytes with room for the header in front (see HEADER_AT). */
  alloc(bytes: number): Buffer {
    const ab = this.pool.get(bytes)?.pop() ?? new ArrayBuffer(DATA_AT + bytes);
    return Buffer.from(ab, DATA_AT, bytes);
  }

  private recycle(ab: ArrayBuffer): void {
    const bytes = ab.byteLength - DATA_AT;
    let list = this.pool.get(bytes);
    if (!list) this.pool.set(bytes, (list = []));
    if (list.length < POOL_MAX) list.push(ab);
  }

  /** @internal */ open(file: RecordingFile, path: string, header: Uint8Array): number {
    const id = this.nextId++;
    this.files.set(id, file);
    if (!this.worker) this.start();
    // Held open only while it has files: an idle writer never keeps the process alive.
    if (this.files.size === 1) this.worker!.ref();
    this.send({ t: 'open', id, file: path, header });
    return id;
  }

  /** @internal */ send(op: Op): void {
    this.batch.push(op);
    if (op.t === 'data') this.transfer.push(op.buf);
    if (this.scheduled) return;
    this.scheduled = true;
    // One message per BATCH_MS for every file that had something: the thread wakes ten times a second, not per chunk.
    setTimeout(() => {
      this.scheduled = false;
      const ops = this.batch;
      const transfer = this.transfer;
      this.batch = [];
      this.transfer = [];
      try {
        if (this.worker) this.worker.postMessage(ops, transfer);
        // The thread is gone (its files were failed): what was meant for it is answered here.
        else for (const op of ops) if (op.t === 'close') this.files.get(op.id)?.acked({ id: op.id, closed: true });
      } catch (err) {
        reportInternalError('call', err);
      }
    }, BATCH_MS).unref();
  }

  private start(): void {
    const w = new Worker(THREAD, { eval: true, stdout: false, stderr: false });
    this.worker = w;
    w.on('message', (m: { acks: Ack[]; back: ArrayBuffer[] }) => {
      try {
        for (const ab of m.back) this.recycle(ab);
        for (const a of m.acks) this.files.get(a.id)?.acked(a);
      } catch (err) {
        reportInternalError('call', err);
      }
    });
    const gone = (why: unknown) => {
      if (this.worker !== w) return;
      this.worker = null;
      reportInternalError('call', why instanceof Error ? why : new Error(`recording writer exited (${String(why)})`));
      for (const f of [...this.files.values()]) f.acked({ id: 0, error: 'recording writer stopped', closed: true });
    };
    w.on('error', gone);
    w.on('exit', gone);
  }

  /** @internal */ forget(id: number): void {
    this.files.delete(id);
    if (this.files.size === 0) this.worker?.unref();
  }

  /** Files being written (tests). */
  get openFiles(): number {
    return this.files.size;
  }

  /** Stops the thread (after every file was closed: shutdown). */
  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}

export class RecordingFile {
  private readonly id: number;
  /** Data bytes handed in (written or queued). */
  private queued = 0;
  /** Data bytes on disk with a header counting them. */
  written = 0;
  /** Chunks dropped because the disk fell behind. */
  dropped = 0;
  error: Error | null = null;
  private closing: Promise<void> | null = null;
  private closed = false;
  private onClosed: (() => void) | null = null;

  constructor(private readonly writer: RecordingWriter, readonly file: string, private readonly channels: 1 | 2) {
    this.id = writer.open(this, file, ulawWavHeader(channels, 0));
  }

  /** Queues the chunk and takes it: a buffer from `writer.alloc` travels as it is, anything else is copied into one. */
  append(chunk: Buffer): void {
    if (this.error || this.closing) return;
    if (this.queued - this.written + chunk.length > MAX_BACKLOG_BYTES) {
      this.dropped++;
      return;
    }
    let own = chunk;
    if (own.byteOffset !== DATA_AT || own.buffer.byteLength !== DATA_AT + own.length) {
      own = this.writer.alloc(chunk.length);
      own.set(chunk);
    }
    const at = ULAW_WAV_HEADER_BYTES + this.queued;
    this.queued += chunk.length;
    ulawWavHeaderInto(Buffer.from(own.buffer, HEADER_AT, ULAW_WAV_HEADER_BYTES), this.channels, this.queued);
    this.writer.send({ t: 'data', id: this.id, at, size: this.queued, buf: own.buffer as ArrayBuffer, len: own.length });
  }

  /** @internal */ acked(a: Ack): void {
    if (a.written !== undefined) this.written = Math.max(this.written, a.written);
    if (a.error) this.error ??= new Error(a.error);
    if (a.closed && !this.closed) {
      this.closed = true;
      this.writer.forget(this.id);
      this.onClosed?.();
    }
  }

  /** Waits for every queued write, then closes; the file is complete. */
  close(): Promise<void> {
    this.closing ??= this.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          this.onClosed = resolve;
          this.writer.send({ t: 'close', id: this.id });
        });
    return this.closing;
  }

  get bytes(): number {
    return ULAW_WAV_HEADER_BYTES + this.written;
  }
}
