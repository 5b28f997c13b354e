// A recording's WAV file, written while the call goes on: each chunk is
// appended and the header's sizes rewritten after it, one write after the
// other on a promise chain (never on the frame path, never awaited there).
// A process killed at any moment leaves a file whose header counts at most
// the data that reached it: a valid, playable WAV up to the last chunk.
import fs from 'node:fs/promises';
import path from 'node:path';
import { ULAW_WAV_HEADER_BYTES, ulawWavHeader } from '../media/wav.js';

/** Unwritten chunks held at most (a stalled disk must not grow the heap without end): 30 s of audio. */
const MAX_BACKLOG_BYTES = 30 * 16_000;

export class RecordingFile {
  private chain: Promise<void>;
  private handle: fs.FileHandle | null = null;
  /** Data bytes handed in (written or queued). */
  private queued = 0;
  /** Data bytes on disk with a header counting them. */
  written = 0;
  private backlog = 0;
  /** Chunks dropped because the disk fell behind. */
  dropped = 0;
  error: Error | null = null;

  constructor(readonly file: string, private readonly channels: 1 | 2) {
    this.chain = this.open().catch((err) => this.fail(err));
  }

  private async open(): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    this.handle = await fs.open(this.file, 'w', 0o640);
    await this.handle.write(ulawWavHeader(this.channels, 0), 0, ULAW_WAV_HEADER_BYTES, 0);
  }

  private fail(err: unknown): void {
    this.error ??= err as Error;
  }

  /** Queues the chunk; `release` is called once its bytes are on disk (or it was dropped), so the buffer may be reused. */
  append(chunk: Buffer, release: () => void = () => {}): void {
    if (this.error) return release();
    if (this.backlog + chunk.length > MAX_BACKLOG_BYTES) {
      this.dropped++;
      return release();
    }
    this.backlog += chunk.length;
    const at = ULAW_WAV_HEADER_BYTES + this.queued;
    this.queued += chunk.length;
    const size = this.queued;
    this.chain = this.chain.then(async () => {
      this.backlog -= chunk.length;
      if (!this.handle || this.error) return release();
      try {
        await this.handle.write(chunk, 0, chunk.length, at);
      } catch (err) {
        this.fail(err);
        return;
      } finally {
        release();
      }
      try {
        // The sizes move only once the data they count is in the file.
        await this.handle.write(ulawWavHeader(this.channels, size), 0, ULAW_WAV_HEADER_BYTES, 0);
        this.written = size;
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** Waits for every queued write, then closes; the file is complete. */
  async close(): Promise<void> {
    await this.chain;
    await this.handle?.close().catch((err) => this.fail(err));
    this.handle = null;
  }

  get bytes(): number {
    return ULAW_WAV_HEADER_BYTES + this.written;
  }
}
