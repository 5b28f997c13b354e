// Recording files, written while calls go on by one writer thread per node
// (per worker isolate). The frame path only hands a finished second of audio
// over: the recorder fills a slot of shared memory that has room for the WAV
// header in front, the header is put there, and the slot's number goes to
// the thread in one message per BATCH_MS for every file that had a chunk.
// The thread appends the data and rewrites the header with plain
// synchronous writes, then hands the slots back. In a micro-run of 400
// recorders (not in bench/), the libuv thread pool's two asynchronous writes
// per chunk cost about 14 ms of CPU a second against ~10 for this; the load
// figures are in README → Benchmarks → Load → Recording. A slow disk blocks the writer thread, never the pacing clock:
// chunks it has not written within MAX_BACKLOG_BYTES of a file are dropped
// and counted instead of growing the heap.
//
// A process killed at any moment leaves a file whose header counts at most
// the data that reached it: a valid, playable WAV up to the last chunk.
import { Worker } from 'node:worker_threads';
import { reportInternalError } from '../guard.js';
import { ULAW_WAV_HEADER_BYTES, ulawWavHeader, ulawWavHeaderInto } from '../media/wav.js';
import { nameThisThreadSource } from '../thread-name.js';

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
/**
 * Chunk slots live in shared memory (arenas of ARENA_SLOTS slots, added as
 * needed and shared with the thread once): the recorder writes a chunk into
 * a slot, and the message that hands it over carries only numbers — no
 * copy, no transfer (detaching and re-wrapping a buffer per chunk cost as
 * much as the writes). A chunk larger than a slot (a side far ahead forcing
 * out more than a second, rare) travels as its own transferred buffer.
 */
/** One second of dual audio (the recorder's chunk). */
const SLOT_DATA = 2 * 8000;
const SLOT_BYTES = DATA_AT + SLOT_DATA;
const ARENA_SLOTS = 256;

