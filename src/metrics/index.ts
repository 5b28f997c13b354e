// Every Prometheus metric the server exports (CONTRACT §5), on one registry.
// Names are stable: dashboards in deploy/ depend on them. Add new metrics
// here, not inline where they are used.
import { isMainThread } from 'node:worker_threads';
import client from 'prom-client';
import { boundedLabel } from './labels.js';

export { httpStatusLabel, providerErrorKind, wsCloseKind } from './labels.js';

export const registry = new client.Registry();
// Process-wide figures (CPU, RSS, handles) once, from the main thread; a media
// worker (WORKERS) reports its own event loop in aybiza_worker_event_loop_lag_seconds.
if (isMainThread) client.collectDefaultMetrics({ register: registry });

/** A labelled counter bumped on every frame or packet (see `hotCounter`). */
export interface HotCounter {
  inc(): void;
}

const hot = new Map<client.Counter<string>, { labels: string[]; n: number }[]>();

/**
 * A counter child for per-frame paths: an increment is one addition to a
 * plain number, folded into the Prometheus counter when it is scraped.
 * prom-client's own `labels(...).inc()` hashes the label values into a new
 * string on every call: tens of thousands of garbage strings a second at
 * a few hundred calls. The counter must be declared with `collect: foldHot`.
 */
export function hotCounter(counter: client.Counter<string>, ...labels: string[]): HotCounter {
  const h = { labels, n: 0 };
  let list = hot.get(counter);
  if (!list) hot.set(counter, (list = []));
  list.push(h);
  return { inc: () => void h.n++ };
}

function foldHot(this: client.Counter<string>): void {
  for (const h of hot.get(this) ?? []) {
    if (h.n === 0) continue;
    this.labels(...h.labels).inc(h.n);
    h.n = 0;
  }
}

export const buildInfo = new client.Gauge({
  name: 'aybiza_build_info',
  help: 'Build information; value is always 1',
  labelNames: ['version', 'uws_native'] as const,
  registers: [registry],
  // Every worker sets it too: merged across workers it stays 1.
  aggregator: 'max',
});

export const callsActive = new client.Gauge({
  name: 'aybiza_calls_active',
  help: 'Calls in progress',
  labelNames: ['transport'] as const,
  registers: [registry],
});

export const callsTotal = new client.Counter({
  name: 'aybiza_calls_total',
  help: 'Calls ended, by transport, outcome and direction (inbound, outbound)',
  labelNames: ['transport', 'outcome', 'direction'] as const,
  registers: [registry],
});

/** Answering-machine detection verdicts, Twilio's and ours alike: human, machine, unknown. */
export const amdTotal = new client.Counter({
  name: 'aybiza_amd_total',
  help: 'Answering-machine detection results (human, machine, unknown), from Twilio AMD and our own detector',
  labelNames: ['result'] as const,
  registers: [registry],
});

/** Dials and transfers the outbound guards refused (src/outbound/guards.ts): closed reasons. */
export const outboundRefused = new client.Counter({
  name: 'aybiza_outbound_refused_total',
  help: 'Outbound dials and transfers refused by the guards, by kind (dial, transfer) and reason (destination_not_allowed, dnc, daily_cap)',
  labelNames: ['kind', 'reason'] as const,
  registers: [registry],
});

/**
 * Turn-latency buckets (seconds): 1 and 2.5 ms for the `server` stage, then
 * 5 ms to 5 s with at most 50 ms between bounds from 100 ms to 1.5 s, where
 * every stage and e2e live, so an 800 ms turn and a 1.4 s one land in
 * different buckets (the old 0.75 → 1 → 1.5 s steps could not tell them
 * apart). 44 bounds × 5 stages: a fixed number of series.
 */
export const TURN_LATENCY_BUCKETS: number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
  ...Array.from({ length: 29 }, (_, i) => Math.round((0.1 + i * 0.05) * 1000) / 1000), // 0.1 … 1.5
  1.75, 2, 2.5, 3, 3.5, 4, 5, 10,
];

export const turnLatency = new client.Histogram({
  name: 'aybiza_turn_latency_seconds',
  help: 'Per-turn latency by stage: eou, llm_ttft, tts_ttfb, e2e, server (our own time), and the conversational waits on the way to the first frame: barge_in_check, false_interruption, tool, llm_round2, earlier_speech',
  labelNames: ['stage'] as const,
  buckets: TURN_LATENCY_BUCKETS,
  registers: [registry],
});

export const latencyBudgetExceeded = new client.Counter({
  name: 'aybiza_latency_budget_exceeded_total',
  help: 'Turns whose stage latency exceeded the agent budget',
  labelNames: ['stage'] as const,
  registers: [registry],
});

