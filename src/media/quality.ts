// Call quality per call: the E-model of ITU-T G.107 (06/2015), the
// transmission rating R and the conversational MOS (MOS-CQE) it maps to.
// Every parameter keeps its G.107 default (Table 3) except the ones a call
// measures: packet loss (Ppl, BurstR), the one-way delay Ta (with the echo
// path T = Ta and the four-wire loop Tr = 2·Ta, the usual reading when only
// Ta is known) and the codec's impairment, G.711 with packet-loss concealment
// from G.113 Appendix I: Ie = 0, Bpl = 25.1. Equation numbers below are G.107's.
//
// `directionQuality` turns one direction's measurements into R and MOS;
// `callQuality` assembles a SIP call's record from what RTP and RTCP showed
// (see CallMeasurements). A Twilio Media Streams call has no RTP: it gets no
// quality record (see README, "Call quality").
import type { LossSummary } from './loss-pattern.js';

/** The E-model's inputs (G.107 Table 3 names and units: dB, ms, %). */
export interface EModelParams {
  SLR: number; RLR: number; STMR: number; LSTR: number; Ds: number; Dr: number;
  TELR: number; WEPL: number; T: number; Tr: number; Ta: number; qdu: number;
  Ie: number; Bpl: number; Ppl: number; BurstR: number; Nc: number; Nfor: number;
  Ps: number; Pr: number; A: number; mT: number; sT: number;
}

/** G.107 (06/2015) Table 3 default values; with all of them R = 93.2. */
export const G107_DEFAULTS: Readonly<EModelParams> = Object.freeze({
  SLR: 8, RLR: 2, STMR: 15, LSTR: 18, Ds: 3, Dr: 3, TELR: 65, WEPL: 110, T: 0, Tr: 0, Ta: 0, qdu: 1,
  Ie: 0, Bpl: 4.3, Ppl: 0, BurstR: 1, Nc: -70, Nfor: -64, Ps: 35, Pr: 35, A: 0, mT: 100, sT: 1,
});

/** G.711 with packet-loss concealment (ours: native/plc, G.711 Appendix I): G.113 Appendix I, Table I.1/I.3. */
export const G711_PLC = Object.freeze({ Ie: 0, Bpl: 25.1 });

const lg = Math.log10;

/** Delay impairment Idd from the absolute one-way delay Ta (eq. 7-27/7-28): 0 up to mT (100 ms). */
export function delayImpairment(Ta: number, mT = 100, sT = 1): number {
  if (!(Ta > mT)) return 0;
  const X = lg(Ta / mT) / lg(2);
  const e = 6 * sT;
  return 25 * ((1 + X ** e) ** (1 / e) - 3 * (1 + (X / 3) ** e) ** (1 / e) + 2);
}

/** Effective equipment impairment Ie,eff (eq. 7-29); Ppl in percent, BurstR 1 for random loss. */
export function effectiveEquipmentImpairment(Ie: number, Bpl: number, Ppl: number, BurstR: number): number {
  return Ie + ((95 - Ie) * Ppl) / (Ppl / BurstR + Bpl);
}

/** The parts of R (eq. 7-1: R = Ro − Is − Id − Ie,eff + A). */
export interface RFactor {
  R: number;
  Ro: number;
  Is: number;
  Id: number;
  Idd: number;
  IeEff: number;
}

