// Recording of calls whose agent has `recording: {enabled: true}`: one per
// node (Recordings.for), started on each call session by the conversation
// factory (src/app.ts conversations()). During the call the recorder
// (recorder.ts) feeds the file (file.ts); at hang-up the file is completed,
// moved to its storage (storage.ts), its row completed (rows.ts) and the
// recording.ready webhook event emitted. Nothing here can fail a call: every
// failure is counted and logged, and the call goes on unrecorded.
import path from 'node:path';
import type { Config } from '../config.js';
import type { CallSession } from '../call/session.js';
import type { Component } from '../server/server.js';
import type { ControlPlane } from '../store/index.js';
import { reportInternalError } from '../guard.js';
import { log } from '../log.js';
import { CallRecorder, type RecordingChannels } from './recorder.js';
import { RecordingFile, RecordingWriter } from './file.js';
import { RecordingRows } from './rows.js';
import { checkKey, LocalStorage, S3Storage, type RecordingStorage } from './storage.js';

export interface RecordingSettings {
  enabled: boolean;
  channels?: RecordingChannels;
}

const byStore = new WeakMap<ControlPlane, Recordings>();

export class Recordings implements Component {
  readonly name = 'recordings';
  readonly rows: RecordingRows;
  /** Where recordings are written while the call goes on (and kept, without a bucket). */
  readonly local: LocalStorage;
  readonly storage: RecordingStorage;
  private readonly finishing = new Set<Promise<void>>();
  /** The thread that writes this node's recording files. */
  readonly writer = new RecordingWriter();

  /** The node's recordings for this control plane (one S3 client, one set of in-flight uploads). */
  static for(cp: ControlPlane, config: Pick<Config, 'dataDir' | 'recordingsS3'>): Recordings {
    let r = byStore.get(cp);
    if (!r) byStore.set(cp, (r = new Recordings(cp, config)));
    return r;
  }

  /** This control plane's recordings, if the node set them up (the API reads through it). */
  static of(cp: ControlPlane): Recordings | null {
    return byStore.get(cp) ?? null;
  }

  private constructor(private readonly cp: ControlPlane, config: Pick<Config, 'dataDir' | 'recordingsS3'>) {
    this.rows = new RecordingRows(cp.db.pool, cp.calls);
    this.local = new LocalStorage(path.join(config.dataDir, 'recordings'));
    this.storage = config.recordingsS3 ? new S3Storage(config.recordingsS3) : this.local;
  }

  /** Starts recording the session if its agent asks for it. */
  record(s: CallSession): void {
    const settings = s.agent.config.recording as RecordingSettings | undefined;
    if (!settings?.enabled || s.isEnded) return;
    const channels: RecordingChannels = settings.channels === 'mixed' ? 'mixed' : 'dual';
    const tenantId = s.agent.tenantId;
    let key: string;
    try {
      key = checkKey(`${tenantId}/${s.callId}.wav`);
    } catch (err) {
      return reportInternalError('call', err);
    }
    const file = new RecordingFile(this.writer, this.local.path(key), channels === 'dual' ? 2 : 1);
    const recorder = new CallRecorder(channels, (chunk) => file.append(chunk), (bytes) => this.writer.alloc(bytes));
    s.record(recorder);
    const begun = this.rows.begin({ callId: s.callId, tenantId, storage: this.local.kind, key, channels }).catch((err) => {
      reportInternalError('store', err, { callId: s.callId });
    });
    s.whenEnded(() => {
      recorder.close();
      const p = this.finish(s.callId, tenantId, key, channels, recorder, file, begun)
        .catch((err) => reportInternalError('store', err, { callId: s.callId }))
        .finally(() => this.finishing.delete(p));
      this.finishing.add(p);
    });
  }

  private async finish(callId: string, tenantId: string, key: string, channels: RecordingChannels, recorder: CallRecorder, file: RecordingFile, begun: Promise<void>): Promise<void> {
    await file.close();
    await begun;
    if (file.error) throw file.error;
    if (file.dropped) log.warn('recording lost chunks: the disk fell behind', { callId, dropped: file.dropped });
    const durationMs = Math.round(recorder.samples / 8);
    const bytes = await this.storage.store(file.file, key);
    await this.rows.complete(callId, this.storage.kind, bytes, durationMs);
    this.cp.webhooks.emit(tenantId, 'recording.ready', { callId, channels, durationMs, bytes, url: `/v1/calls/${callId}/recording` }, callId);
  }

  /** Waits for recordings being completed and uploaded (shutdown, tests). */
  async settled(): Promise<void> {
    while (this.finishing.size) await Promise.allSettled([...this.finishing]);
  }

  async close(): Promise<void> {
    await this.settled();
    await this.writer.stop();
    if (this.storage instanceof S3Storage) this.storage.client.destroy();
  }
}
