// Recording files, written while calls go on by one native thread per node
// (per worker isolate: native/recording_writer.cc). The frame path only hands
// a finished second of audio over: the recorder fills a slot of an arena the
// native writer allocated, with room for the WAV header in front; the header
// is put there and the slot's number handed over (one mutex round trip, no
// copy, no message). The thread wakes at most every 100 ms while files are
// open, appends the data and rewrites the header with pwrite, and frees the
// slot (it replaced a JS worker thread and its messages; README → Benchmarks →
// Load → Recording has the load figures). A slow disk blocks the writer thread, never
// the pacing clock: chunks it has not written within MAX_BACKLOG_BYTES of a
// file are dropped and counted instead of growing memory.
//
// A process killed at any moment leaves a file whose header counts at most
// the data that reached it: a valid, playable WAV up to the last chunk.
import path from 'node:path';
import { reportInternalError } from '../guard.js';
import { ULAW_WAV_HEADER_BYTES, ulawWavHeader, ulawWavHeaderInto } from '../media/wav.js';
import { native } from '../media/native.js';

/** Unwritten chunks held at most per file (a stalled disk must not grow memory without end): 30 s of audio. */
const MAX_BACKLOG_BYTES = 30 * 16_000;

/**
 * A slot: HEADER_AT bytes of padding (so the data that follows the header
 * starts 4-byte aligned, for the recorder's 32-bit interleave), the header,
 * then one second of dual audio (the recorder's chunk). A chunk larger than a
 * slot (a side far ahead forcing out more than a second, rare) is copied by
 * the native side instead.
 */
const HEADER_AT = 2;
const DATA_AT = HEADER_AT + ULAW_WAV_HEADER_BYTES;
const SLOT_DATA = 2 * 8000;
const SLOT_BYTES = DATA_AT + SLOT_DATA;
const ARENA_SLOTS = 256;
/** How often closing files are looked at. */
const CLOSE_POLL_MS = 10;

/** native/recording_writer.cc */
interface NativeRecordingWriter {
  arena(): ArrayBuffer;
  /** A free slot (now held by JS), or -1 when every arena is full. */
  alloc(): number;
  release(slot: number): void;
  open(dir: string, name: string, header: Uint8Array): number;
  write(id: number, slot: number, len: number, at: number, size: number): void;
  writeCopy(id: number, data: Uint8Array, header: Uint8Array, at: number, size: number): void;
  close(id: number): void;
  written(id: number): number;
  error(id: number): string | undefined;
  closed(id: number): boolean;
  forget(id: number): void;
  hold(on: boolean): void;
  stop(): void;
}
type NativeRecordingWriterClass = new (headerAt: number, headerBytes: number, slotData: number, arenaSlots: number) => NativeRecordingWriter;

/** The node's writer: its thread starts with the first recording and stops with `stop()` (the next recording starts a new one). */
export class RecordingWriter {
  private w: NativeRecordingWriter | null = null;
  private readonly files = new Map<number, RecordingFile>();
  private arenas: ArrayBuffer[] = [];
  private arenaIndex = new Map<ArrayBufferLike, number>();
  private full = false;
  private readonly closing = new Map<number, () => void>();
  private poll: NodeJS.Timeout | null = null;

  /** @internal */ get native(): NativeRecordingWriter {
    if (!this.w) {
      this.w = new (native.RecordingWriter as NativeRecordingWriterClass)(HEADER_AT, ULAW_WAV_HEADER_BYTES, SLOT_DATA, ARENA_SLOTS);
      this.arenas = [];
      this.arenaIndex = new Map();
      this.full = false;
    }
    return this.w;
  }

  /** A chunk buffer of `bytes` data bytes with room for the header in front (see HEADER_AT): a slot, or its own buffer when larger or when the arenas are full. */
  alloc(bytes: number): Buffer {
    if (bytes <= SLOT_DATA) {
      const w = this.native;
      let slot = w.alloc();
      if (slot < 0 && !this.full) {
        try {
          const ab = w.arena();
          this.arenaIndex.set(ab, this.arenas.length);
          this.arenas.push(ab);
          slot = w.alloc();
        } catch {
          this.full = true;
        }
      }
      if (slot >= 0) return Buffer.from(this.arenas[Math.floor(slot / ARENA_SLOTS)], (slot % ARENA_SLOTS) * SLOT_BYTES + DATA_AT, bytes);
    }
    return Buffer.from(new ArrayBuffer(DATA_AT + bytes), DATA_AT, bytes);
  }

