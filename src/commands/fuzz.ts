// `npm run fuzz -- --seconds N [--seed S] [--rate R] [--only http,ws,sip,rtp,native,flux,twilio_rest,pg_wire,sip_uac]
// [--database-url URL] [--redis-url URL] [--keep]`: every boundary driven with
// mutated valid inputs and random bytes (bench/fuzz/: http, ws, sip, rtp,
// native, the Flux emulator's /v2/listen and the Twilio REST emulator; pg_wire:
// the embedded database's loopback socket server; sip_uac: our outbound calls
// answered by a hostile callee, through a second server that may dial
// loopback) against a server spawned as its own process with the production
// heap flags (embedded database unless --database-url), while one healthy
// Twilio call and one healthy SIP call run beside it.
// Properties, printed at the end and as the exit code (0 all hold, 1 one broke):
// the server stays up; no HTTP answer is a 5xx other than 503 and none hangs;
// aybiza_internal_errors_total{where="uncaught"|"unhandled_rejection"} stays 0;
// SIP messages are answered or counted; RSS, metric series and label values
// stay bounded; the native addon never aborts; a healthy database client keeps
// getting its own answers; every outbound call ends with a final status and
// the dialling server stays up with no internal error; both healthy calls last
// and keep their pacing (p99 gap ≤ 40 ms).
// Everything is drawn from one seeded PRNG: the seed is printed, and so is
// every input that broke a property (hex).
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseArgs, numberArg } from './args.js';
import { DEMO_NUMBER } from '../store/seed.js';
import { Rand, newSeed, hex } from '../../bench/fuzz/random.js';
import { apiRoutes, httpCase, regressionCases, sendRaw, HANG_MS, type HttpTarget, type HttpCase } from '../../bench/fuzz/http.js';
import { callSession, noTokenSession, rawUpgrade, type WsTarget } from '../../bench/fuzz/ws.js';
import { SipFuzzer } from '../../bench/fuzz/sip.js';
import { fluxAlive, fluxSession } from '../../bench/fuzz/flux.js';
import { FUZZ_ACCOUNT_SID, twilioRestAlive, twilioRestCase, type TwilioRestTarget } from '../../bench/fuzz/twilio-rest.js';
import { RtpFuzzer } from '../../bench/fuzz/rtp.js';
import { lastCaseNumber, type NativeReport } from '../../bench/fuzz/native.js';
import { checkS3Parsers } from '../../bench/fuzz/s3.js';
import { checkSipParsers } from '../../bench/fuzz/sip-parsers.js';
import { PgWireFuzzer } from '../../bench/fuzz/pg-wire.js';
import { HostileCallee, UacFuzzer } from '../../bench/fuzz/sip-uac.js';
import type { HealthyConfig, HealthyResult } from '../../bench/fuzz/healthy.js';
import { parseMetrics, rssMiB, setupTenants, startTarget, startUacServer, type Server } from '../../bench/fuzz/target.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FUZZ_DIR = path.join(HERE, '..', '..', 'bench', 'fuzz');
const ADMIN_KEY = 'fuzz-admin-key-' + process.pid;
const TWILIO_TOKEN = 'fuzz-twilio-token';
// Bounds on growth over the run (start → end). Series: every label value from
// outside input must map to a closed set, so a run may add the few hundred
// series its routes, codes and reasons name, not thousands. RSS: the server's
// working set after the run, allowing for the database's own growth.
const MAX_SERIES_GROWTH = 1000;
// A label fed from outside input shows as hundreds of values; closed sets
// (route patterns, status codes, reasons, methods + "other") stay well below.
const MAX_LABEL_VALUES = 100;
const MAX_RSS_GROWTH_MIB = 256;
const MAX_PACING_P99_MS = 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last few inputs of each boundary, as hex: the suspects when the server dies or an error escapes. */
class Recent {
  private readonly rings = new Map<string, Buffer[]>();
  constructor(private readonly keep: number) {}
  add(boundary: string, input: Buffer): void {
    const r = this.rings.get(boundary) ?? [];
    this.rings.set(boundary, r);
    r.push(input);
    if (r.length > this.keep) r.shift();
  }
  dump(): string[] {
    return [...this.rings].flatMap(([b, r]) => r.map((x) => `  ${b} ${hex(x, 2048)}`));
  }
}

