// The allocation-free media reader must never accept a message the general
// path (JSON.parse + the checks in media-stream.ts) would refuse, and must
// decode exactly what Buffer.from(payload, 'base64') decodes. It may decline
// anything (NOT_FAST): that message is then parsed in full.
import { describe, expect, it } from 'vitest';
import { NOT_FAST, readMediaMessage } from '../../src/twilio/media-message.js';
import { rng } from '../helpers/hostile.js';

const SID = 'MZ18ad3ab5a668481ce02b83e7395059f0';
const sidBytes = new TextEncoder().encode(SID);
const enc = (s: string) => new TextEncoder().encode(s);

/** What the general path delivers for this message text, or null when it delivers nothing. */
function reference(text: string, sid = SID): Buffer | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const m = msg as Record<string, unknown>;
  if (m.event !== 'media' || m.streamSid !== sid) return null;
  const media = m.media as { payload?: unknown; track?: unknown } | undefined;
  const payload = media?.payload;
  if (typeof payload !== 'string' || payload.length === 0) return null;
  if (payload.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) return null;
  if (media!.track !== undefined && media!.track !== 'inbound') return null;
  return Buffer.from(payload, 'base64');
}

function fast(text: string | Uint8Array, out = new Uint8Array(160)): Uint8Array | null {
  const n = readMediaMessage(typeof text === 'string' ? enc(text) : text, sidBytes, out);
  return n === NOT_FAST ? null : out.slice(0, n);
}

/** Checks the one property that matters, and returns whether the fast path took it. */
function agrees(text: string): boolean {
  const f = fast(text);
  if (f === null) return false;
  const r = reference(text);
  expect(r, `fast path accepted what the general path refuses: ${text}`).not.toBeNull();
  expect(Buffer.from(f).equals(r!)).toBe(true);
  return true;
}

function twilioMedia(payload: Uint8Array, seq = 3): string {
  return JSON.stringify({
    event: 'media',
    sequenceNumber: String(seq),
    media: { track: 'inbound', chunk: String(seq - 1), timestamp: String((seq - 2) * 20), payload: Buffer.from(payload).toString('base64') },
    streamSid: SID,
  });
}

describe('readMediaMessage', () => {
  it("reads Twilio's media message for every payload size up to a frame, and refuses larger", () => {
    const r = rng(1);
    for (let size = 1; size <= 160; size++) {
      const payload = Uint8Array.from({ length: size }, () => Math.floor(r() * 256));
      const text = twilioMedia(payload);
      expect(agrees(text), `size ${size}`).toBe(true);
      expect(Buffer.from(fast(text)!).equals(Buffer.from(payload))).toBe(true);
    }
    // Bigger than the buffer it is given: the general path takes it.
    expect(fast(twilioMedia(new Uint8Array(161)))).toBeNull();
    expect(fast(twilioMedia(new Uint8Array(320)), new Uint8Array(320))?.length).toBe(320);
  });

  it('takes members in any order and without the optional ones', () => {
    const p = Buffer.from(new Uint8Array(160).fill(0xff)).toString('base64');
    const shapes = [
      `{"streamSid":"${SID}","media":{"payload":"${p}","track":"inbound"},"event":"media"}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"}}`,
      `{"media":{"timestamp":"5","chunk":"1","payload":"${p}","track":"inbound"},"sequenceNumber":"9","event":"media","streamSid":"${SID}"}`,
    ];
    for (const s of shapes) expect(agrees(s), s).toBe(true);
  });

  it('declines everything else, so the general path counts what is wrong', () => {
    const p = Buffer.from(new Uint8Array(160).fill(0x7f)).toString('base64');
    const declined = [
      `{"event":"media","streamSid":"MZother","media":{"payload":"${p}"}}`, // another stream
      `{"event":"mark","streamSid":"${SID}","media":{"payload":"${p}"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}","track":"outbound"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":""}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p.slice(1)}"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p.slice(0, 100)}*${p.slice(101)}"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"AB=C"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"A==="}}`,
      `{"event":"media","streamSid":"${SID}","media":{"track":"inbound"}}`,
      `{"event":"media","streamSid":"${SID}"}`,
      `{"event":"media","media":{"payload":"${p}"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"},"event":"stop"}`, // duplicate key
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}","payload":"AAAA"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"},"extra":"x"}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}","x":"y"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"}} `,
      `{"event": "media","streamSid":"${SID}","media":{"payload":"${p}"}}`,
      `{"event":"med\\u0069a","streamSid":"${SID}","media":{"payload":"${p}"}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"},}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}"}}}`,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${p}","track":1}}`,
      `{"event":"media","streamSid":"${SID}","media":"${p}"}`,
      `{"event":"media","sequenceNumber":3,"streamSid":"${SID}","media":{"payload":"${p}"}}`,
      `[]`,
      ``,
    ];
    for (const s of declined) {
      expect(fast(s), s).toBeNull();
    }
  });

  it('never accepts what the general path refuses: every truncation and random byte mutations', () => {
    const r = rng(7);
    const base = twilioMedia(Uint8Array.from({ length: 160 }, () => Math.floor(r() * 256)));
    for (let cut = 0; cut < base.length; cut++) agrees(base.slice(0, cut));
    const bytes = enc(base);
    const alphabet = enc('{}[]":,\\ =+/Aa0\u0000\u001f');
    let taken = 0;
    for (let i = 0; i < 20000; i++) {
      const m = bytes.slice();
      const edits = 1 + Math.floor(r() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * m.length);
        m[at] = r() < 0.5 ? alphabet[Math.floor(r() * alphabet.length)] : Math.floor(r() * 256);
      }
      const text = Buffer.from(m).toString('utf8');
      const f = fast(m);
      if (f === null) continue;
      taken++;
      const ref = reference(text);
      expect(ref, `accepted a message the general path refuses: ${text}`).not.toBeNull();
      expect(Buffer.from(f).equals(ref!)).toBe(true);
    }
    // Some mutations land in the payload and stay valid base64: those are taken.
    expect(taken).toBeGreaterThan(100);
  });
});
