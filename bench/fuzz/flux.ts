// Deepgram Flux emulator fuzzing (/v2/listen, src/providers/emulators/
// flux.ts): it parses client input of its own (query parameters checked
// before the upgrade, Configure messages with nested thresholds and
// keyterms, ForceEndTurn/CloseStream, audio of any length). Sessions open
// with mutated queries and send mutated Configure messages, random text and
// random audio. Every input must be answered the way the reference says:
// a refused upgrade is a 4xx; a Configure gets ConfigureSuccess or
// ConfigureFailure while the stream lives; anything else unparsable gets an
// Error and a close; the emulator never sends binary and never stops
// serving.
import WebSocket from 'ws';
import type { Rand } from './random.js';

export interface FluxResult {
  /** HTTP status of a refused upgrade, the close code, or 'open' (closed by us), 'timeout'. */
  outcome: number | string;
  sent: number;
  /** What broke the protocol (a Configure unanswered, a binary frame, a 5xx), or null. */
  violation: string | null;
  last?: Buffer;
}

const VALID_QUERY = 'model=flux-general-en&encoding=mulaw&sample_rate=8000&eot_threshold=0.7&eager_eot_threshold=0.5&eot_timeout_ms=5000&keyterm=PIN';
const SETTLE_MS = 300;
/** A live stream's Configure answers may take longer than SETTLE_MS on a loaded machine: wait for them up to this. */
const ANSWER_MS = 3000;

function query(r: Rand): string {
  if (r.chance(0.4)) return VALID_QUERY;
  if (r.chance(0.5)) return r.mutate(Buffer.from(VALID_QUERY), 3).toString('latin1');
  const pick = (k: string, vs: unknown[]) => (r.chance(0.7) ? `&${k}=${encodeURIComponent(String(r.pick(vs)))}` : '');
  return `model=${r.pick(['flux-general-en', 'flux-general-multi', 'nova-3', r.text(20)])}` +
    pick('encoding', ['mulaw', 'alaw', 'linear16', 'linear32', 'opus', r.text(10)]) +
    pick('sample_rate', [8000, 16000, 44100, 0, -1, 1e309, 'NaN', r.text(8)]) +
    pick('eot_threshold', [0.5, 1, 0.49, 'x', '', r.float() * 2]) +
    pick('eager_eot_threshold', [0.3, 0.9, 0.95, r.float()]) +
    pick('eot_timeout_ms', [500, 60000, 499, 1.5, r.int(100000)]);
}

function configure(r: Rand): Buffer {
  const valid = { type: 'Configure', thresholds: { eot_threshold: 0.5 + r.float() * 0.5, eager_eot_threshold: 0.3 + r.float() * 0.2, eot_timeout_ms: r.range(500, 60000) }, keyterms: ['Acme', 'PIN'] };
  if (r.chance(0.3)) return Buffer.from(JSON.stringify(valid));
  if (r.chance(0.5)) return r.mutate(Buffer.from(JSON.stringify(valid)), 4);
  // Raw JSON, so __proto__ keys and out-of-range numbers reach the parser as sent.
  const junk = ['null', '1', '"x"', '[]', '{}', '[1,2]', '{"eot_threshold":"NaN"}', '{"__proto__":{"eot_threshold":2}}', '{"constructor":1}', '1e309', '-0', '{"eot_threshold":0.6,"eager_eot_threshold":0.7}', JSON.stringify(r.text(30))];
  const keyterms = r.chance(0.5) ? r.pick(junk) : JSON.stringify(Array.from({ length: r.size(200) }, () => r.text(10)));
  return Buffer.from(`{"type":"Configure","thresholds":${r.pick(junk)},"keyterms":${keyterms}}`);
}

