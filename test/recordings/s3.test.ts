// Recordings in an S3-compatible bucket: the official @aws-sdk/client-s3
// against our emulator over a socket. A recorded call is uploaded at hang-up
// as a multipart upload and streamed back from the bucket (ranges too); the
// emulator enforces S3's 5 MiB minimum part; big files go in 8 MiB parts.
// The retention sweeper deletes expired recordings.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { S3Emulator } from '../../src/providers/emulators/s3.js';
import { S3Storage } from '../../src/recordings/storage.js';
import { Recordings } from '../../src/recordings/recordings.js';
import { RecordingSweeper } from '../../src/recordings/sweeper.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { DEFAULT_KEY_SCOPES } from '../../src/store/types.js';
import { ADMIN, startTestApp, type TestApp } from '../helpers/app.js';
import { api } from '../helpers/api.js';
import { agentQuiet } from '../helpers/calls.js';
import { tempDir } from '../helpers/spawn-server.js';
import { parseWav } from './wav.js';
import { compile } from '../../src/api/validate.js';
import { tenantPatch } from '../../src/outbound/schemas.js';

const s3 = new S3Emulator();
beforeAll(async () => {
  await s3.start();
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
});
afterAll(() => s3.close());

async function waitRecording(t: TestApp, key: string, callId: string): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const d = (await api(t.base, 'GET', `/v1/calls/${callId}`, key)).body;
    if (d.recording?.durationMs > 0 || Date.now() - t0 > 15_000) return d;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the S3 emulator with the official SDK', () => {
  it('refuses a multipart upload whose non-last part is under 5 MiB (EntityTooSmall)', async () => {
    const client = new S3Client({ region: 'us-east-1', endpoint: s3.url, forcePathStyle: true });
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'rec-test', Key: 'a/b.wav' }));
    const parts = [];
    for (const n of [1, 2]) {
      const r = await client.send(new UploadPartCommand({ Bucket: 'rec-test', Key: 'a/b.wav', UploadId, PartNumber: n, Body: Buffer.alloc(1000, n) }));
      parts.push({ ETag: r.ETag, PartNumber: n });
    }
    await expect(client.send(new CompleteMultipartUploadCommand({ Bucket: 'rec-test', Key: 'a/b.wav', UploadId, MultipartUpload: { Parts: parts } })))
      .rejects.toMatchObject({ name: 'EntityTooSmall' });
    client.destroy();
  });

  it('uploads a large recording in 8 MiB parts and reads it back whole and by range', async () => {
    const storage = new S3Storage({ bucket: 'rec-test', endpoint: s3.url, region: 'us-east-1' });
    const file = path.join(tempDir('s3-'), 'big.wav');
    const data = Buffer.alloc(12 * 1024 * 1024 + 123);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    fs.writeFileSync(file, data);
    const partsBefore = s3.stats.partsUploaded;
    expect(await storage.store(file, 'ten_x/call_big.wav')).toBe(data.length);
    expect(s3.stats.partsUploaded - partsBefore).toBe(2);
    expect(fs.existsSync(file)).toBe(false);
    expect(await storage.size('ten_x/call_big.wav')).toBe(data.length);
    const read = async (range?: { start: number; end: number }) => {
      const chunks: Buffer[] = [];
      for await (const c of await storage.open('ten_x/call_big.wav', range)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    expect((await read()).equals(data)).toBe(true);
    expect((await read({ start: 9_000_000, end: 9_000_999 })).equals(data.subarray(9_000_000, 9_001_000))).toBe(true);
    await storage.delete('ten_x/call_big.wav');
    expect(await storage.size('ten_x/call_big.wav')).toBeNull();
    storage.client.destroy();
  });
});

describe('a recorded call stored in the bucket', () => {
  let t: TestApp;
  let key: string;
  beforeAll(async () => {
    t = await startTestApp(
      { EMULATOR_PHRASES: 'Hello there.|Thanks.', RECORDINGS_S3_BUCKET: 'aybiza-recordings', RECORDINGS_S3_ENDPOINT: s3.url, RECORDINGS_S3_REGION: 'us-east-1' },
      { recording: { enabled: true, channels: 'dual' } },
    );
    key = (await t.app.store.tenants.createKey(ADMIN, t.tenantId, 'rec', [...DEFAULT_KEY_SCOPES])).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  let callId = '';
  it('is uploaded with a multipart upload at hang-up, the local file removed, and streamed from the bucket', async () => {
    const completed = s3.stats.multipartCompleted;
    const c = new TwilioCaller({ baseUrl: t.base, authToken: t.authToken, to: t.number });
    await c.dial();
    await agentQuiet(c);
    c.speak(synthesize('hello'));
    await agentQuiet(c, 600);
    await c.hangup();
    callId = (await api(t.base, 'GET', '/v1/calls?limit=1', key)).body.items[0].id;
    const detail = await waitRecording(t, key, callId);
    expect(detail.recording.durationMs).toBeGreaterThan(1000);
    expect(s3.stats.multipartCompleted).toBe(completed + 1);
    const object = s3.objects.get(`aybiza-recordings/${t.tenantId}/${callId}.wav`);
    expect(object?.data.length).toBe(detail.recording.bytes);
    expect(fs.existsSync(path.join(t.app.config.dataDir, 'recordings', t.tenantId, `${callId}.wav`))).toBe(false);
    const gets = s3.stats.rangeGets;
    const res = await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { authorization: `Bearer ${key}`, range: 'bytes=0-57' } });
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer()).equals(object!.data.subarray(0, 58))).toBe(true);
    expect(s3.stats.rangeGets).toBe(gets + 1);
    const whole = Buffer.from(await (await fetch(`${t.base}/v1/calls/${callId}/recording`, { headers: { authorization: `Bearer ${key}` } })).arrayBuffer());
    expect(whole.equals(object!.data)).toBe(true);
    expect(parseWav(whole).channels).toBe(2);
  });

  it('the sweeper deletes recordings past the tenant\'s retention (object and row)', async () => {
    // Validated by the admin API's schema: whole days, 0 (keep) to 36500.
    const check = compile(tenantPatch);
    expect(check({ recordingRetentionDays: -1 })).toBe(false);
    expect(check({ recordingRetentionDays: 1.5 })).toBe(false);
    expect(check({ recordingRetentionDays: 30 })).toBe(true);
    const updated = await t.app.store.tenants.update(ADMIN, t.tenantId, { recordingRetentionDays: 30 });
    expect(updated.recordingRetentionDays).toBe(30);
    // for(), not of(): with media workers the main thread's store has no Recordings of its own yet.
    const sweeper = new RecordingSweeper(Recordings.for(t.app.store, t.app.config));
    expect(await sweeper.sweep()).toBe(0);
    await t.app.store.db.pool.query("update recordings set created_at = now() - interval '31 days' where call_id = $1", [callId]);
    expect(await sweeper.sweep()).toBe(1);
    expect(s3.objects.has(`aybiza-recordings/${t.tenantId}/${callId}.wav`)).toBe(false);
    const row = (await t.app.store.db.pool.query('select deleted_at from recordings where call_id = $1', [callId])).rows[0];
    expect(row.deleted_at).not.toBeNull();
    expect((await api(t.base, 'GET', `/v1/calls/${callId}/recording`, key)).status).toBe(404);
    expect((await api(t.base, 'GET', `/v1/calls/${callId}`, key)).body.recording).toBeUndefined();
    await sweeper.close();
  });
});