interface Property {
  name: string;
  ok: boolean;
  detail: string;
  /** Inputs that broke it (hex), for replay. */
  inputs?: string[];
}

/**
 * Starts `fn` `rate` times a second until the deadline, never more than
 * `maxInFlight` at once (inputs the server holds unanswered must not slow the
 * others down); resolves when the last one has ended.
 */
async function pump(deadline: number, rate: number, maxInFlight: number, fn: () => Promise<unknown>, onError: (err: unknown) => void): Promise<void> {
  const every = 1000 / rate;
  const running = new Set<Promise<unknown>>();
  let next = performance.now();
  while (performance.now() < deadline) {
    if (running.size < maxInFlight) {
      const p: Promise<unknown> = fn().catch(onError).finally(() => running.delete(p));
      running.add(p);
    } else await Promise.race(running);
    next += every;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -1000) next = performance.now(); // fell behind: do not burst to catch up
  }
  await Promise.all(running);
}

/** Runs `fn` repeatedly until the deadline, at most `rate` times a second, `concurrency` at once. */
async function loop(deadline: number, rate: number, concurrency: number, fn: () => Promise<unknown>, onError: (err: unknown) => void): Promise<void> {
  const every = 1000 / rate;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await fn().catch(onError);
      const wait = every * concurrency - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  }));
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['keep']);
  const seconds = numberArg(a.seconds, 'seconds', 60, 5, 24 * 3600);
  const seed = a.seed !== undefined ? numberArg(a.seed, 'seed', 0, 0, 2 ** 32 - 1) : newSeed();
  const rate = numberArg(a.rate, 'rate', 150, 1, 100_000); // inputs per second per boundary
  const BOUNDARIES = ['http', 'ws', 'sip', 'rtp', 'native', 'flux', 'twilio_rest', 'pg_wire', 'sip_uac'];
  const only = new Set(a.only ? String(a.only).split(',') : BOUNDARIES);
  for (const b of only) if (!BOUNDARIES.includes(b)) throw new Error(`--only takes a comma-separated subset of ${BOUNDARIES.join(',')}`);
  const on = (b: string) => only.has(b);
  const idle = Promise.resolve();
  const log = (s: string) => process.stderr.write(`fuzz: ${s}\n`);
  log(`seed ${seed} (replay with --seed ${seed}), ${seconds} s`);
  const children: ChildProcess[] = [];
  let worker: Worker | null = null;
  const dataDir = fs.mkdtempSync(path.join(process.env.AYBIZA_TEST_TMP ?? os.tmpdir(), 'aybiza-fuzz-'));
  try {
    const targetOpts = {
      dataDir, adminKey: ADMIN_KEY, twilioToken: TWILIO_TOKEN, children, log,
      databaseUrl: a['database-url'] ? String(a['database-url']) : undefined, redisUrl: a['redis-url'] ? String(a['redis-url']) : undefined,
    };
    const target = await startTarget(targetOpts);
    const { base, port, sipPort, rtpMin, rtpMax, server, logFile } = target;
    const { fuzzNumber, fuzzTenant: ft, fuzzKey: key, tenantKey, fuzzAgent: fa, fuzzNumberRow: fnum, fuzzTrunk: ftr, fuzzCampaign: fcmp } = await setupTenants(base, ADMIN_KEY);
    const routes = await apiRoutes(base);

    // The healthy calls, in their own thread.
    const healthyCfg: HealthyConfig = { baseUrl: base, publicUrl: base, twilioToken: TWILIO_TOKEN, number: DEMO_NUMBER, sipHost: '127.0.0.1', sipPort };
    const w = new Worker(path.join(FUZZ_DIR, 'healthy.js'), { workerData: { healthy: healthyCfg } });
    worker = w;
    let healthyError: string | null = null;
    w.on('error', (err) => (healthyError = `healthy-call worker failed: ${err.message}`));
    const up = await new Promise<{ sipServerRtp: { address: string; port: number } | null }>((resolve, reject) => {
      w.once('message', (m: { type: string; error?: string; sipServerRtp?: { address: string; port: number } }) => {
        if (m.type === 'up') resolve({ sipServerRtp: m.sipServerRtp ?? null });
        else reject(new Error(m.error ?? 'healthy calls failed'));
      });
      w.once('error', reject);
    });
    log(`healthy calls up (SIP call's server RTP port ${up.sipServerRtp?.port}); fuzzing`);

    const metricsText0 = await (await fetch(`${base}/metrics`)).text();
    fs.writeFileSync(path.join(dataDir, 'metrics-start.txt'), metricsText0);
    const metrics0 = parseMetrics(metricsText0);
    const badInputBySource = (m: ReturnType<typeof parseMetrics>, source: string) =>
      [...m.values('aybiza_bad_input_total')].filter(([k]) => k.includes(`source="${source}"`)).reduce((n, [, v]) => n + v, 0);
    const rss0 = rssMiB(server.pid!);
    let rssPeak = rss0;

    // The boundaries, each from its own stream of the seed (adding a boundary does not change the others' inputs).
    const rHttp = new Rand(seed ^ 0x1111);
    const rWs = new Rand(seed ^ 0x2222);
    const rSip = new Rand(seed ^ 0x3333);
    const rRtp = new Rand(seed ^ 0x4444);
    const rFlux = new Rand(seed ^ 0x6666);
    const rTwilio = new Rand(seed ^ 0x7777);
    const twilioT: TwilioRestTarget = { url: target.twilioRestUrl, accountSid: FUZZ_ACCOUNT_SID, authToken: TWILIO_TOKEN };
    const twilioSids: string[] = [];
    const httpT: HttpTarget = {
      host: '127.0.0.1', port, publicUrl: base, twilioToken: TWILIO_TOKEN, adminKey: ADMIN_KEY, tenantKey, tenantId: String(ft.id),
      ids: [String(fa.id), String(fnum.id), String(ftr.id), String(key.id ?? ''), String(ft.id), String(fcmp.id)].filter(Boolean), numbers: ['+15555550188'], routes,
    };
    const wsT: WsTarget = { host: '127.0.0.1', port, publicUrl: base, twilioToken: TWILIO_TOKEN, number: fuzzNumber };
    const sip = new SipFuzzer(rSip, { host: '127.0.0.1', port: sipPort, tlsPort: target.sipTlsPort, number: fuzzNumber });
    await sip.open();
    if (on('sip')) await sip.tortureOnce();
    const rtp = new RtpFuzzer(rRtp, {
      host: '127.0.0.1', callPort: () => up.sipServerRtp?.port ?? null, rangeMin: rtpMin, rangeMax: rtpMax + 1,
      sendAsCaller: (pkt) => w.postMessage({ type: 'rtp', pkt }),
    });
    await rtp.open();
    // The embedded database's socket server: a hostile connection is closed within 50 ms of its input (the server's hold timeout is
    // 30 s; one holding the session holds the server's own queries too, so the cases are spread out).
    const pgWire = on('pg_wire') && target.embeddedDbUrl ? new PgWireFuzzer(new Rand(seed ^ 0x8888), target.embeddedDbUrl, 5000, 50) : null;
    if (on('pg_wire') && !pgWire) log('pg_wire skipped: the server runs on --database-url (external PostgreSQL), not the embedded database');
    await pgWire?.open();
    let uacServer: Server | null = null;
    let uac: UacFuzzer | null = null;
    if (on('sip_uac')) {
      uacServer = await startUacServer(targetOpts, target);
      uac = new UacFuzzer(new Rand(seed ^ 0x9999), uacServer.base, ADMIN_KEY, new HostileCallee(new Rand(seed ^ 0x999a)));
      await uac.open();
    }

    const stats = {
      http: { sent: 0, byStatus: {} as Record<string, number>, by5xx: [] as { status: number; route: string; request: string }[], timeouts: [] as { route: string; request: string }[] },
      ws: { sessions: 0, messages: 0, byKind: {} as Record<string, number>, outcomes: {} as Record<string, number> },
      flux: { sessions: 0, messages: 0, outcomes: {} as Record<string, number>, violations: [] as string[] },
      twilioRest: { sent: 0, byStatus: {} as Record<string, number>, violations: [] as string[] },
    };
    const deadline = performance.now() + seconds * 1000;
    const recent = new Recent(8);
    // The fuzzer's own failures (a generator bug, a socket error here): reported, never silently lost.
    const fuzzerErrors = { count: 0, first: [] as string[] };
    const fuzzerError = (err: unknown) => {
      fuzzerErrors.count++;
      if (fuzzerErrors.first.length < 5) fuzzerErrors.first.push(err instanceof Error ? (err.stack ?? err.message).split('\n').slice(0, 3).join(' | ') : String(err));
    };
    // Past findings first, then the generated cases.
    const regressions: HttpCase[] = regressionCases(httpT);

    // The native addon, in a child of its own: an abort kills the child, not the fuzzer.
    const nativeState = path.join(dataDir, 'native.state');
    const nativeSeed = (seed ^ 0x5555) >>> 0;
    const nat = fork(path.join(FUZZ_DIR, 'native.js'), ['--seed', String(nativeSeed), '--seconds', String(on('native') ? seconds : 0), '--state', nativeState], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    children.push(nat);
    // It would otherwise take a whole core from the server (this box has two): it gets what is idle.
    try {
      os.setPriority(nat.pid!, 19);
    } catch {
      /* not permitted */
    }
    let natOut = '';
    let natErr = '';
    nat.stdout!.on('data', (d: Buffer) => (natOut += d.toString()));
    nat.stderr!.on('data', (d: Buffer) => (natErr += d.toString().slice(-4000)));
    const natDone = new Promise<{ code: number | null; signal: string | null }>((r) => nat.once('exit', (code, signal) => r({ code, signal })));

    // Every few seconds: RSS, and whether an exception escaped every guard (then the
    // inputs sent just before are the suspects, kept for the report).
    const suspects: string[] = [];
    const monitor = (async () => {
      let escapedSoFar = 0;
      let lastScrape = 0;
      while (performance.now() < deadline && !target.exited()) {
        await sleep(1000);
        rssPeak = Math.max(rssPeak, rssMiB(server.pid!) || 0);
        if (performance.now() - lastScrape < 5000) continue;
        lastScrape = performance.now();
        const m = await fetch(`${base}/metrics`).then((r) => r.text(), () => '');
        const n = [...parseMetrics(m).values('aybiza_internal_errors_total')].filter(([k]) => /where="(uncaught|unhandled_rejection)"/.test(k)).reduce((x, [, v]) => x + v, 0);
        if (n > escapedSoFar && suspects.length < 200) suspects.push(`escaped internal error #${n} within 5 s after:`, ...recent.dump());
        escapedSoFar = n;
      }
      if (target.exited()) suspects.push(`server ${target.exited()} after:`, ...recent.dump());
    })();

    await Promise.all([
      monitor,
      natDone,
      !on('http') ? idle : pump(deadline, rate, 200, async () => {
        const c = regressions.shift() ?? httpCase(rHttp, httpT);
        recent.add('http', c.request);
        const o = await sendRaw('127.0.0.1', port, c.request, deadline + 1000);
        stats.http.sent++;
        const s = o.idle ? 'dropped_at_idle_timeout' : String(o.status);
        stats.http.byStatus[s] = (stats.http.byStatus[s] ?? 0) + 1;
        if (typeof o.status === 'number' && o.status >= 500 && o.status !== 503 && stats.http.by5xx.length < 20) stats.http.by5xx.push({ status: o.status, route: c.route, request: hex(c.request) });
        if (o.status === 'timeout' && stats.http.timeouts.length < 20) stats.http.timeouts.push({ route: c.route, request: hex(c.request) });
      }, fuzzerError),
      !on('ws') ? idle : pump(deadline, Math.max(1, rate / 15), 6, async () => {
        const k = rWs.int(20);
        const res = k < 9 ? await rawUpgrade(rWs, wsT, deadline + 1000) : k < 17 ? await noTokenSession(rWs, wsT) : await callSession(rWs, wsT, rWs.range(20, 100));
        if (res.last) recent.add('ws', res.last);
        stats.ws.sessions++;
        stats.ws.messages += res.sent;
        stats.ws.byKind[res.kind] = (stats.ws.byKind[res.kind] ?? 0) + 1;
        const o = `${res.kind}:${res.outcome}`;
        stats.ws.outcomes[o] = (stats.ws.outcomes[o] ?? 0) + 1;
      }, fuzzerError),
      !on('flux') ? idle : pump(deadline, Math.max(1, rate / 30), 4, async () => {
        const res = await fluxSession(rFlux, target.deepgramUrl, rFlux.range(1, 40));
        if (res.last) recent.add('flux', res.last);
        stats.flux.sessions++;
        stats.flux.messages += res.sent;
        stats.flux.outcomes[String(res.outcome)] = (stats.flux.outcomes[String(res.outcome)] ?? 0) + 1;
        if (res.violation && stats.flux.violations.length < 20) stats.flux.violations.push(`${res.violation}; last input ${res.last ? hex(res.last, 512) : '-'}`);
      }, fuzzerError),
      !on('twilio_rest') ? idle : pump(deadline, Math.max(1, rate / 10), 8, async () => {
        const res = await twilioRestCase(rTwilio, twilioT, twilioSids);
        recent.add('twilio_rest', res.last);
        stats.twilioRest.sent++;
        stats.twilioRest.byStatus[String(res.status)] = (stats.twilioRest.byStatus[String(res.status)] ?? 0) + 1;
        if (res.violation && stats.twilioRest.violations.length < 20) stats.twilioRest.violations.push(`${res.violation}; input ${hex(res.last, 512)}`);
      }, fuzzerError),
      !on('sip') ? idle : loop(deadline, rate, 2, async () => recent.add('sip', await sip.step()), fuzzerError),
      !pgWire ? idle : loop(deadline, Math.max(1, rate / 10), 1, async () => recent.add('pg_wire', await pgWire.step()), fuzzerError),
      // An unanswered dial rings for 30 s: after the deadline the last ones are waited for (at most 45 s).
      !uac ? idle : pump(deadline, Math.max(1, rate / 30), 24, () => uac.step(), fuzzerError),
      !on('sip') ? idle : loop(deadline, 0.2, 1, () => sip.dialog(10 + rSip.int(20)), fuzzerError),
      !on('rtp') ? idle : loop(deadline, rate, 1, async () => {
        for (let i = 0; i < 5; i++) recent.add('rtp', rtp.step());
      }, fuzzerError),
    ]);
    rtp.close();
    await pgWire?.close();
    uac?.close();
    const sipStats = await sip.finish();

    // Results.
    const w2 = w;
    const healthy = await new Promise<HealthyResult | null>((resolve) => {
      const t = setTimeout(() => resolve(null), 10_000);
      w2.on('message', (m: { type: string; result?: HealthyResult }) => {
        if (m.type === 'result') {
          clearTimeout(t);
          resolve(m.result!);
        }
      });
      w2.postMessage({ type: 'stop' });
    });
    await sleep(1000);
    const alive = !target.exited() && (await fetch(`${base}/healthz`).then((r) => r.ok, () => false));
    const fluxUp = !on('flux') || (await fluxAlive(target.deepgramUrl));
    const twilioUp = !on('twilio_rest') || (await twilioRestAlive(twilioT));
    const metricsText = alive ? await (await fetch(`${base}/metrics`)).text() : '';
    fs.writeFileSync(path.join(dataDir, 'metrics-end.txt'), metricsText);
    const metrics1 = parseMetrics(metricsText);
    const rss1 = rssMiB(server.pid!);
    const internal = Object.fromEntries(metrics1.values('aybiza_internal_errors_total'));
    const escaped = [...metrics1.values('aybiza_internal_errors_total')].filter(([k]) => /where="(uncaught|unhandled_rejection)"/.test(k)).reduce((n, [, v]) => n + v, 0);
    const badInput = Object.fromEntries([...metrics1.values('aybiza_bad_input_total')].filter(([, v]) => v > 0));
    const nat1 = await natDone;
    let nativeReport: NativeReport | null = null;
    try {
      nativeReport = JSON.parse(natOut.trim().split('\n').pop() ?? '') as NativeReport;
    } catch {
      /* it died */
    }
    let nativeCrash: string | null = null;
    if (!nativeReport) {
      const n = lastCaseNumber(nativeState);
      nativeCrash = `native fuzz child ended (${nat1.signal ?? `exit ${nat1.code}`}) during case #${n}; replay: node ${path.join(FUZZ_DIR, 'native.js')} --seed ${nativeSeed} --until ${n}\n${natErr}`;
    }
    const seriesGrowth = metrics1.series - metrics0.series;
    const rssGrowth = rss1 - rss0;
    const fiveHundreds = Object.entries(stats.http.byStatus).filter(([s]) => /^5\d\d$/.test(s) && s !== '503').reduce((n, [, v]) => n + v, 0);
    const p99 = (c: HealthyResult['twilio'] | undefined) => c?.pacing.p99 ?? Infinity;

    const sipCounted = badInputBySource(metrics1, 'sip') - badInputBySource(metrics0, 'sip');
    const wideLabels = [...metrics1.labelValues].filter(([, n]) => n > MAX_LABEL_VALUES).map(([k, n]) => `${k}: ${n}`);
    const widest = [...metrics1.labelValues].sort((x, y) => y[1] - x[1])[0];
    // The S3 emulator's request, XML and aws-chunked parsers, in process (they are pure functions).
    const s3Parsers = checkS3Parsers(new Rand(seed ^ 0x5353), 5000);
    // Session-timer headers and SRV answers for trunk hosts, in process.
    const sipParsers = await checkSipParsers(new Rand(seed ^ 0x5350), 5000);
    const pgStoreErrors = [...metrics1.values('aybiza_internal_errors_total')].filter(([k]) => k.includes('where="store"')).reduce((n, [, v]) => n + v, 0);
    const uacAlive = !!uacServer && !uacServer.exited() && (await fetch(`${uacServer.base}/healthz`).then((r) => r.ok, () => false));
    const uacErrors = uacAlive ? [...parseMetrics(await (await fetch(`${uacServer!.base}/metrics`)).text()).values('aybiza_internal_errors_total')].reduce((n, [, v]) => n + v, 0) : NaN;
    const properties: Property[] = [
      { name: 's3_emulator_parsers', ok: s3Parsers.violations.length === 0, inputs: s3Parsers.violations, detail: `${s3Parsers.cases} hostile requests, XML and aws-chunked bodies; ${s3Parsers.parsed} parsed, the rest refused as S3 errors; ${s3Parsers.violations.length} other exceptions` },
      { name: 'sip_header_and_srv_parsers', ok: sipParsers.violations.length === 0, inputs: sipParsers.violations, detail: `${sipParsers.cases} hostile session-timer headers and SRV answers; ${sipParsers.violations.length} exceptions or results out of bounds` },
      { name: 'server_up', ok: alive, inputs: alive ? [] : suspects, detail: alive ? 'the server answered /healthz after the run' : `the server is gone: ${target.exited() ?? 'no answer on /healthz'}; see ${logFile}` },
      { name: 'no_escaped_internal_errors', ok: alive && escaped === 0, inputs: suspects, detail: `aybiza_internal_errors_total{where="uncaught"|"unhandled_rejection"} = ${escaped}; all: ${JSON.stringify(internal)}` },
      { name: 'http_no_5xx_but_503', ok: fiveHundreds === 0, detail: `${fiveHundreds} answers were 5xx other than 503`, inputs: stats.http.by5xx.map((x) => `${x.status} ${x.route} ${x.request}`) },
      { name: 'http_every_request_answered_or_dropped', ok: (stats.http.byStatus.timeout ?? 0) === 0, detail: `${stats.http.byStatus.timeout ?? 0} requests got neither an answer nor a close within ${HANG_MS / 1000} s`, inputs: stats.http.timeouts.map((x) => `${x.route} ${x.request}`) },
      { name: 'sip_every_message_answered_or_counted', ok: alive && sipStats.unanswered <= sipCounted, detail: `${sipStats.sent} messages (${sipStats.torture} RFC 4475; ${sipStats.tls} TLS connections, ${sipStats.tlsBadHandshakes} bad handshakes), answers for ${sipStats.answeredCallIds} Call-IDs, ${sipStats.unanswered} Call-IDs unanswered ≤ ${sipCounted} counted in aybiza_bad_input_total{source="sip"}` },
      { name: 'metric_series_bounded', ok: alive && seriesGrowth <= MAX_SERIES_GROWTH, detail: `${metrics0.series} → ${metrics1.series} series (+${seriesGrowth}; bound +${MAX_SERIES_GROWTH})` },
      { name: 'metric_labels_closed', ok: alive && wideLabels.length === 0, detail: wideLabels.length ? `labels with more than ${MAX_LABEL_VALUES} values: ${wideLabels.join(', ')}` : `widest label: ${widest ? `${widest[0]} with ${widest[1]} values` : 'none'} (bound ${MAX_LABEL_VALUES})` },
      { name: 'rss_bounded', ok: Number.isFinite(rssGrowth) && rssGrowth <= MAX_RSS_GROWTH_MIB, detail: `${rss0} → ${rss1} MiB (+${rssGrowth}; peak ${rssPeak}; bound +${MAX_RSS_GROWTH_MIB})` },
      { name: 'flux_emulator_answers', ok: fluxUp && stats.flux.violations.length === 0, inputs: stats.flux.violations, detail: `${stats.flux.sessions} sessions, ${stats.flux.messages} messages to /v2/listen; ${stats.flux.violations.length} answered against the protocol; ${fluxUp ? 'still serving' : 'no longer serving'}` },
      { name: 'twilio_rest_emulator_answers', ok: twilioUp && stats.twilioRest.violations.length === 0, inputs: stats.twilioRest.violations, detail: `${stats.twilioRest.sent} requests to the Twilio REST emulator (${JSON.stringify(stats.twilioRest.byStatus)}); ${stats.twilioRest.violations.length} answered against the reference; ${twilioUp ? 'still serving' : 'no longer serving'}` },
      ...(!pgWire ? [] : [{ name: 'pg_wire_healthy_client_answered', ok: pgWire.violations.length === 0 && pgStoreErrors === 0, inputs: pgWire.violations, detail: `${pgWire.cases} hostile connections to the embedded database's socket server; ${pgWire.violations.length} broke a healthy client's query; aybiza_internal_errors_total{where="store"} = ${pgStoreErrors}` }]),
      ...(!uac ? [] : [
        { name: 'sip_uac_every_call_final', ok: uac.violations.length === 0, inputs: uac.violations, detail: `${uac.calls} outbound calls to a hostile callee (${uac.callee.invites} INVITEs); ${uac.violations.length} without a final status or with a wrong one` },
        { name: 'sip_uac_server_up_no_internal_errors', ok: uacAlive && uacErrors === 0, detail: uacAlive ? `aybiza_internal_errors_total on the dialling server = ${uacErrors}` : `the dialling server is gone: ${uacServer?.exited() ?? 'no answer on /healthz'}; see ${uacServer?.logFile}` },
      ]),
      { name: 'native_never_aborts', ok: nativeReport !== null, detail: nativeReport ? `${nativeReport.calls} calls: ${nativeReport.ok} returned, ${nativeReport.rejected} threw (${nativeReport.unexpectedCount} not TypeError/RangeError)` : nativeCrash! },
      { name: 'healthy_calls_last', ok: !!healthy && healthy.twilio.up && healthy.sip.up && !healthyError, detail: healthy ? `twilio: ${healthy.twilio.endedEarly ?? 'up'}; sip: ${healthy.sip.endedEarly ?? 'up'}` : healthyError ?? 'no result from the healthy calls' },
      { name: 'healthy_pacing', ok: !!healthy && p99(healthy.twilio) <= MAX_PACING_P99_MS && p99(healthy.sip) <= MAX_PACING_P99_MS, detail: healthy ? `p99 gap twilio ${healthy.twilio.pacing.p99} ms, sip ${healthy.sip.pacing.p99} ms (bound ${MAX_PACING_P99_MS})` : 'no result' },
    ];
    const report = {
      seed, seconds, rate,
      properties: Object.fromEntries(properties.map((p) => [p.name, p.ok])),
      http: { sent: stats.http.sent, byStatus: stats.http.byStatus },
      ws: stats.ws,
      flux: { sessions: stats.flux.sessions, messages: stats.flux.messages, outcomes: stats.flux.outcomes },
      twilioRest: { sent: stats.twilioRest.sent, byStatus: stats.twilioRest.byStatus },
      pgWire: pgWire && { cases: pgWire.cases, violations: pgWire.violations.length },
      sipUac: uac && { calls: uac.calls, invites: uac.callee.invites, outcomes: uac.outcomes },
      sip: { ...sipStats, badInputCounted: sipCounted },
      rtp: { ...rtp.stats, rtpPackets: Object.fromEntries(metrics1.values('aybiza_rtp_packets_total')) },
      native: nativeReport,
      fuzzerErrors,
      healthy,
      server: {
        alive,
        eventLoopLagMs: Object.fromEntries(['p50', 'p99', 'max'].map((q) => [q, +(((metrics1.values(`nodejs_eventloop_lag_${q}_seconds`).get('') ?? NaN) * 1000).toFixed(1))])),
        rssMiB: { start: rss0, end: rss1, peak: rssPeak, growth: rssGrowth }, series: { start: metrics0.series, end: metrics1.series, growth: seriesGrowth }, internalErrors: internal, badInput },
    };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    const lines = properties.map((p) => `${p.ok ? 'ok  ' : 'FAIL'} ${p.name}: ${p.detail}`);
    if (fuzzerErrors.count) lines.push(`note: ${fuzzerErrors.count} fuzz cases failed inside the fuzzer itself (not the server): ${fuzzerErrors.first.join(' ; ')}`);
    process.stderr.write(`\nfuzz: seed ${seed}\n${lines.join('\n')}\n`);
    for (const p of properties.filter((x) => !x.ok && x.inputs?.length)) {
      process.stderr.write(`\n${p.name}: failing inputs (hex), seed ${seed}:\n${p.inputs!.join('\n')}\n`);
    }
    process.exitCode = properties.every((p) => p.ok) ? 0 : 1;
  } finally {
    if (worker) await worker.terminate().catch(() => 0);
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGTERM');
    await sleep(300);
    // The server's files (database, log, metrics) are kept when a property broke, or with --keep.
    if (process.exitCode === 0 && !a.keep) fs.rmSync(dataDir, { recursive: true, force: true });
    else log(`server log, database and metrics kept in ${dataDir}`);
  }
  process.exit(process.exitCode ?? 0);
}
