// Where finished recordings live: DATA_DIR/recordings (the file the call
// wrote, kept where it is) or an S3-compatible bucket (RECORDINGS_S3_*),
// through @aws-sdk/client-s3. A recording is always written to the local
// file first, incrementally (a crash leaves it playable there); with a
// bucket it is uploaded at hang-up as a multipart upload (parts of 8 MiB,
// S3's minimum being 5 MiB except for the last) and the local file removed.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  GetObjectCommand, HeadObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';

export type StorageKind = 'local' | 's3';

export interface S3Settings {
  bucket: string;
  endpoint: string | null;
  region: string;
}

/** Bytes [start, end] of an object (inclusive, as HTTP ranges are). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface RecordingStorage {
  readonly kind: StorageKind;
  /** Moves a finished local file into this storage; returns the stored size. */
  store(localFile: string, key: string): Promise<number>;
  /** Size in bytes, or null when the object is gone. */
  size(key: string): Promise<number | null>;
  /** A stream of the object (or of one range of it). */
  open(key: string, range?: ByteRange): Promise<Readable>;
  delete(key: string): Promise<void>;
}

/** Keys are <tenant>/<call>.wav from our own ids; anything else is refused before it reaches a path. */
const KEY = /^[A-Za-z0-9_-]{1,100}\/[A-Za-z0-9_-]{1,100}\.wav$/;
export function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`bad recording key ${JSON.stringify(key.slice(0, 120))}`);
  return key;
}

export class LocalStorage implements RecordingStorage {
  readonly kind = 'local' as const;
  constructor(readonly root: string) {}

  path(key: string): string {
    return path.join(this.root, checkKey(key));
  }

  async store(localFile: string, key: string): Promise<number> {
    const target = this.path(key);
    if (path.resolve(localFile) !== path.resolve(target)) await fsp.rename(localFile, target);
    return (await fsp.stat(target)).size;
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await fsp.stat(this.path(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async open(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.path(key);
    // Opened before the reply starts: a missing file is an error here, not mid-stream.
    const handle = await fsp.open(file, 'r');
    return fs.createReadStream('', { fd: handle, start: range?.start, end: range?.end, highWaterMark: 64 * 1024, autoClose: true });
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.path(key), { force: true });
  }
}

const PART_BYTES = 8 * 1024 * 1024;

export class S3Storage implements RecordingStorage {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  /** Multipart uploads completed (tests check that the multipart path was taken). */
  uploads = 0;

  constructor(readonly settings: S3Settings) {
    this.client = new S3Client({
      region: settings.region,
      // S3-compatible servers (MinIO, Ceph, our emulator) are addressed by path.
      ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    });
  }

  async store(localFile: string, key: string): Promise<number> {
    checkKey(key);
    const Bucket = this.settings.bucket;
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key: key, ContentType: 'audio/wav' }));
    if (!UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    const handle = await fsp.open(localFile, 'r');
    try {
      const size = (await handle.stat()).size;
      const parts: { ETag: string; PartNumber: number }[] = [];
      // One part in memory at a time; every part but the last is PART_BYTES.
      for (let at = 0, n = 1; at < size || n === 1; at += PART_BYTES, n++) {
        const body = Buffer.alloc(Math.min(PART_BYTES, size - at));
        await handle.read(body, 0, body.length, at);
        const r = await this.client.send(new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber: n, Body: body }));
        if (!r.ETag) throw new Error(`UploadPart ${n} returned no ETag`);
        parts.push({ ETag: r.ETag, PartNumber: n });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
      this.uploads++;
      await handle.close();
      await fsp.rm(localFile, { force: true });
      return size;
    } catch (err) {
      await handle.close().catch(() => {});
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId })).catch(() => {});
      throw err;
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: checkKey(key) }));
      return r.ContentLength ?? null;
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw err;
    }
  }

  async open(key: string, range?: ByteRange): Promise<Readable> {
    const r = await this.client.send(new GetObjectCommand({
      Bucket: this.settings.bucket, Key: checkKey(key), Range: range ? `bytes=${range.start}-${range.end}` : undefined,
    }));
    return r.Body as Readable;
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: checkKey(key) }));
  }
}
