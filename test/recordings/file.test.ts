// The recording writer thread on its own: chunks reach the file in order
// with a header that counts them after every chunk, a backlog past its
// bound is dropped and counted, and a thread that dies fails its files
// without leaving a close() waiting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingFile, RecordingWriter } from '../../src/recordings/file.js';
import { ULAW_WAV_HEADER_BYTES } from '../../src/media/wav.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aybiza-recfile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function chunkOf(writer: RecordingWriter, bytes: number, value: number): Buffer {
  const c = writer.alloc(bytes);
  c.fill(value);
  return c;
}

describe('RecordingWriter', () => {
  it('appends chunks in order, header sizes counting them, and gets the shared slots back for reuse', async () => {
    const writer = new RecordingWriter();
    const file = new RecordingFile(writer, path.join(dir, 'a', 'one.wav'), 2);
    const first = chunkOf(writer, 16_000, 0x11);
    const firstSlot = writer.slotOf(first);
    expect(firstSlot).toBeGreaterThanOrEqual(0);
    file.append(first);
    // A chunk from elsewhere (a view into a larger buffer) is copied into a pooled one.
    file.append(Buffer.from(new Uint8Array(20_000).fill(0x22).buffer, 4_000, 16_000));
    file.append(chunkOf(writer, 320, 0x33));
    await file.close();
    const d = fs.readFileSync(file.file);
    expect(d.length).toBe(ULAW_WAV_HEADER_BYTES + 32_320);
    expect(d.toString('ascii', 0, 4)).toBe('RIFF');
    expect(d.readUInt32LE(4)).toBe(ULAW_WAV_HEADER_BYTES - 8 + 32_320);
    expect(d.readUInt32LE(ULAW_WAV_HEADER_BYTES - 4)).toBe(32_320);
    expect(d.readUInt32LE(46)).toBe(16_160);
    expect(d[ULAW_WAV_HEADER_BYTES]).toBe(0x11);
    expect(d[ULAW_WAV_HEADER_BYTES + 16_000]).toBe(0x22);
    expect(d[d.length - 1]).toBe(0x33);
    expect(file.written).toBe(32_320);
    expect(file.bytes).toBe(d.length);
    expect(writer.openFiles).toBe(0);
    // The first chunk's slot came back from the thread and is handed out again.
    const again = Array.from({ length: 300 }, () => writer.slotOf(writer.alloc(16_000)));
    expect(again).toContain(firstSlot);
    // Larger than a slot: a buffer of its own.
    expect(writer.slotOf(writer.alloc(40_000))).toBe(-1);
    await writer.stop();
  });

  it('writes a chunk larger than a slot from its own buffer', async () => {
    const writer = new RecordingWriter();
    const file = new RecordingFile(writer, path.join(dir, 'big.wav'), 2);
    file.append(chunkOf(writer, 8_000, 0x01));
    file.append(chunkOf(writer, 40_000, 0x02));
    file.append(chunkOf(writer, 8_000, 0x03));
    await file.close();
    const d = fs.readFileSync(file.file);
    expect(d.readUInt32LE(ULAW_WAV_HEADER_BYTES - 4)).toBe(56_000);
    expect([d[ULAW_WAV_HEADER_BYTES], d[ULAW_WAV_HEADER_BYTES + 8_000], d[ULAW_WAV_HEADER_BYTES + 47_999], d[ULAW_WAV_HEADER_BYTES + 48_000]]).toEqual([1, 2, 2, 3]);
    await writer.stop();
  });

  it('drops and counts chunks past the backlog bound instead of holding them', async () => {
    const writer = new RecordingWriter();
    const file = new RecordingFile(writer, path.join(dir, 'b.wav'), 2);
    // Nothing is written before the batch leaves: 40 s handed over at once exceed the 30 s bound.
    const slots = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const c = chunkOf(writer, 16_000, i);
      slots.add(writer.slotOf(c));
      file.append(c);
    }
    expect(file.dropped).toBe(10);
    // A dropped chunk's slot is free again at once: the next alloc reuses it instead of growing the shared memory.
    expect(slots.has(writer.slotOf(writer.alloc(16_000)))).toBe(true);
    await file.close();
    expect(fs.statSync(file.file).size).toBe(ULAW_WAV_HEADER_BYTES + 30 * 16_000);
    await writer.stop();
  });

  it('fails the open files of a thread that died, and starts a new one for the next file', async () => {
    const writer = new RecordingWriter();
    const file = new RecordingFile(writer, path.join(dir, 'c.wav'), 1);
    file.append(chunkOf(writer, 8_000, 0x44));
    await new Promise((r) => setTimeout(r, 300));
    expect(file.written).toBe(8_000);
    await writer.stop();
    // stop() is shutdown: a file still open then is failed by the next writer event; simulate the thread dying instead.
    const writer2 = new RecordingWriter();
    const f2 = new RecordingFile(writer2, path.join(dir, 'd.wav'), 1);
    f2.append(chunkOf(writer2, 8_000, 0x55));
    await new Promise((r) => setTimeout(r, 300));
    (writer2 as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await new Promise((r) => setTimeout(r, 300));
    expect(f2.error?.message).toMatch(/writer stopped/);
    await f2.close();
    const f3 = new RecordingFile(writer2, path.join(dir, 'e.wav'), 1);
    f3.append(chunkOf(writer2, 8_000, 0x66));
    await f3.close();
    expect(f3.error).toBeNull();
    expect(fs.statSync(f3.file).size).toBe(ULAW_WAV_HEADER_BYTES + 8_000);
    await writer2.stop();
  });

  it('reports a file it cannot create as an error on that file only', async () => {
    const writer = new RecordingWriter();
    fs.writeFileSync(path.join(dir, 'not-a-dir'), '');
    const bad = new RecordingFile(writer, path.join(dir, 'not-a-dir', 'x.wav'), 1);
    const good = new RecordingFile(writer, path.join(dir, 'fine.wav'), 1);
    bad.append(chunkOf(writer, 800, 1));
    good.append(chunkOf(writer, 800, 2));
    await Promise.all([bad.close(), good.close()]);
    expect(bad.error).not.toBeNull();
    expect(good.error).toBeNull();
    expect(fs.statSync(good.file).size).toBe(ULAW_WAV_HEADER_BYTES + 800);
    await writer.stop();
  });
});
