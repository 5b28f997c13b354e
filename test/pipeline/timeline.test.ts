import { describe, expect, it } from 'vitest';
import { TurnTimeline } from '../../src/pipeline/timeline.js';
import { registry } from '../../src/metrics/index.js';

describe('TurnTimeline', () => {
  it('derives stage latencies and keeps e2e = eou + ttft + first sentence + ttfb + server', () => {
    const t = new TurnTimeline();
    t.mark('speechEnd', 1000);
    t.mark('sttFinal', 1250);
    t.mark('commit', 1400);
    t.mark('llmRequest', 1401);
    t.mark('firstToken', 1751);
    t.mark('firstSentence', 1900);
    t.mark('ttsRequest', 1901);
    t.mark('ttsFirstByte', 2101);
    t.mark('firstFrameSent', 2103);
    t.mark('firstMarkBack', 2300);
    t.mark('commit', 9999); // ignored: first mark wins
    const l = t.latencies();
    expect(l).toMatchObject({ eou: 400, llm_ttft: 350, first_sentence: 149, tts_ttfb: 200, e2e: 1103, server: 4, playout_ack: 197 });
    expect(l.eou! + l.llm_ttft! + l.first_sentence! + l.tts_ttfb! + l.server!).toBe(l.e2e);
  });

  it('leaves out stages it did not see and counts exceeded budgets', async () => {
    const t = new TurnTimeline();
    t.mark('speechEnd', 0);
    t.mark('commit', 300);
    t.mark('llmRequest', 320);
    t.mark('firstToken', 900);
    t.mark('firstSentence', 1000);
    t.mark('ttsRequest', 1000);
    t.mark('ttsFirstByte', 1500);
    t.mark('firstFrameSent', 1500);
    const { latencies, exceeded } = t.observe({ e2eMs: 1200, serverMs: 10 });
    expect(latencies.playout_ack).toBeUndefined();
    expect(latencies.server).toBe(20);
    expect(exceeded).toEqual(['e2e', 'server']);
    const text = await registry.metrics();
    expect(text).toMatch(/aybiza_latency_budget_exceeded_total\{stage="e2e"\} [1-9]/);
    expect(text).toMatch(/aybiza_turn_latency_seconds_count\{stage="llm_ttft"\} [1-9]/);
  });
});