/** The E-model: R and its parts for the given parameters (the rest at their G.107 defaults). */
export function eModel(p: Partial<EModelParams> = {}): RFactor {
  const q: EModelParams = { ...G107_DEFAULTS, ...p };
  const OLR = q.SLR + q.RLR;
  // Basic signal-to-noise ratio (7-2 … 7-7).
  const Nos = q.Ps - q.SLR - q.Ds - 100 + 0.004 * (q.Ps - OLR - q.Ds - 14) ** 2;
  const Pre = q.Pr + 10 * lg(1 + 10 ** ((10 - q.LSTR) / 10));
  const Nor = q.RLR - 121 + Pre + 0.008 * (Pre - 35) ** 2;
  const Nfo = q.Nfor + q.RLR;
  const No = 10 * lg(10 ** (q.Nc / 10) + 10 ** (Nos / 10) + 10 ** (Nor / 10) + 10 ** (Nfo / 10));
  const Ro = 15 - 1.5 * (q.SLR + No);
  // Simultaneous impairments (7-8 … 7-17).
  const Xolr = OLR + 0.2 * (64 + No - q.RLR);
  const Iolr = 20 * ((1 + (Xolr / 8) ** 8) ** (1 / 8) - Xolr / 8);
  const STMRo = -10 * lg(10 ** (-q.STMR / 10) + Math.exp(-q.T / 4) * 10 ** (-q.TELR / 10));
  const Ist = 12 * (1 + ((STMRo - 13) / 6) ** 8) ** (1 / 8) - 28 * (1 + ((STMRo + 1) / 19.4) ** 35) ** (1 / 35)
    - 13 * (1 + ((STMRo - 3) / 33) ** 13) ** (1 / 13) + 29;
  const Qv = 37 - 15 * lg(q.qdu);
  const G = 1.07 + 0.258 * Qv + 0.0602 * Qv ** 2;
  const Y = (Ro - 100) / 15 + 46 / 8.4 - G / 9;
  const Z = 46 / 30 - G / 40;
  const Iq = 15 * lg(1 + 10 ** Y + 10 ** Z);
  const Is = Iolr + Ist + Iq;
  // Delay impairments (7-18 … 7-28): talker echo, listener echo, absolute delay.
  let TERV = q.TELR - 40 * lg((1 + q.T / 10) / (1 + q.T / 150)) + 6 * Math.exp(-0.3 * q.T ** 2);
  if (q.STMR < 9) TERV += Ist / 2;
  const Roe = -1.5 * (No - q.RLR);
  const Re = 80 + 2.5 * (TERV - 14);
  const Idte = ((Roe - Re) / 2 + Math.sqrt((Roe - Re) ** 2 / 4 + 100) - 1) * (1 - Math.exp(-q.T));
  const Rle = 10.5 * (q.WEPL + 7) * (q.Tr + 1) ** -0.25;
  const Idle = (Ro - Rle) / 2 + Math.sqrt((Ro - Rle) ** 2 / 4 + 169);
  const Idd = delayImpairment(q.Ta, q.mT, q.sT);
  const Id = Idte + Idle + Idd;
  const IeEff = effectiveEquipmentImpairment(q.Ie, q.Bpl, q.Ppl, q.BurstR);
  return { R: Ro - Is - Id - IeEff + q.A, Ro, Is, Id, Idd, IeEff };
}

/** MOS-CQE from R (G.107 Annex B, eq. B-4), within [1, 4.5]. */
export function mosFromR(R: number): number {
  if (R <= 0) return 1;
  if (R >= 100) return 4.5;
  return Math.max(1, 1 + 0.035 * R + R * (R - 60) * (100 - R) * 7e-6);
}

/**
 * Delays we cannot measure on a call, in ms. Documented (README, "Call
 * quality") because they move R: at 100 ms one-way Idd starts to count.
 */
export const ASSUMED = Object.freeze({
  /** One-way network delay when no RTCP round trip is known: a carrier trunk in the same region. */
  networkOneWayMs: 40,
  /** The caller's own jitter buffer (we never see it): a common fixed 60 ms buffer. */
  remoteJitterBufferMs: 60,
  /** One 20 ms frame of packetisation at the sender (G.711 has no look-ahead). */
  packetisationMs: 20,
  /** Our part: on average half a 20 ms clock tick between a frame due and its handling; G.711 and PLC take microseconds. */
  processingMs: 10,
});

/** What a call measured for one direction, the input of directionQuality. */
export interface DirectionInput {
  /** Packets the receiver missed at playout (lost on the network or too late), percent. */
  lossPercent: number;
  /** Mean loss burst over the random-loss expectation (G.107 §7; 1 = random). */
  burstR: number;
  /** Mouth-to-ear one-way delay Ta, ms. */
  oneWayDelayMs: number;
}

export interface DirectionQuality {
  r: number;
  mos: number;
  /** Ie,eff: the codec + loss impairment. */
  ieEff: number;
  /** Id: the delay impairments (talker and listener echo at the default echo loss, and Idd). */
  id: number;
}