/**
 * MOS buckets for aybiza_call_mos: 0.5 apart below 2.5, 0.25 to 3, then 0.1
 * apart from 3 to 4.5, where calls live and where the low-MOS alert (3.6)
 * must be resolved (G.107's 4.41 for a perfect G.711 call sits in 4.4–4.5).
 */
export const CALL_MOS_BUCKETS: number[] = [1, 1.5, 2, 2.5, 2.75, ...Array.from({ length: 16 }, (_, i) => Math.round((3 + i * 0.1) * 10) / 10)];

export const callMos = new client.Histogram({
  name: 'aybiza_call_mos',
  help: 'Per-call conversational MOS (ITU-T G.107 E-model, worse direction) of calls whose quality could be measured (SIP)',
  buckets: CALL_MOS_BUCKETS,
  registers: [registry],
});

export const mediaFrames = new client.Counter({
  name: 'aybiza_media_frames_total',
  help: '20 ms media frames by transport and direction',
  labelNames: ['transport', 'direction'] as const,
  registers: [registry],
  collect: foldHot,
});

export const badInput = new client.Counter({
  name: 'aybiza_bad_input_total',
  help: 'Rejected input by source (http, api, twilio_ws, sip, rtp, native, ...) and reason',
  labelNames: ['source', 'reason'] as const,
  registers: [registry],
});

export const bargeIns = new client.Counter({
  name: 'aybiza_barge_ins_total',
  help: 'Caller interruptions of agent speech',
  registers: [registry],
});

