// A call's session description over its life (RFC 3264): the first answer
// (or, for an INVITE without SDP, our offer and the answer in the ACK), then
// re-INVITEs for hold, resume, a media move or a session refresh. Each
// negotiation is applied to the call's RTP: where to send, whether to send,
// and whether silence from the caller is expected (hold).
import type { RtpSession } from './rtp.js';
import { buildAnswer, buildOffer, negotiate, OUR_OFFER, parseSdp, type Negotiated, type SdpOffer } from './sdp.js';

export class CallMedia {
  private readonly sessionId = Math.floor(Math.random() * 2 ** 31);
  private version = 1;
  /** Our current description (what the last 200 carried). */
  last = '';
  /** The formats agreed first; later offers may move media but not change codec. */
  private agreed: Negotiated;
  /** The caller holds (sendonly/inactive): no media timeout. */
  held = false;
  /** We sent the offer (delayed offer) and wait for the answer in the ACK. */
  awaitingAnswer: boolean;
  /** A re-INVITE without SDP got our description as an offer: its ACK carries the answer (RFC 3264 §8 / RFC 3261 §14.2). */
  private reofferPending = false;

  constructor(private readonly rtp: RtpSession, private readonly ip: string, offer: SdpOffer | null, n: Negotiated | null) {
    this.agreed = n ?? OUR_OFFER;
    this.awaitingAnswer = offer === null;
    const o = { ip, port: rtp.localPort, sessionId: this.sessionId, version: this.version };
    this.last = offer && n ? buildAnswer(offer, n, o) : buildOffer(o);
    if (n) this.apply(n);
  }

  private apply(n: Negotiated): void {
    // A new address or port (a re-INVITE moving media) re-latches the RTP there.
    this.rtp.setRemote(n.remoteAddress ? { address: n.remoteAddress, port: n.remotePort } : null);
    this.rtp.sending = n.direction === 'sendrecv' || n.direction === 'sendonly';
    this.held = n.direction === 'recvonly' || n.direction === 'inactive';
    this.rtp.lastPacketAt = performance.now();
  }

  /**
   * The ACK's answer to our offer; false when it is missing or has nothing
   * in common. After a re-INVITE without SDP, its ACK's answer is applied
   * like a refresh's (an unusable one leaves the media as it was).
   */
  answerInAck(body: string | undefined): boolean {
    if (!this.awaitingAnswer) {
      if (this.reofferPending) {
        this.reofferPending = false;
        if (body) this.refreshAnswer(body);
      }
      return true;
    }
    this.awaitingAnswer = false;
    const answer = body ? parseSdp(body) : null;
    const n = answer ? negotiate(answer) : null;
    if (!n || (n.codec === 'pcmu' ? n.pt !== 0 : n.pt !== 8)) return false;
    this.agreed = { ...n, dtmfPt: n.dtmfPt === 101 ? 101 : null };
    this.rtp.setFormat(n.codec, n.pt, this.agreed.dtmfPt);
    this.apply(n);
    return true;
  }

  /** A re-INVITE: the answer to its offer (null → 488), or without an offer our current description. */
  reinvite(body: string | undefined): string | null {
    if (!body) {
      // Our description is the offer; the answer comes in the ACK.
      this.reofferPending = !this.awaitingAnswer;
      return this.last;
    }
    const offer = parseSdp(body);
    const n = offer ? negotiate(offer) : null;
    if (!offer || !n) return null;
    const keep: Negotiated = { ...n, codec: this.agreed.codec, pt: this.agreed.pt, dtmfPt: n.dtmfPt === null ? null : this.agreed.dtmfPt };
    const answer = (version: number) => buildAnswer(offer, keep, { ip: this.ip, port: this.rtp.localPort, sessionId: this.sessionId, version });
    // The o= version moves only when our description changes (RFC 3264 §8).
    if (answer(this.version) !== this.last) this.last = answer(++this.version);
    this.apply(n);
    return this.last;
  }

  /**
   * The answer to our own re-INVITE (a session refresh repeating `last`): a
   * far end may move its media in it; an unusable answer changes nothing
   * (the call keeps what it had). False when it was not applied.
   */
  refreshAnswer(body: string | undefined): boolean {
    const answer = body ? parseSdp(body) : null;
    const n = answer ? negotiate(answer) : null;
    if (!n || n.codec !== this.agreed.codec) return false;
    this.apply(n);
    return true;
  }

  get codec(): Negotiated['codec'] {
    return this.agreed.codec;
  }
}
