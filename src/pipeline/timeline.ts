// Per-turn latency timeline. Each turn records when it passed each point;
// at the end it yields the stage latencies exported as
// aybiza_turn_latency_seconds{stage} and stored with the turn.
//   eou       caller stops speaking → turn committed
//   llm_ttft  LLM request sent → first token
//   tts_ttfb  first TTS request → first audio byte
//   e2e       caller stops speaking → first agent frame sent
//   server    our own time on the critical path: e2e minus the waits on the
//             caller/STT (eou), the LLM (ttft and streaming the first
//             sentence) and TTS (ttfb) — so e2e = eou + llm_ttft +
//             first_sentence + tts_ttfb + server exactly.
import { latencyBudgetExceeded, turnLatency } from '../metrics/index.js';

export const TIMELINE_POINTS = [
  'speechEnd', 'sttFinal', 'commit', 'llmRequest', 'firstToken', 'firstSentence', 'ttsRequest', 'ttsFirstByte',
  'firstFrameSent', 'firstMarkBack',
] as const;
export type TimelinePoint = (typeof TIMELINE_POINTS)[number];

export interface TurnLatencies {
  eou?: number;
  llm_ttft?: number;
  first_sentence?: number;
  tts_ttfb?: number;
  e2e?: number;
  server?: number;
  playout_ack?: number;
}

export interface Budget {
  /** Per-agent end-to-end budget (latencyBudgetMs). */
  e2eMs: number;
  /** Our own share; the product promise is single-digit milliseconds. */
  serverMs: number;
}

export class TurnTimeline {
  readonly points: Partial<Record<TimelinePoint, number>> = {};

  /** Records a point the first time it is reached (later calls are ignored). */
  mark(point: TimelinePoint, atMs: number): void {
    if (this.points[point] === undefined) this.points[point] = atMs;
  }

  has(point: TimelinePoint): boolean {
    return this.points[point] !== undefined;
  }

  latencies(): TurnLatencies {
    const p = this.points;
    const d = (a: TimelinePoint, b: TimelinePoint) =>
      p[a] !== undefined && p[b] !== undefined ? Math.max(0, p[b]! - p[a]!) : undefined;
    const out: TurnLatencies = {
      eou: d('speechEnd', 'commit'),
      llm_ttft: d('llmRequest', 'firstToken'),
      first_sentence: d('firstToken', 'firstSentence'),
      tts_ttfb: d('ttsRequest', 'ttsFirstByte'),
      e2e: d('speechEnd', 'firstFrameSent'),
      playout_ack: d('firstFrameSent', 'firstMarkBack'),
    };
    const own = [d('commit', 'llmRequest'), d('firstSentence', 'ttsRequest'), d('ttsFirstByte', 'firstFrameSent')];
    if (own.every((v) => v !== undefined)) out.server = own.reduce((a, b) => a! + b!, 0);
    return out;
  }

  /** Exports the turn to Prometheus; returns the latencies and which budgets it exceeded. */
  observe(budget: Budget): { latencies: TurnLatencies; exceeded: string[] } {
    const lat = this.latencies();
    for (const stage of ['eou', 'llm_ttft', 'tts_ttfb', 'e2e', 'server'] as const) {
      const v = lat[stage];
      if (v !== undefined) turnLatency.observe({ stage }, v / 1000);
    }
    const exceeded: string[] = [];
    if (lat.e2e !== undefined && lat.e2e > budget.e2eMs) exceeded.push('e2e');
    if (lat.server !== undefined && lat.server > budget.serverMs) exceeded.push('server');
    for (const stage of exceeded) latencyBudgetExceeded.inc({ stage });
    return { latencies: lat, exceeded };
  }
}
