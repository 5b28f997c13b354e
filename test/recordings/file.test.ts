// The recording writer (a native thread) on its own: chunks reach the file
// in order with a header that counts them after every chunk, a backlog past
// its bound is dropped and counted, a writer stopped with files open fails
// them without leaving a close() waiting, and hostile arguments to the native
// writer are refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingFile, RecordingWriter } from '../../src/recordings/file.js';
import { ULAW_WAV_HEADER_BYTES } from '../../src/media/wav.js';
import { native } from '../../src/media/native.js';

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
    // A disk that fell behind: the thread takes nothing while held, so 40 s handed over exceed the 30 s bound.
    writer.hold(true);
    const slots = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const c = chunkOf(writer, 16_000, i);
      slots.add(writer.slotOf(c));
      file.append(c);
    }
    expect(file.dropped).toBe(10);
    // A dropped chunk's slot is free again at once: the next alloc reuses it instead of growing the shared memory.
    expect(slots.has(writer.slotOf(writer.alloc(16_000)))).toBe(true);
    writer.hold(false);
    await file.close();
    expect(fs.statSync(file.file).size).toBe(ULAW_WAV_HEADER_BYTES + 30 * 16_000);
    await writer.stop();
  });

  it('fails the files still open when it stops, resolves their close(), and starts a new thread for the next file', async () => {
    const writer = new RecordingWriter();
    const file = new RecordingFile(writer, path.join(dir, 'c.wav'), 1);
    file.append(chunkOf(writer, 8_000, 0x44));
    await new Promise((r) => setTimeout(r, 300));
    expect(file.written).toBe(0); // read at the next append or at close
    const open = new RecordingFile(writer, path.join(dir, 'd.wav'), 1);
    const pending = open.close();
    await file.close();
    expect(file.written).toBe(8_000);
    await pending;
    const left = new RecordingFile(writer, path.join(dir, 'left-open.wav'), 1);
    left.append(chunkOf(writer, 8_000, 0x55));
    await writer.stop();
    expect(left.error?.message).toMatch(/writer stopped/);
    await left.close();
    left.append(chunkOf(writer, 8_000, 0x56)); // taken and dropped, no throw
    const f3 = new RecordingFile(writer, path.join(dir, 'e.wav'), 1);
    f3.append(chunkOf(writer, 8_000, 0x66));
    await f3.close();
    expect(f3.error).toBeNull();
    expect(fs.statSync(f3.file).size).toBe(ULAW_WAV_HEADER_BYTES + 8_000);
    await writer.stop();
  });

  it('refuses hostile arguments to the native writer with TypeError/RangeError', async () => {
    const W = native.RecordingWriter as new (...a: unknown[]) => Record<string, (...a: unknown[]) => unknown>;
    expect(() => new W()).toThrow(TypeError);
    expect(() => new W(2, 58, 16_000, 1e6)).toThrow(RangeError);
    const w = new W(2, 58, 16_000, 4);
    const header = new Uint8Array(58);
    expect(() => w.open('relative', 'x.wav', header)).toThrow(RangeError);
    expect(() => w.open(path.join(dir, 'x'), '../x.wav', header)).toThrow(RangeError);
    expect(() => w.open(dir + '/../etc', 'x.wav', header)).toThrow(RangeError);
    expect(() => w.open(dir, 'x.txt', header)).toThrow(RangeError);
    expect(() => w.open(dir, 'x.wav', new Uint8Array(10))).toThrow(RangeError);
    expect(() => w.write(1, 0, 10, 58, 10)).toThrow(RangeError); // no such file
    const id = w.open(dir, 'hostile.wav', header) as number;
    expect(() => w.write(id, 0, 10, 58, 10)).toThrow(RangeError); // slot not allocated (no arena yet)
    expect(w.alloc()).toBe(-1);
    expect(w.arena()).toBeInstanceOf(ArrayBuffer);
    const slot = w.alloc() as number;
    expect(() => w.write(id, slot, 16_001, 58, 10)).toThrow(RangeError);
    expect(() => w.write(id, slot, 10, 2 ** 40, 10)).toThrow(RangeError);
    expect(() => w.release(slot + 1)).toThrow(RangeError);
    w.release(slot);
    expect(() => w.release(slot)).toThrow(RangeError); // twice
    expect(() => w.forget(id)).toThrow(RangeError); // not closed
    w.close(id);
    expect(() => w.write(id, w.alloc(), 10, 58, 10)).toThrow(RangeError); // closing
    for (let i = 0; i < 100 && !w.closed(id); i++) await new Promise((r) => setTimeout(r, 10));
    w.stop();
    w.stop();
    expect(() => w.alloc()).toThrow(TypeError);
    expect(w.closed(id)).toBe(true);
    expect(fs.statSync(path.join(dir, 'hostile.wav')).size).toBe(58);
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