type Op =
  | { t: 'open'; id: number; file: string; header: Uint8Array }
  | { t: 'arena'; index: number; sab: SharedArrayBuffer }
  /**
   * Slot `slot` (or `buf`, transferred) holds the header at HEADER_AT and
   * `len` data bytes at DATA_AT (from the slot's start), for file offset `at`.
   */
  | { t: 'data'; id: number; at: number; size: number; slot: number; buf: ArrayBuffer | null; len: number }
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
${nameThisThreadSource('aybiza-rec')}
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const files = new Map();
const HEADER_AT = ${HEADER_AT}, DATA_AT = ${DATA_AT}, SLOT_BYTES = ${SLOT_BYTES}, ARENA_SLOTS = ${ARENA_SLOTS};
const arenas = [];
parentPort.on('message', (ops) => {
  const acks = new Map();
  const slots = [];
  const ack = (id) => { let a = acks.get(id); if (!a) acks.set(id, (a = { id })); return a; };
  for (const op of ops) {
    const f = files.get(op.id);
    try {
      if (op.t === 'arena') {
        arenas[op.index] = new Uint8Array(op.sab);
      } else if (op.t === 'open') {
        fs.mkdirSync(path.dirname(op.file), { recursive: true });
        const fd = fs.openSync(op.file, 'w', 0o640);
        files.set(op.id, { fd, failed: false });
        fs.writeSync(fd, op.header, 0, op.header.length, 0);
      } else if (op.t === 'data') {
        let u8, base = 0;
        if (op.buf) {
          u8 = new Uint8Array(op.buf);
        } else {
          slots.push(op.slot);
          u8 = arenas[Math.floor(op.slot / ARENA_SLOTS)];
          base = (op.slot % ARENA_SLOTS) * SLOT_BYTES;
        }
        if (!f || f.failed) continue;
        fs.writeSync(f.fd, u8, base + DATA_AT, op.len, op.at);
        // The sizes move only once the data they count is in the file.
        fs.writeSync(f.fd, u8, base + HEADER_AT, DATA_AT - HEADER_AT, 0);
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
  parentPort.postMessage({ acks: [...acks.values()], slots });
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
  private readonly arenas: SharedArrayBuffer[] = [];
  private readonly arenaIndex = new Map<SharedArrayBuffer, number>();
  /** Slots not holding a chunk (numbered across arenas). */
  private free: number[] = [];

  /** A chunk buffer of `bytes` data bytes with room for the header in front (see HEADER_AT): a shared slot, or its own buffer when larger. */
  alloc(bytes: number): Buffer {
    if (bytes > SLOT_DATA) return Buffer.from(new ArrayBuffer(DATA_AT + bytes), DATA_AT, bytes);
    if (this.free.length === 0) this.addArena();
    const slot = this.free.pop()!;
    return Buffer.from(this.arenas[Math.floor(slot / ARENA_SLOTS)], (slot % ARENA_SLOTS) * SLOT_BYTES + DATA_AT, bytes);
  }

  private addArena(): void {
    const index = this.arenas.length;
    const sab = new SharedArrayBuffer(ARENA_SLOTS * SLOT_BYTES);
    this.arenas.push(sab);
    this.arenaIndex.set(sab, index);
    for (let k = ARENA_SLOTS - 1; k >= 0; k--) this.free.push(index * ARENA_SLOTS + k);
    if (this.worker) this.send({ t: 'arena', index, sab });
  }

  /** Gives a chunk's slot back without writing it (a dropped chunk must not keep its slot). */
  release(chunk: Buffer): void {
    const slot = this.slotOf(chunk);
    if (slot >= 0) this.free.push(slot);
  }

  /** The slot a chunk from `alloc` occupies; -1 for one with its own buffer. */
  slotOf(chunk: Buffer): number {
    const index = this.arenaIndex.get(chunk.buffer as SharedArrayBuffer);
    if (index === undefined) return -1;
    const at = chunk.byteOffset - DATA_AT;
    return at % SLOT_BYTES === 0 ? index * ARENA_SLOTS + at / SLOT_BYTES : -1;
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
    if (op.t === 'data' && op.buf) this.transfer.push(op.buf);
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
    // A new thread (the first, or after one died) gets every arena first; slots the old one held are free again.
    this.batch.unshift(...this.arenas.map((sab, index) => ({ t: 'arena' as const, index, sab })));
    const pending = new Set(this.batch.map((op) => (op.t === 'data' ? op.slot : -1)));
    this.free = this.arenas.flatMap((_, index) => Array.from({ length: ARENA_SLOTS }, (_, k) => index * ARENA_SLOTS + k)).filter((k) => !pending.has(k));
    w.on('message', (m: { acks: Ack[]; slots: number[] }) => {
      try {
        for (const slot of m.slots) this.free.push(slot);
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
    if (this.error || this.closing) return this.writer.release(chunk);
    if (this.queued - this.written + chunk.length > MAX_BACKLOG_BYTES) {
      this.dropped++;
      return this.writer.release(chunk);
    }
    let own = chunk;
    let slot = this.writer.slotOf(own);
    // Not from alloc (or a view into a larger buffer): copied into a buffer of ours.
    if (slot < 0 && (own.byteOffset !== DATA_AT || own.buffer.byteLength !== DATA_AT + own.length || own.buffer instanceof SharedArrayBuffer)) {
      own = this.writer.alloc(chunk.length);
      own.set(chunk);
      slot = this.writer.slotOf(own);
    }
    const at = ULAW_WAV_HEADER_BYTES + this.queued;
    this.queued += chunk.length;
    // The header goes in front of the data, in the same slot or buffer.
    ulawWavHeaderInto(Buffer.from(own.buffer, own.byteOffset - DATA_AT + HEADER_AT, ULAW_WAV_HEADER_BYTES), this.channels, this.queued);
    this.writer.send({ t: 'data', id: this.id, at, size: this.queued, slot, buf: slot < 0 ? (own.buffer as ArrayBuffer) : null, len: own.length });
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