/** R and MOS for one direction of a G.711 + PLC call. */
export function directionQuality(d: DirectionInput): DirectionQuality {
  const Ta = Math.max(0, d.oneWayDelayMs);
  const m = eModel({ ...G711_PLC, Ppl: Math.min(100, Math.max(0, d.lossPercent)), BurstR: Math.max(1, d.burstR), Ta, T: Ta, Tr: 2 * Ta });
  return { r: round(m.R), mos: round(mosFromR(m.R)), ieEff: round(m.IeEff), id: round(m.Id) };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The caller's RTCP report on our outbound stream (sip/rtcp.ts). */
export interface RemoteReport {
  /** Packets the caller expected (its highest sequence number since our first). */
  expected: number;
  /** Its cumulative number of packets lost. */
  lost: number;
  lossPercent: number;
  /** Its interarrival jitter estimate, ms. */
  jitterMs: number;
}

/** What a SIP call measured, gathered by its RtpSession at the end of the call. */
export interface CallMeasurements {
  /** The caller's stream as our decoder saw it (src/media/loss-pattern.ts). */
  loss: LossSummary;
  /** The jitter buffer's stats() at the end; fields beyond these are copied when present. */
  jitter: Record<string, unknown>;
  /** Mean of the jitter-buffer delay sampled during the call, ms; null when never sampled. */
  sampledBufferDelayMs: number | null;
  /** Mean RTCP round trip, ms; null when the caller's reports carried none. */
  rttMs: number | null;
  /** The caller's latest report on our stream; null when it sent none. */
  remote: RemoteReport | null;
}

export interface DelayBreakdown {
  networkMs: number;
  /** 'rtcp': half the measured round trip; 'assumed': ASSUMED.networkOneWayMs. */
  networkSource: 'rtcp' | 'assumed';
  /** The receiver's jitter buffer (ours inbound, measured; the caller's outbound, assumed). */
  jitterBufferMs: number;
  /** Packetisation and our processing (ASSUMED). */
  processingMs: number;
}

export interface InboundQuality extends DirectionQuality {
  lossPercent: number;
  burstR: number;
  oneWayDelayMs: number;
  delay: DelayBreakdown;
  packets: { expected: number; missing: number; bursts: number };
  jitterBuffer: Record<string, number>;
}

export interface OutboundQuality extends DirectionQuality {
  lossPercent: number;
  /** The caller's reports give no loss pattern: random loss assumed (G.107 default BurstR = 1). */
  burstR: 1;
  oneWayDelayMs: number;
  delay: DelayBreakdown;
  packets: { expected: number; lost: number };
  /** The caller's interarrival jitter, ms. */
  remoteJitterMs: number;
}

/** A call's stored `quality`: the worse direction's R and MOS, and each direction's figures. */
export interface CallQuality {
  r: number | null;
  mos: number | null;
  model: typeof MODEL;
  rttMs: number | null;
  /** Caller → us; null when no audio packet arrived. */
  inbound: InboundQuality | null;
  /** Us → caller; null when the caller sent no RTCP report on our stream. */
  outbound: OutboundQuality | null;
}

const MODEL = 'ITU-T G.107 E-model; G.711 with PLC (G.113 App. I: Ie 0, Bpl 25.1)';

/** The quality record of a SIP call from its measurements. */
export function callQuality(m: CallMeasurements): CallQuality {
  const network: Pick<DelayBreakdown, 'networkMs' | 'networkSource'> = m.rttMs !== null
    ? { networkMs: round(m.rttMs / 2, 1), networkSource: 'rtcp' }
    : { networkMs: ASSUMED.networkOneWayMs, networkSource: 'assumed' };
  const processingMs = ASSUMED.packetisationMs + ASSUMED.processingMs;
  let inbound: InboundQuality | null = null;
  if (m.loss.expected > 0) {
    const jitterBuffer: Record<string, number> = {};
    for (const [k, v] of Object.entries(m.jitter)) if (typeof v === 'number' && Number.isFinite(v)) jitterBuffer[k] = v;
    // The buffer's own mean playout delay when it reports one, else our samples of its current delay.
    const bufferMs = jitterBuffer.meanDelayMs ?? m.sampledBufferDelayMs ?? jitterBuffer.targetDelayMs ?? 0;
    const delay = { ...network, jitterBufferMs: round(bufferMs, 1), processingMs };
    const oneWayDelayMs = round(delay.networkMs + delay.jitterBufferMs + processingMs, 1);
    const d = { lossPercent: round(m.loss.lossPercent, 3), burstR: round(m.loss.burstR), oneWayDelayMs };
    inbound = {
      ...directionQuality(d), ...d, delay,
      packets: { expected: m.loss.expected, missing: m.loss.missing, bursts: m.loss.bursts }, jitterBuffer,
    };
  }
  let outbound: OutboundQuality | null = null;
  if (m.remote) {
    const delay = { ...network, jitterBufferMs: ASSUMED.remoteJitterBufferMs, processingMs };
    const oneWayDelayMs = round(delay.networkMs + delay.jitterBufferMs + processingMs, 1);
    const d = { lossPercent: round(m.remote.lossPercent, 3), burstR: 1 as const, oneWayDelayMs };
    outbound = {
      ...directionQuality(d), ...d, delay,
      packets: { expected: m.remote.expected, lost: m.remote.lost }, remoteJitterMs: round(m.remote.jitterMs, 1),
    };
  }
  // A conversation is as good as its worse direction.
  const worst = [inbound, outbound].filter((x) => x !== null).sort((a, b) => a.r - b.r)[0];
  return { r: worst?.r ?? null, mos: worst?.mos ?? null, model: MODEL, rttMs: m.rttMs === null ? null : round(m.rttMs, 1), inbound, outbound };
}
