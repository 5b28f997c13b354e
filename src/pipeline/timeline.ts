// Per-turn latency timeline. Each turn records when it passed each point,
// and the conversational waits on its way to the first frame as named spans;
// at the end it yields the stage latencies exported as
// aybiza_turn_latency_seconds{stage} and stored with the turn.
//   eou       caller stops speaking → turn committed
//   llm_ttft  LLM request sent → first token (or, when the first round only
//             asks for a tool, the end of that round)
//   tts_ttfb  first TTS request → first audio byte (from the commit when the
//             first clause was synthesised before it: see tts_start)
//   e2e       caller stops speaking → first agent frame sent
//   llm_start turn committed → LLM request sent (stored with the turn, not
//             exported): negative when preemptive generation started the
//             request before the end of turn; then llm_ttft and
//             first_sentence count only their part after the commit (what
//             the caller waited for)
//   tts_start turn committed → first TTS request (stored, not exported):
//             negative when the first clause of a preemptive generation was
//             synthesised before the end of turn
//   waits     (WAIT_SPANS) conversational waits on the way to the first
//             frame, not ours and not a provider's first response:
//             barge_in_check, false_interruption, tool, llm_round2,
//             earlier_speech (see WAIT_SPANS)
//   server    our own time on the critical path: e2e minus everything above
//             and first_sentence (the LLM streaming the first sentence) — so
//             e2e = eou + llm_ttft + first_sentence + tts_ttfb + waits + server
//             exactly.
import { latencyBudgetExceeded, turnLatency } from '../metrics/index.js';

export const TIMELINE_POINTS = [
  'speechEnd', 'sttFinal', 'commit', 'llmRequest', 'llmFirstOutput', 'firstToken', 'firstSentence', 'ttsRequest',
  'ttsFirstByte', 'firstFrameSent', 'firstMarkBack',
] as const;
export type TimelinePoint = (typeof TIMELINE_POINTS)[number];

/**
 * Waits that are part of the conversation, not our work (a closed set: they
 * are `stage` label values too):
 *   barge_in_check      output held while caller speech over the agent is
 *                       checked (until the caller goes quiet or it is confirmed)
 *   false_interruption  the rest of the false-interruption window after the
 *                       caller went quiet, before the held reply resumes
 *   tool                tool calls running
 *   llm_round2          LLM rounds after a tool, request → first output
 *   earlier_speech      the reply's audio queued behind the agent's earlier
 *                       speech still playing (e.g. the greeting)
 */
export const WAIT_SPANS = ['barge_in_check', 'false_interruption', 'tool', 'llm_round2', 'earlier_speech'] as const;
export type WaitSpan = (typeof WAIT_SPANS)[number];

export interface TurnLatencies extends Partial<Record<WaitSpan, number>> {
  eou?: number;
  llm_ttft?: number;
  first_sentence?: number;
  tts_ttfb?: number;
  e2e?: number;
  /** LLM request − commit, ms; negative: generation started before the end of turn (preemptive). */
  llm_start?: number;
  /** First TTS request − commit, ms; negative: the first clause was synthesised before the end of turn. */
  tts_start?: number;
  server?: number;
  playout_ack?: number;
}

export interface Budget {
  /** Per-agent end-to-end budget (latencyBudgetMs). */
  e2eMs: number;
  /** Our own share; the product promise is single-digit milliseconds. */
  serverMs: number;
}

type Stage = 'llm_ttft' | 'first_sentence' | 'tts_ttfb' | WaitSpan;

/**
 * Where two intervals overlap, the earlier stage in this list owns the time:
 * provider waits first (they would have been waited for anyway), then tools
 * and later LLM rounds, then holds; a hold only counts for what it added.
 */
const PRIORITY: readonly Stage[] = [
  'llm_ttft', 'first_sentence', 'tts_ttfb', 'llm_round2', 'tool', 'barge_in_check', 'false_interruption', 'earlier_speech',
];

export class TurnTimeline {
  readonly points: Partial<Record<TimelinePoint, number>> = {};
  private readonly spans: { name: WaitSpan; start: number; end: number }[] = [];

  /** Records a point the first time it is reached (later calls are ignored). */
  mark(point: TimelinePoint, atMs: number): void {
    if (this.points[point] === undefined) this.points[point] = atMs;
  }

