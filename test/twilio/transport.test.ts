// The Twilio transport builds media messages in bytes with its own base64
// encoder: every frame size must come out as the JSON Twilio expects, with
// the payload equal to Node's base64 of the frame.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TwilioTransport } from '../../src/twilio/transport.js';

function fakeSocket(sent: string[]) {
  return {
    send: (m: Uint8Array | string) => (sent.push(typeof m === 'string' ? m : Buffer.from(m).toString()), 1),
    getBufferedAmount: () => 0,
    cork: (f: () => void) => f(),
    end() {},
    close() {},
  };
}

describe('TwilioTransport media messages', () => {
  it('encode any frame exactly, reusing one buffer per call', () => {
    const sent: string[] = [];
    const sid = 'MZ' + 'b'.repeat(32);
    const t = new TwilioTransport(fakeSocket(sent) as never, sid, () => {});
    for (const n of [160, 0, 1, 2, 3, 4, 5, 159, 161, 320, 160]) {
      for (let k = 0; k < 20; k++) {
        const frame = new Uint8Array(crypto.randomBytes(n));
        sent.length = 0;
        expect(t.sendFrame(frame)).toBe(true);
        const msg = JSON.parse(sent[0]) as { event: string; streamSid: string; media: { payload: string } };
        expect(msg.event).toBe('media');
        expect(msg.streamSid).toBe(sid);
        expect(msg.media.payload).toBe(Buffer.from(frame).toString('base64'));
      }
    }
  });

  it('send a frame from inside a queued chunk (offset and length)', () => {
    const sent: string[] = [];
    const t = new TwilioTransport(fakeSocket(sent) as never, 'MZ' + 'c'.repeat(32), () => {});
    const chunk = new Uint8Array(crypto.randomBytes(160 * 5 + 7));
    for (const [offset, length] of [[0, 160], [160, 160], [640, 160], [800, 7], [3, 2]]) {
      sent.length = 0;
      expect(t.sendFrame(chunk, offset, length)).toBe(true);
      const msg = JSON.parse(sent[0]) as { media: { payload: string } };
      expect(msg.media.payload).toBe(Buffer.from(chunk.subarray(offset, offset + length)).toString('base64'));
    }
  });
});
