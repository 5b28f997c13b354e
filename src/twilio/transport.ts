// The CallTransport for a Twilio Media Stream: outbound frames, marks and
// clear as JSON text messages. Message text is templated per call (the
// streamSid part never changes), so a frame costs one base64 and one send.
import type { WebSocket } from '../server/uws.js';
import type { CallTransport } from '../call/transport.js';
import { mediaFrames } from '../metrics/index.js';

const framesOut = mediaFrames.labels('twilio', 'out');

/** Above this much unsent data on the socket we hold frames back (uWS backpressure). */
const MAX_BUFFERED = 64 * 1024;

export class TwilioTransport implements CallTransport {
  readonly kind = 'twilio' as const;
  readonly leadMs = 100;
  private readonly mediaPrefix: string;
  private readonly markPrefix: string;
  private readonly clearMsg: string;
  closed = false;

  constructor(private readonly ws: WebSocket<unknown>, streamSid: string, private readonly onHangup: (reason: string) => void) {
    const sid = JSON.stringify(streamSid);
    this.mediaPrefix = `{"event":"media","streamSid":${sid},"media":{"payload":"`;
    this.markPrefix = `{"event":"mark","streamSid":${sid},"mark":{"name":`;
    this.clearMsg = `{"event":"clear","streamSid":${sid}}`;
  }

  /** Runs fn with the socket corked: a tick's frame and mark leave in one write. */
  batch(fn: () => void): void {
    if (this.closed) return;
    this.ws.cork(fn);
  }

  sendFrame(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.ws.getBufferedAmount() > MAX_BUFFERED) return false;
    const b64 = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64');
    this.ws.send(this.mediaPrefix + b64 + '"}}', false);
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