/** One session: a mutated upgrade, then up to `messages` inputs. */
export async function fluxSession(r: Rand, deepgramUrl: string, messages: number): Promise<FluxResult> {
  // A '#' would start a fragment, which never goes on the wire (and the ws client refuses it): send it escaped.
  const url = `${deepgramUrl.replace(/^http/, 'ws')}/v2/listen?${query(r).replaceAll('#', '%23')}`;
  const ws = new WebSocket(url, { headers: { Authorization: r.chance(0.95) ? 'Token fuzz' : r.text(20) }, maxPayload: 1 << 20 });
  const opened = await new Promise<number | 'open' | 'timeout'>((resolve) => {
    const t = setTimeout(() => resolve('timeout'), 5000);
    ws.once('open', () => (clearTimeout(t), resolve('open')));
    ws.once('unexpected-response', (_q, res) => (clearTimeout(t), resolve(res.statusCode ?? 0)));
    ws.once('error', () => (clearTimeout(t), resolve(0)));
  });
  if (opened !== 'open') {
    ws.terminate();
    return { outcome: opened, sent: 0, violation: typeof opened === 'number' && opened >= 500 ? `upgrade answered ${opened}` : opened === 'timeout' ? 'upgrade unanswered' : null };
  }
  let configures = 0;
  let replies = 0;
  let fatal = false;
  let binary = false;
  let notJson = false;
  let closeCode: number | null = null;
  ws.on('message', (d, isBinary) => {
    if (isBinary) return void (binary = true);
    let type: unknown;
    try {
      type = (JSON.parse(d.toString()) as { type?: unknown }).type;
    } catch {
      notJson = true;
      return;
    }
    if (type === 'ConfigureSuccess' || type === 'ConfigureFailure') replies++;
    if (type === 'Error') fatal = true;
  });
  const closed = new Promise<void>((resolve) => ws.once('close', (code) => ((closeCode = code), resolve())));
  let sent = 0;
  let last: Buffer | undefined;
  for (let i = 0; i < messages && ws.readyState === ws.OPEN; i++) {
    const k = r.int(20);
    if (k < 9) {
      last = configure(r);
      configures++;
      ws.send(last.toString('utf8'));
    } else if (k < 15) {
      last = r.chance(0.5) ? r.bytes(r.size(4000)) : Buffer.alloc(640, r.chance(0.5) ? 0xff : 0x10);
      ws.send(last, { binary: true });
    } else if (k < 17) {
      last = Buffer.from(JSON.stringify({ type: k === 15 ? 'ForceEndTurn' : 'CloseStream' }));
      ws.send(last.toString());
    } else {
      last = Buffer.from(r.chance(0.5) ? JSON.stringify({ type: r.pick(['KeepAlive', 'Finalize', r.text(20)]) }) : r.text(200), 'utf8');
      ws.send(last.toString('utf8'));
    }
    sent++;
    if (i % 8 === 7) await new Promise((res) => setTimeout(res, 1));
  }
  await Promise.race([closed, new Promise((res) => setTimeout(res, SETTLE_MS))]);
  const answerBy = Date.now() + ANSWER_MS;
  while (closeCode === null && !fatal && replies < configures && Date.now() < answerBy) await Promise.race([closed, new Promise((res) => setTimeout(res, 20))]);
  const stillOpen = closeCode === null;
  if (stillOpen) ws.close();
  // A Configure sent before a fatal Error or CloseStream may go unanswered; on a live stream every one is answered.
  const violation = binary ? 'a binary frame from the emulator' : notJson ? 'a text frame that is not JSON' : stillOpen && !fatal && replies !== configures ? `${configures} Configure, ${replies} answers` : null;
  return { outcome: stillOpen ? 'open' : closeCode!, sent, violation, ...(last ? { last } : {}) };
}

/** After the run: a valid session still gets Connected (the emulator still serves). */
export async function fluxAlive(deepgramUrl: string): Promise<boolean> {
  const ws = new WebSocket(`${deepgramUrl.replace(/^http/, 'ws')}/v2/listen?${VALID_QUERY}`, { headers: { Authorization: 'Token fuzz' } });
  const ok = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 5000);
    ws.once('message', (d) => (clearTimeout(t), resolve(/"type":"Connected"/.test(d.toString()))));
    ws.once('error', () => (clearTimeout(t), resolve(false)));
  });
  ws.terminate();
  return ok;
}