  /** Gives a chunk's slot back without writing it (a dropped chunk must not keep its slot). */
  release(chunk: Buffer): void {
    const slot = this.slotOf(chunk);
    if (slot >= 0) this.w?.release(slot);
  }

  /** The slot a chunk from `alloc` occupies; -1 for one with its own buffer. */
  slotOf(chunk: Buffer): number {
    const index = this.arenaIndex.get(chunk.buffer);
    if (index === undefined) return -1;
    const at = chunk.byteOffset - DATA_AT;
    return at % SLOT_BYTES === 0 ? index * ARENA_SLOTS + at / SLOT_BYTES : -1;
  }

  /** @internal */ open(file: RecordingFile, filePath: string, header: Uint8Array): number {
    const abs = path.resolve(filePath);
    const id = this.native.open(path.dirname(abs), path.basename(abs), header);
    this.files.set(id, file);
    return id;
  }

  /** @internal Resolves `done` once the thread has closed the file (it reads the file's final state first). */
  close(id: number, done: () => void): void {
    if (!this.w) return done();
    this.w.close(id);
    this.closing.set(id, done);
    // A close keeps the process alive until the file is complete (shutdown awaits it).
    this.poll ??= setInterval(() => this.settle(), CLOSE_POLL_MS);
  }

  private settle(): void {
    try {
      for (const [id, done] of this.closing) {
        if (this.w && !this.w.closed(id)) continue;
        this.closing.delete(id);
        this.files.get(id)?.refresh();
        this.files.delete(id);
        this.w?.forget(id);
        done();
      }
    } catch (err) {
      reportInternalError('call', err);
    }
    if (this.closing.size === 0 && this.poll) {
      clearInterval(this.poll);
      this.poll = null;
    }
  }

  /** Files being written (tests). */
  get openFiles(): number {
    return this.files.size;
  }

  /** Stops the thread (shutdown, after every file was closed): a file still open is failed, its close() resolves. */
  async stop(): Promise<void> {
    const w = this.w;
    if (!w) return;
    w.stop();
    for (const f of this.files.values()) f.refresh();
    this.settle();
    for (const f of this.files.values()) f.detach();
    this.w = null;
    this.files.clear();
  }

  /** Holds the thread (tests: a disk that fell behind). */
  hold(on: boolean): void {
    this.native.hold(on);
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
  private done = false;

  constructor(private readonly writer: RecordingWriter, readonly file: string, private readonly channels: 1 | 2) {
    this.id = writer.open(this, file, ulawWavHeader(channels, 0));
  }

  /** Queues the chunk and takes it: a buffer from `writer.alloc` travels as it is, anything else is copied by the native side. */
  append(chunk: Buffer): void {
    if (this.closing || this.done) return this.writer.release(chunk);
    this.refresh();
    if (this.error) return this.writer.release(chunk);
    if (this.queued - this.written + chunk.length > MAX_BACKLOG_BYTES) {
      this.dropped++;
      return this.writer.release(chunk);
    }
    const at = ULAW_WAV_HEADER_BYTES + this.queued;
    this.queued += chunk.length;
    const slot = this.writer.slotOf(chunk);
    if (slot >= 0) {
      // The header goes in front of the data, in the same slot.
      ulawWavHeaderInto(Buffer.from(chunk.buffer, chunk.byteOffset - DATA_AT + HEADER_AT, ULAW_WAV_HEADER_BYTES), this.channels, this.queued);
      this.writer.native.write(this.id, slot, chunk.length, at, this.queued);
    } else {
      this.writer.native.writeCopy(this.id, chunk, ulawWavHeader(this.channels, this.queued), at, this.queued);
    }
  }

  /** @internal Reads what the writer thread reported for this file. */
  refresh(): void {
    if (this.done) return;
    const w = this.writer.native;
    this.written = Math.max(this.written, w.written(this.id));
    const error = w.error(this.id);
    if (error !== undefined) this.error ??= new Error(error);
  }

  /** @internal The writer stopped with the file open: it is failed (refresh() read the thread's last word first). */
  detach(): void {
    this.error ??= new Error('recording writer stopped');
    this.done = true;
  }

  /** Waits for every queued write, then closes; the file is complete. */
  close(): Promise<void> {
    this.closing ??= this.done
      ? Promise.resolve()
      : new Promise<void>((resolve) =>
      this.writer.close(this.id, () => {
        this.done = true;
        resolve();
      }),
    );
    return this.closing;
  }

  get bytes(): number {
    return ULAW_WAV_HEADER_BYTES + this.written;
  }
}
