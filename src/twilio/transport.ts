// The CallTransport for a Twilio Media Stream: outbound frames, marks and
// clear as JSON text messages. A media message is built in bytes in a
// buffer kept per call (the streamSid part never changes, the base64 is
// written straight into it): 50 frames a second per call allocate nothing,
// which keeps the garbage collector's pauses off the pacing clock.
import type { WebSocket } from '../server/uws.js';
import type { CallTransport } from '../call/transport.js';
import { hotCounter, mediaFrames } from '../metrics/index.js';

const framesOut = hotCounter(mediaFrames, 'twilio', 'out');

const B64 = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
const SUFFIX = new TextEncoder().encode('"}}');

/** Standard base64 of src[from, to) into dst at offset; returns the end offset. */
function base64Into(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): number {
  const n = to;
  let i = from;
  for (; i + 3 <= n; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    dst[at++] = B64[v >>> 18];
    dst[at++] = B64[(v >>> 12) & 63];
    dst[at++] = B64[(v >>> 6) & 63];
    dst[at++] = B64[v & 63];
  }
  if (i < n) {
    const v = (src[i] << 16) | (i + 1 < n ? src[i + 1] << 8 : 0);
    dst[at++] = B64[v >>> 18];
    dst[at++] = B64[(v >>> 12) & 63];
    dst[at++] = i + 1 < n ? B64[(v >>> 6) & 63] : 0x3d;
    dst[at++] = 0x3d;
  }
  return at;
}

/** Above this much unsent data on the socket we hold frames back (uWS backpressure). */
const MAX_BUFFERED = 64 * 1024;

export class TwilioTransport implements CallTransport {
  readonly kind = 'twilio' as const;
  readonly leadMs = 100;
  /** `{"event":"media",…,"payload":"` then room for one frame's base64 and `"}}`. */
  private media: Uint8Array;
  private readonly mediaPrefixLength: number;
  private readonly markPrefix: string;
  private readonly clearMsg: string;
  closed = false;
  /** Set by the gateway where the call can be redirected over Twilio's REST API (src/outbound/twilio.ts). */
  transfer?: (target: string) => Promise<boolean>;

  constructor(private readonly ws: WebSocket<unknown>, streamSid: string, private readonly onHangup: (reason: string) => void) {
    const sid = JSON.stringify(streamSid);
    const prefix = new TextEncoder().encode(`{"event":"media","streamSid":${sid},"media":{"payload":"`);
    this.mediaPrefixLength = prefix.length;
    this.media = new Uint8Array(prefix.length + 4 * Math.ceil(160 / 3) + SUFFIX.length);
    this.media.set(prefix);
    this.markPrefix = `{"event":"mark","streamSid":${sid},"mark":{"name":`;
    this.clearMsg = `{"event":"clear","streamSid":${sid}}`;
  }

  /** Runs fn with the socket corked: a tick's frame and mark leave in one write. */
  batch(fn: () => void): void {
    if (this.closed) return;
    this.ws.cork(fn);
  }

  sendFrame(audio: Uint8Array, offset = 0, length = audio.length - offset): boolean {
    if (this.closed) return false;
    if (this.ws.getBufferedAmount() > MAX_BUFFERED) return false;
    const room = this.mediaPrefixLength + 4 * Math.ceil(length / 3) + SUFFIX.length;
    if (room > this.media.length) {
      const grown = new Uint8Array(room);
      grown.set(this.media.subarray(0, this.mediaPrefixLength));
      this.media = grown;
    }
    const end = base64Into(audio, offset, offset + length, this.media, this.mediaPrefixLength);
    this.media.set(SUFFIX, end);
    // uWS copies the bytes into the socket's buffer before send() returns.
    const bytes = end + SUFFIX.length;
    this.ws.send(bytes === this.media.length ? this.media : this.media.subarray(0, bytes), false);
    framesOut.inc();
    return true;
  }

  sendMark(name: string): void {
    if (!this.closed) this.ws.send(this.markPrefix + JSON.stringify(name) + '}}', false);
  }

  clearPlayout(): void {
    if (!this.closed) this.ws.send(this.clearMsg, false);
  }

  hangup(reason: string): void {
    if (this.closed) return;
    this.onHangup(reason);
    // Closing the socket ends <Connect>; with no further TwiML the call ends.
    this.closed = true;
    this.ws.end(1000, 'call ended');
  }
}

