// In-process checks of the SIP header and DNS answer handling that does not
// sit behind a socket the fuzzer can reach (pure functions, as bench/fuzz/s3.ts):
// session-timer headers (sip/session-timer.ts) as a request or a 2xx carries
// them, and SRV answers for trunk hosts (src/outbound/srv.ts) as anyone's DNS
// may give them. A violation is an exception other than the documented one,
// or a result outside the documented bounds.
import type dns from 'node:dns';
import { answerTimer, MAX_SE_S, MIN_SE_S, termsFromAnswer } from '../../sip/session-timer.js';
import { sipHops } from '../../src/outbound/srv.js';
import type { Rand } from './random.js';

const NUMBERS = ['0', '1', '89', '90', '1800', '86400', '86401', '4294967296', '99999999999', '-1', '1e3', '0x10', ' 90 ', ''];

function timerHeader(r: Rand): string {
  if (r.chance(0.3)) return r.text(200);
  const params = Array.from({ length: r.int(4) }, () => r.pick([';refresher=uac', ';refresher=uas', ';refresher=', ';refresher=x', `;${r.text(10)}`, ';;', `;refresher=${r.token()}`]));
  return r.pick(NUMBERS) + params.join('');
}

export function checkSipParsers(r: Rand, cases: number): Promise<{ cases: number; violations: string[] }> {
  const violations: string[] = [];
  const note = (what: string, input: unknown, msg: string) => violations.push(`${what}: ${msg} on ${JSON.stringify(input).slice(0, 300)}`);
  for (let i = 0; i < cases && violations.length < 10; i++) {
    const h: Record<string, string> = {};
    if (r.chance(0.8)) h[r.chance(0.8) ? 'session-expires' : 'x'] = timerHeader(r);
    if (r.chance(0.4)) h['min-se'] = r.chance(0.7) ? r.pick(NUMBERS) : r.text(40);
    if (r.chance(0.5)) h[r.pick(['supported', 'k', 'require'])] = r.pick(['timer', '100rel, timer', 'TIMER', ' timer ,', r.text(30)]);
    const msg = { getHeader: (n: string) => h[n.toLowerCase()] };
    const current = r.chance(0.5) ? { intervalS: r.range(90, 86400), weRefresh: r.chance(0.5) } : null;
    try {
      const a = answerTimer(msg, current);
      if (a.status === 200 && a.terms && (a.terms.intervalS < MIN_SE_S || !Number.isSafeInteger(a.terms.intervalS))) note('answerTimer', h, `interval ${a.terms.intervalS}`);
      if (a.status === 200 && a.terms && a.terms.intervalS > MAX_SE_S && a.terms.intervalS > Number(h['min-se'] ?? 0)) note('answerTimer', h, `interval ${a.terms.intervalS} above the cap`);
      if (a.headers.some((x) => /[\r\n]/.test(x))) note('answerTimer', h, 'a header with a line break');
      const t = termsFromAnswer(msg);
      if (t && (t.intervalS < MIN_SE_S || t.intervalS > MAX_SE_S)) note('termsFromAnswer', h, `interval ${t.intervalS}`);
    } catch (err) {
      note('session timer', h, `${(err as Error).name}: ${(err as Error).message}`);
    }
  }
  // SRV answers: names and ports of any shape, any number of records.
  const srvCases = Array.from({ length: Math.min(cases, 2000) }, () => Array.from({ length: r.size(40) }, (): dns.SrvRecord => ({
    priority: r.pick([0, 1, 10, 65535, -1, 1.5, NaN]), weight: r.pick([0, 1, 100, 65535, -5, Infinity]),
    port: r.pick([0, 1, 5060, 65535, 65536, -1, 5060.5]), name: r.pick(['edge.example', '.', '', 'a..b', 'x'.repeat(300), r.text(30), 'ok.example.']),
  })));
  return (async () => {
    for (const records of srvCases) {
      if (violations.length >= 10) break;
      try {
        const hops = await sipHops('carrier.example', 5060, false, 'udp', async () => records);
        if (hops.length < 1 || hops.length > 8) note('sipHops', records, `${hops.length} hops`);
        for (const hop of hops) if (!(hop.port >= 1 && hop.port <= 65535 && Number.isInteger(hop.port)) || !hop.host || /\s/.test(hop.host)) note('sipHops', records, `hop ${JSON.stringify(hop)}`);
      } catch (err) {
        if (!/offers no SIP/.test((err as Error).message)) note('sipHops', records, `${(err as Error).name}: ${(err as Error).message}`);
      }
    }
    return { cases: cases + srvCases.length, violations };
  })();
}
