// What a call session needs from the transport carrying the call: Twilio
// Media Streams or SIP/RTP. The conversation never knows which one it is.
export type TransportKind = 'twilio' | 'sip';

export interface CallTransport {
  readonly kind: TransportKind;
  /**
   * How far ahead of the caller's ear audio may be sent. Twilio buffers and
   * plays in order (keep ~100 ms ahead so `clear` stays quick); RTP is sent in
   * real time, one frame per 20 ms (lead 20).
   */
  readonly leadMs: number;
  /**
   * Sends one 160-byte μ-law frame: `length` bytes of `audio` from `offset`
   * (the playout's queued chunk, so no view is made per frame). false: not
   * now (backpressure); it stays queued.
   */
  sendFrame(audio: Uint8Array, offset?: number, length?: number): boolean;
  /**
   * Marks the current end of the sent audio. The transport reports it back
   * through the session's onMarkPlayed(name) once the caller has heard
   * everything before it (Twilio echoes marks; RTP reports at once).
   */
  sendMark(name: string): void;
  /** Drops audio the far end has buffered but not played (barge-in). */
  clearPlayout(): void;
  /** Ends the call from our side. */
  hangup(reason: string): void;
  /** Runs one tick's sends as a batch (e.g. a corked socket), when the transport can. */
  batch?(fn: () => void): void;
  /** Transfers the live call; false when the transport or trunk cannot. */
  transfer?(target: string): Promise<boolean>;
  /**
   * Sends keypad digits as out-of-band events (RFC 4733) ahead of further
   * audio; false when the call cannot (then they go in-band as tones).
   */
  sendDigits?(digits: string): boolean;
}