/** Preemptive generations (issue 16): `used` when the confirmed turn had the same words, `discarded` otherwise (aborted). */
export const preemptiveTotal = new client.Counter({
  name: 'aybiza_preemptive_total',
  help: 'LLM generations started on an early end-of-turn signal, by outcome (used: the confirmed turn had the same words; discarded: aborted)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

/** Webhook delivery attempts (src/webhooks/outbox.ts), by a closed result: delivered, failed (retried), refused (address policy), gave_up. */
export const webhookDeliveries = new client.Counter({
  name: 'aybiza_webhook_deliveries_total',
  help: 'Webhook delivery attempts by result: delivered (2xx), failed (retried later), refused (the address policy refused the receiver), gave_up (the last attempt failed)',
  labelNames: ['result'] as const,
  registers: [registry],
});

/** Post-call analyses (src/postcall/queue.ts), by a closed result: analyzed, invalid (stored as an error after a retry), failed (retried later), gave_up. */
export const usageCost = new client.Counter({
  name: 'aybiza_usage_total',
  help: 'Cost of metered usage in USD by component (telephony, stt, tts, llm), priced with the price table (PRICES_FILE) when each call or analysis is recorded',
  labelNames: ['component'] as const,
  registers: [registry],
});

export const usageUnits = new client.Counter({
  name: 'aybiza_usage_units_total',
  help: 'Metered usage by unit: telephony_seconds (media time), stt_seconds (audio streamed to STT), tts_characters (text sent to TTS), llm_input_tokens, llm_output_tokens (as the model reported them)',
  labelNames: ['unit'] as const,
  registers: [registry],
});

export const analysisResults = new client.Counter({
  name: 'aybiza_analysis_total',
  help: 'Post-call analyses by result: analyzed, invalid (the model\'s answer did not validate after one retry; stored as an error), failed (service error, retried later), gave_up (stored as an error)',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const sipMessages = new client.Counter({
  name: 'aybiza_sip_messages_total',
  help: 'SIP messages by method, direction (in/out) and response code ("" for requests)',
  labelNames: ['method', 'direction', 'code'] as const,
  registers: [registry],
});

// SIP methods and response codes come from the network: a label takes only
// these values (anything else is "other"), so no packet can add a series.
const SIP_METHODS = new Set(['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'REFER', 'NOTIFY', 'UPDATE', 'PRACK', 'MESSAGE', 'SUBSCRIBE', 'REGISTER']);
const SIP_CODES = new Set([
  100, 180, 181, 182, 183, 199, 200, 202, 204, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404, 405, 406, 407, 408, 410, 413, 414, 415, 416,
  420, 421, 422, 423, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491, 493, 500, 501, 502, 503, 504, 505, 513, 580, 600, 603, 604, 606,
].map(String));

/** The `method` label for a SIP method token: one of the standard methods, else "other". */
export function sipMethodLabel(method: string | undefined): string {
  return method !== undefined && SIP_METHODS.has(method) ? method : 'other';
}

/** The `code` label for a SIP status: a code RFC 3261 and its extensions define, else "other"; "" for requests. */
export function sipCodeLabel(code: number | string | undefined): string {
  if (code === undefined || code === '') return '';
  const c = String(code);
  return SIP_CODES.has(c) ? c : 'other';
}

export const rtpPackets = new client.Counter({
  name: 'aybiza_rtp_packets_total',
  help: 'RTP packets by direction and event (received, sent, lost, late, concealed, unexpected_source, ...)',
  labelNames: ['direction', 'event'] as const,
  registers: [registry],
  collect: foldHot,
});

export const httpRequests = new client.Counter({
  name: 'aybiza_http_requests_total',
  help: 'HTTP requests by route and status code',
  labelNames: ['route', 'code'] as const,
  registers: [registry],
});

export const providerErrors = new client.Counter({
  name: 'aybiza_provider_errors_total',
  help: 'Provider failures by provider (stt, tts, llm) and kind',
  labelNames: ['provider', 'kind'] as const,
  registers: [registry],
});

export const internalErrors = new client.Counter({
  name: 'aybiza_internal_errors_total',
  help: 'Exceptions caught by the callback guard (src/guard.ts), by where they ran; uncaught/unhandled_rejection escaped every guard',
  labelNames: ['where'] as const,
  registers: [registry],
});

const badInputSource = boundedLabel(32);
const badInputReasons = new Map<string, (reason: string) => string>();

/**
 * Counts one rejected input. `reason` is a short stable token, never user data;
 * should one ever be built from input by mistake, the labels stay bounded
 * (at most 32 sources and 64 reasons each, then "other").
 */
export function countBadInput(source: string, reason: string): void {
  const s = badInputSource(source);
  let r = badInputReasons.get(s);
  if (!r) badInputReasons.set(s, (r = boundedLabel(64)));
  badInput.inc({ source: s, reason: r(reason) });
}

export const pacingLateTicks = new client.Counter({
  name: 'aybiza_pacing_late_ticks_total',
  help: 'Shared 20 ms clock slots that ran more than 10 ms late (event-loop stalls)',
  registers: [registry],
});

export const playoutDeferredFrames = new client.Counter({
  name: 'aybiza_playout_deferred_frames_total',
  help: 'Outbound frames held back because the transport was backpressured',
  labelNames: ['transport'] as const,
  registers: [registry],
});

// Gaps in the agent's voice (src/call/gaps.ts); label values are closed sets
// defined there (STALL_CLASSES, PAUSE_REASONS).
export const playoutLateFrames = new client.Counter({
  name: 'aybiza_playout_late_frames_total',
  help: 'Outbound frames that had audio queued but went out more than 10 ms after their 20 ms slot, by how late the slot ran (stall: le_25ms, le_50ms, gt_50ms)',
  labelNames: ['stall'] as const,
  registers: [registry],
  collect: foldHot,
});

export const playoutPauses = new client.Counter({
  name: 'aybiza_playout_pauses_total',
  help: 'Runs of empty 20 ms slots inside the agent speech, by what they waited for (llm_tokens, tts_audio, flush_window, unflushed_text, tool, barge_in_check, other)',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const playoutPauseSeconds = new client.Histogram({
  name: 'aybiza_playout_pause_seconds',
  help: 'Length of pauses inside the agent speech, by reason (as aybiza_playout_pauses_total)',
  labelNames: ['reason'] as const,
  buckets: [0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5],
  registers: [registry],
});

// WORKERS > 1 (src/server/workers.ts): the main thread merges every worker's
// series into one /metrics (counters and gauges summed per label set); these
// two are per worker, `worker` being the worker's index (0 … WORKERS-1).
export const workerCallsActive = new client.Gauge({
  name: 'aybiza_worker_calls_active',
  help: 'Calls in progress per media worker thread (WORKERS > 1; Twilio and SIP calls alike, SIP media runs in the workers)',
  labelNames: ['worker'] as const,
  registers: [registry],
});

export const workerStreamsStarting = new client.Gauge({
  name: 'aybiza_worker_streams_starting',
  help: 'Media streams a media worker thread has accepted whose call has not started yet (WORKERS > 1; counted by the connection steering)',
  labelNames: ['worker'] as const,
  registers: [registry],
});

export const workerEventLoopLag = new client.Gauge({
  name: 'aybiza_worker_event_loop_lag_seconds',
  help: 'Event-loop delay of each media worker thread since the previous scrape, by quantile (p50, p99, max)',
  labelNames: ['worker', 'quantile'] as const,
  registers: [registry],
});

export const workerRestarts = new client.Counter({
  name: 'aybiza_worker_restarts_total',
  help: 'Media worker threads that ended unexpectedly and were started again',
  registers: [registry],
});

/** One /metrics text from the main thread's series and every worker's (getMetricsAsJSON), merged per label set. */
export async function mergedMetrics(workers: client.MetricObjectWithValues<client.MetricValue<string>>[][]): Promise<string> {
  const merged = client.AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...workers]);
  return merged.metrics();
}
