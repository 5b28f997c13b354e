// Outbound calling: the seam between the API / campaign dialer (which decide
// *whether* and *whom* to dial) and the carriers (Twilio REST, SIP UAC) that
// place the call. A carrier only places, watches and hangs up; guards,
// records and call state live in the dialer (src/outbound/dialer.ts).
import type { CallRecord, ResolvedAgent } from '../store/types.js';

export type OutboundVia = 'twilio' | 'sip';
export type AmdMode = 'off' | 'detect' | 'detect_message_end';
/** Who answered, as stored on the call (`answeredBy`); Twilio's finer machine_* values map to `machine`. */
export type AnsweredBy = 'human' | 'machine' | 'unknown';

/** `POST /v1/calls` body, after validation. */
export interface DialRequest {
  agentId: string;
  to: string;
  from: string;
  via: OutboundVia;
  trunkId?: string;
  amd?: AmdMode;
  voicemail?: { message: string };
  /** Fill `{{name}}` placeholders in the agent's prompt and greeting. */
  variables?: Record<string, string>;
  metadata?: Record<string, unknown>;
  /** Set by the campaign dialer: the contact this dial belongs to. */
  campaignId?: string;
  contactId?: string;
}

/**
 * Outbound call states, in order; an ended call has one of the final five.
 * `queued` → `dialing` → `ringing` → `in-progress` → final.
 */
export const OUTBOUND_FINAL = ['completed', 'busy', 'no-answer', 'failed', 'canceled'] as const;
export type OutboundFinal = (typeof OUTBOUND_FINAL)[number];
export type OutboundStatus = 'queued' | 'dialing' | 'ringing' | 'in-progress' | OutboundFinal;

/** What a carrier reports back while a call it placed progresses. */
export interface CarrierEvents {
  status(status: OutboundStatus, detail?: { endReason?: string }): void;
  answeredBy(result: AnsweredBy, detail?: { source: 'twilio' | 'aybiza'; raw?: string; decisionMs?: number }): void;
}

/** Everything a carrier needs to place one call. */
export interface PlaceRequest {
  call: CallRecord;
  request: DialRequest;
  agent: ResolvedAgent;
  events: CarrierEvents;
}

export interface Carrier {
  readonly via: OutboundVia;
  /** Resolves once the call has been handed to the network (not when it is answered). */
  place(req: PlaceRequest): Promise<void>;
  /** Ends the call whatever its state (cancel while ringing, hang up when answered). Idempotent. */
  hangup(callId: string): Promise<void>;
}
