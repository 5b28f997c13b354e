// The E-model (src/media/quality.ts) against the values ITU-T G.107 and
// G.113 publish, the loss-pattern tracker (src/media/loss-pattern.ts) on
// random, bursty, reordered and late packets, and a call's quality record.
import { describe, expect, it } from 'vitest';
import { LossPattern } from '../../src/media/loss-pattern.js';
import {
  ASSUMED, callQuality, delayImpairment, directionQuality, effectiveEquipmentImpairment, eModel, G107_DEFAULTS, G711_PLC, mosFromR,
} from '../../src/media/quality.js';
import type { PushOutcome } from '../../src/media/jitter-buffer.js';

describe('E-model (ITU-T G.107)', () => {
  it('gives R = 93.2 and MOS 4.41 with every parameter at its default (G.107 §7.1 / Table 3)', () => {
    const m = eModel();
    expect(m.R).toBeCloseTo(93.2, 1);
    expect(mosFromR(m.R)).toBeCloseTo(4.41, 2);
    // The parts: no delay or loss impairment at the defaults.
    expect(m.Idd).toBe(0);
    expect(m.IeEff).toBe(0);
    expect(G107_DEFAULTS.Bpl).toBe(4.3);
  });

  it('maps R to MOS as G.107 Annex B Table B.1 lists (R 90/80/70/60/50 → 4.34/4.03/3.60/3.10/2.58), clamped to [1, 4.5]', () => {
    const table: [number, number][] = [[90, 4.34], [80, 4.03], [70, 3.6], [60, 3.1], [50, 2.58]];
    // The table is printed to two decimals (80 → 4.03 where eq. B-4 gives 4.024): within 0.01.
    for (const [r, mos] of table) expect(Math.abs(mosFromR(r) - mos)).toBeLessThanOrEqual(0.01);
    expect(mosFromR(100)).toBe(4.5);
    expect(mosFromR(120)).toBe(4.5);
    expect(mosFromR(0)).toBe(1);
    expect(mosFromR(-10)).toBe(1);
    expect(mosFromR(5)).toBe(1); // eq. B-4 dips just under 1 at small R
  });

  it('Ie,eff (eq. 7-29) for G.711 with PLC: Ie 0, Bpl 25.1 (G.113 App. I); half of 95 at Ppl = Bpl; burstiness hurts', () => {
    expect(G711_PLC).toEqual({ Ie: 0, Bpl: 25.1 });
    expect(effectiveEquipmentImpairment(0, 25.1, 0, 1)).toBe(0);
    // Ppl = Bpl with random loss: Ie,eff = Ie + (95 - Ie) / 2.
    expect(effectiveEquipmentImpairment(0, 25.1, 25.1, 1)).toBeCloseTo(47.5, 10);
    // 1 % and 5 % random: 95·1/(1+25.1) = 3.64, 95·5/(5+25.1) = 15.78.
    expect(effectiveEquipmentImpairment(0, 25.1, 1, 1)).toBeCloseTo(3.64, 2);
    expect(effectiveEquipmentImpairment(0, 25.1, 5, 1)).toBeCloseTo(15.78, 2);
    // BurstR 2 at 5 %: 95·5/(2.5+25.1) = 17.21; bursts cost more than random loss at the same rate.
    expect(effectiveEquipmentImpairment(0, 25.1, 5, 2)).toBeCloseTo(17.21, 2);
    // Without PLC (G.113 App. I: Bpl 4.3 for G.711 random loss) 5 % costs far more.
    expect(effectiveEquipmentImpairment(0, 4.3, 5, 1)).toBeCloseTo(51.08, 2);
    // R falls by exactly Ie,eff when nothing else changes.
    expect(eModel({ ...G711_PLC, Ppl: 5 }).R).toBeCloseTo(eModel().R - 15.78, 2);
  });

  it('Idd (eq. 7-27/7-28) is 0 up to 100 ms, grows past it, and is continuous at 100 ms', () => {
    expect(delayImpairment(0)).toBe(0);
    expect(delayImpairment(100)).toBe(0);
    expect(delayImpairment(100.001)).toBeLessThan(1e-6);
    // X = 1 (Ta = 200 ms): 25·(2^(1/6) − 3·(1 + 3^-6)^(1/6) + 2) = 3.04; X = 2 (400 ms): 24.07.
    expect(delayImpairment(200)).toBeCloseTo(3.04, 2);
    expect(delayImpairment(400)).toBeCloseTo(24.07, 2);
    // Larger delay, lower R (the echo terms count too: T = Ta, Tr = 2·Ta).
    const r = [0, 100, 150, 200, 300, 400].map((Ta) => eModel({ Ta, T: Ta, Tr: 2 * Ta }).R);
    for (let i = 1; i < r.length; i++) expect(r[i]).toBeLessThan(r[i - 1]!);
  });

  it('directionQuality: a clean direction at 100 ms one-way stays above MOS 4.3; 5 % loss in bursts is worse than random', () => {
    const clean = directionQuality({ lossPercent: 0, burstR: 1, oneWayDelayMs: 100 });
    const random = directionQuality({ lossPercent: 5, burstR: 1, oneWayDelayMs: 100 });
    const bursty = directionQuality({ lossPercent: 5, burstR: 3, oneWayDelayMs: 100 });
    expect(clean.mos).toBeGreaterThan(4.3);
    expect(random.mos).toBeLessThan(clean.mos);
    expect(bursty.mos).toBeLessThan(random.mos);
    expect(random.ieEff).toBeCloseTo(15.78, 2);
  });
});

