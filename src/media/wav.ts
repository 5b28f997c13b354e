// Minimal WAV I/O for 8 kHz telephony audio: reads PCM16 or μ-law/A-law WAV
// (any rate is refused except 8 kHz mono), writes PCM16, and builds the
// header of a μ-law recording that grows while it is written.
import { alawDecode, ulawDecode, ulawEncode } from './g711.js';

export function writeWavPcm16(pcm: Int16Array, sampleRate = 8000): Buffer {
  const data = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/** Bytes of the μ-law header: RIFF, fmt (18: non-PCM formats carry cbSize), fact, data. */
export const ULAW_WAV_HEADER_BYTES = 58;

/**
 * The header of an 8 kHz μ-law WAV (format 7, WAVE_FORMAT_MULAW) holding
 * `dataBytes` of interleaved samples. A recording rewrites it as its data
 * grows, so the file on disk is always a valid WAV of what it holds. The
 * fact chunk (samples per channel) is required for non-PCM formats.
 */
export function ulawWavHeader(channels: 1 | 2, dataBytes: number): Buffer {
  return ulawWavHeaderInto(Buffer.alloc(ULAW_WAV_HEADER_BYTES), channels, dataBytes);
}

/** Writes that header into the first ULAW_WAV_HEADER_BYTES of `h` (a recording's chunk carries its own). */
export function ulawWavHeaderInto(h: Buffer, channels: 1 | 2, dataBytes: number): Buffer {
  h.write('RIFF', 0);
  h.writeUInt32LE(ULAW_WAV_HEADER_BYTES - 8 + dataBytes, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(18, 16);
  h.writeUInt16LE(7, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(8000 * channels, 28);
  h.writeUInt16LE(channels, 32);
  h.writeUInt16LE(8, 34);
  h.writeUInt16LE(0, 36);
  h.write('fact', 38);
  h.writeUInt32LE(4, 42);
  h.writeUInt32LE(Math.floor(dataBytes / channels), 46);
  h.write('data', 50);
  h.writeUInt32LE(dataBytes, 54);
  return h;
}

/** Reads an 8 kHz mono WAV (PCM16, μ-law or A-law) as μ-law bytes. */
export function readWavAsUlaw(buf: Buffer): Uint8Array {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV file');
  let off = 12;
  let format = 0;
  let channels = 0;
  let rate = 0;
  let bits = 0;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = buf.subarray(off + 8, Math.min(buf.length, off + 8 + size));
    if (id === 'fmt ') {
      format = body.readUInt16LE(0);
      channels = body.readUInt16LE(2);
      rate = body.readUInt32LE(4);
      bits = body.readUInt16LE(14);
    } else if (id === 'data') {
      if (channels !== 1 || rate !== 8000) throw new Error(`WAV must be 8 kHz mono (got ${rate} Hz, ${channels} channels); convert with: sox in.wav -r 8000 -c 1 out.wav`);
      if (format === 7) return new Uint8Array(body);
      if (format === 6) return ulawEncode(alawDecode(new Uint8Array(body)));
      if (format === 1 && bits === 16) {
        const pcm = new Int16Array(body.length >> 1);
        for (let i = 0; i < pcm.length; i++) pcm[i] = body.readInt16LE(i * 2);
        return ulawEncode(pcm);
      }
      throw new Error(`unsupported WAV format ${format} (${bits} bits)`);
    }
    off += 8 + size + (size & 1);
  }
  throw new Error('WAV has no data chunk');
}

export function ulawToWav(ulaw: Uint8Array): Buffer {
  return writeWavPcm16(ulawDecode(ulaw));
}
