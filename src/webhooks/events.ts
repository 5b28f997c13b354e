// The events a webhook can subscribe to, and their envelope (issue 18).
// call.started / call.ended come from the call store (src/store/calls.ts),
// campaign.completed from the campaign engine (src/outbound), call.analyzed
// from the post-call analysis queue (src/postcall/queue.ts), recording.ready
// once a call's recording is complete and stored (src/recordings/recordings.ts).
export const WEBHOOK_EVENTS = ['call.started', 'call.ended', 'call.analyzed', 'recording.ready', 'campaign.completed'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

export interface WebhookEvent<D = Record<string, unknown>> {
  /** The same on every retry of this event: the idempotency key. */
  id: string;
  type: WebhookEventType;
  createdAt: string;
  data: D;
}