function feed(lp: LossPattern, firstSeq: number, outcomes: (PushOutcome | null)[]): void {
  outcomes.forEach((o, i) => {
    if (o) lp.packet((firstSeq + i) & 0xffff, o);
  });
}

describe('LossPattern', () => {
  it('counts nothing missing on a clean stream across the 16-bit wrap', () => {
    const lp = new LossPattern();
    feed(lp, 65_000, Array(1000).fill('accepted'));
    expect(lp.summary()).toMatchObject({ expected: 1000, missing: 0, lossPercent: 0, burstR: 1 });
  });

  it('random single losses give BurstR ≈ 1; losses in runs of 4 give BurstR ≈ mean run / random expectation', () => {
    const random = new LossPattern();
    // Every 10th packet: 10 % loss, every run of length 1 (more regular than random: BurstR clamps at 1).
    feed(random, 100, Array.from({ length: 5000 }, (_, i) => (i % 10 === 5 ? null : 'accepted')));
    const r = random.summary();
    expect(r.lossPercent).toBeCloseTo(10, 1);
    expect(r.burstR).toBe(1);
    const bursty = new LossPattern();
    // Four in a row every 40: 10 % loss, mean run 4; random loss would give 1/(1-0.1) = 1.11: BurstR = 4 · 0.9 = 3.6.
    feed(bursty, 100, Array.from({ length: 5000 }, (_, i) => (i % 40 >= 20 && i % 40 < 24 ? null : 'accepted')));
    const b = bursty.summary();
    expect(b.lossPercent).toBeCloseTo(10, 1);
    expect(b.bursts).toBe(125);
    expect(b.burstR).toBeCloseTo(3.6, 1);
  });

  it('a reordered packet fills its hole; a late one (after its playout) counts as missing; duplicates are ignored', () => {
    const lp = new LossPattern();
    lp.packet(10, 'accepted');
    lp.packet(12, 'accepted');
    lp.packet(11, 'accepted'); // reordered, in time
    lp.packet(14, 'accepted');
    lp.packet(13, 'late'); // came after its slot was played
    lp.packet(14, 'duplicate');
    lp.packet(15, 'accepted');
    expect(lp.summary()).toMatchObject({ expected: 6, missing: 1, bursts: 1 });
  });

  it('a sequence jump or a jitter-buffer restart starts over without counting the jump as loss', () => {
    const lp = new LossPattern();
    feed(lp, 0, Array(50).fill('accepted'));
    feed(lp, 30_000, Array(50).fill('accepted')); // +29,950: a new numbering
    lp.packet(7, 'restarted');
    lp.packet(8, 'accepted');
    expect(lp.summary()).toMatchObject({ expected: 102, missing: 0 });
  });
});

describe('callQuality', () => {
  const loss = { expected: 1000, missing: 0, bursts: 0, lossPercent: 0, burstR: 1 };

  it('inbound from loss and our jitter buffer, network delay assumed without RTCP; no outbound without a report', () => {
    const q = callQuality({ loss, jitter: { received: 1000, late: 0, targetDelayMs: 40, note: 'x' }, sampledBufferDelayMs: 50, rttMs: null, remote: null });
    expect(q.outbound).toBeNull();
    expect(q.rttMs).toBeNull();
    expect(q.inbound!.delay).toEqual({ networkMs: ASSUMED.networkOneWayMs, networkSource: 'assumed', jitterBufferMs: 50, processingMs: 30 });
    expect(q.inbound!.oneWayDelayMs).toBe(ASSUMED.networkOneWayMs + 50 + 30);
    expect(q.inbound!.jitterBuffer).toEqual({ received: 1000, late: 0, targetDelayMs: 40 });
    expect(q.r).toBe(q.inbound!.r);
    expect(q.mos).toBeGreaterThan(4.3);
  });

  it('a mean delay from the jitter buffer wins over sampling; RTCP gives the network delay and the outbound direction; the worse direction rates the call', () => {
    const q = callQuality({
      loss, jitter: { meanDelayMs: 80, targetDelayMs: 40 }, sampledBufferDelayMs: 50, rttMs: 300,
      remote: { expected: 500, lost: 50, lossPercent: 10, jitterMs: 12 },
    });
    expect(q.rttMs).toBe(300);
    expect(q.inbound!.delay).toMatchObject({ networkMs: 150, networkSource: 'rtcp', jitterBufferMs: 80 });
    expect(q.outbound).toMatchObject({ lossPercent: 10, burstR: 1, packets: { expected: 500, lost: 50 }, remoteJitterMs: 12 });
    expect(q.outbound!.delay.jitterBufferMs).toBe(ASSUMED.remoteJitterBufferMs);
    expect(q.outbound!.r).toBeLessThan(q.inbound!.r);
    expect(q.r).toBe(q.outbound!.r);
    expect(q.mos).toBe(q.outbound!.mos);
  });

  it('nothing measured: R and MOS null', () => {
    const q = callQuality({ loss: { ...loss, expected: 0 }, jitter: {}, sampledBufferDelayMs: null, rttMs: null, remote: null });
    expect(q).toMatchObject({ r: null, mos: null, inbound: null, outbound: null });
  });
});