  has(point: TimelinePoint): boolean {
    return this.points[point] !== undefined;
  }

  /** Records a conversational wait; only what lies before the first frame counts. */
  span(name: WaitSpan, startMs: number, endMs: number): void {
    if (endMs > startMs && !(this.points.firstFrameSent !== undefined && startMs >= this.points.firstFrameSent)) {
      this.spans.push({ name, start: startMs, end: endMs });
    }
  }

  latencies(): TurnLatencies {
    const p = this.points;
    const d = (a: TimelinePoint, b: TimelinePoint) =>
      p[a] !== undefined && p[b] !== undefined ? Math.max(0, p[b]! - p[a]!) : undefined;
    // A stage that began before the commit (preemptive generation) counts from the commit.
    const fromCommit = (a: TimelinePoint, b: TimelinePoint) =>
      p[a] !== undefined && p[b] !== undefined ? Math.max(0, p[b]! - Math.max(p[a]!, p.commit ?? p[a]!)) : undefined;
    const out: TurnLatencies = {
      eou: d('speechEnd', 'commit'),
      llm_ttft: fromCommit('llmRequest', p.llmFirstOutput !== undefined ? 'llmFirstOutput' : 'firstToken'),
      first_sentence: fromCommit('firstToken', 'firstSentence'),
      tts_ttfb: fromCommit('ttsRequest', 'ttsFirstByte'),
      e2e: d('speechEnd', 'firstFrameSent'),
      playout_ack: d('firstFrameSent', 'firstMarkBack'),
      llm_start: p.commit !== undefined && p.llmRequest !== undefined ? p.llmRequest - p.commit : undefined,
      tts_start: p.commit !== undefined && p.ttsRequest !== undefined ? p.ttsRequest - p.commit : undefined,
    };
    const ready = (['commit', 'llmRequest', 'firstSentence', 'ttsRequest', 'ttsFirstByte', 'firstFrameSent'] as const).every((k) => p[k] !== undefined);
    if (ready) Object.assign(out, this.criticalPath(p.commit!, p.firstFrameSent!));
    return out;
  }

  /**
   * Splits commit → first frame among the stages and waits that cover it
   * (overlaps go to the stage earlier in PRIORITY); what no interval covers
   * is `server`. Waits are reported only when present.
   */
  private criticalPath(from: number, to: number): Partial<Record<WaitSpan | 'server', number>> {
    const p = this.points;
    const iv: { stage: Stage; start: number; end: number }[] = [];
    const add = (stage: Stage, start: number | undefined, end: number | undefined) => {
      if (start === undefined || end === undefined) return;
      const s = Math.max(start, from);
      const e = Math.min(end, to);
      if (e > s) iv.push({ stage, start: s, end: e });
    };
    add('llm_ttft', p.llmRequest, p.llmFirstOutput ?? p.firstToken);
    add('first_sentence', p.firstToken, p.firstSentence);
    add('tts_ttfb', p.ttsRequest, p.ttsFirstByte);
    for (const s of this.spans) add(s.name, s.start, s.end);
    const cuts = [...new Set([from, to, ...iv.flatMap((i) => [i.start, i.end])])].sort((a, b) => a - b);
    const totals: Partial<Record<WaitSpan | 'server', number>> = { server: 0 };
    for (let k = 0; k + 1 < cuts.length; k++) {
      const a = cuts[k];
      const b = cuts[k + 1];
      let owner: Stage | null = null;
      for (const i of iv) {
        if (i.start <= a && i.end >= b && (owner === null || PRIORITY.indexOf(i.stage) < PRIORITY.indexOf(owner))) owner = i.stage;
      }
      if (owner === null) totals.server! += b - a;
      else if ((WAIT_SPANS as readonly string[]).includes(owner)) totals[owner as WaitSpan] = (totals[owner as WaitSpan] ?? 0) + (b - a);
    }
    return totals;
  }

  /** Exports the turn to Prometheus; returns the latencies and which budgets it exceeded. */
  observe(budget: Budget): { latencies: TurnLatencies; exceeded: string[] } {
    const lat = this.latencies();
    for (const stage of ['eou', 'llm_ttft', 'tts_ttfb', 'e2e', 'server', ...WAIT_SPANS] as const) {
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
