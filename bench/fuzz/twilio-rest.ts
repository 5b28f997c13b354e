// Twilio REST emulator fuzzing (src/providers/emulators/twilio-rest.ts): it
// parses client input of its own (Basic auth, form bodies with repeated
// keys, TwiML, the Calls paths). Requests are the real shape with mutated
// fields, mutated raw bytes, hostile TwiML, broken or foreign credentials,
// random paths and oversized bodies. Every one must be answered as the
// reference says: a 2xx with a call (`sid` CA…), or an error body of exactly
// {code, message, more_info, status} with `status` the HTTP status (never
// `type`/`title`, which the SDK would read as an RFC 9457 problem), and no
// 5xx, no hang. Far ends are busy, failed or unanswered numbers only (no
// Media Stream is opened to anyone), and callbacks go back to the emulator.
import http from 'node:http';
import type { Rand } from './random.js';

export interface TwilioRestTarget {
  url: string;
  accountSid: string;
  authToken: string;
}

export interface TwilioRestResult {
  status: number | 'timeout' | 'error';
  violation: string | null;
  last: Buffer;
}

/** The account the fuzzed emulator accepts (its auth token is the fuzz run's Twilio token). */
export const FUZZ_ACCOUNT_SID = 'AC' + 'f'.repeat(32);

const NO_MEDIA = ['+14155550486', '+14155550500', '+14155550408'];
const HANG_MS = 10_000;

function twiml(r: Rand): string {
  const valid = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say><Dial callerId="+14155550100" timeout="5"><Number>+14155550199</Number></Dial><Hangup/></Response>';
  if (r.chance(0.4)) return valid;
  if (r.chance(0.5)) return r.mutate(Buffer.from(valid), 6).toString('latin1');
  return r.pick([
    '', '<Response>', '</Response>', '<Response/><Response/>', '<Response><Pause length="-1e309"/></Response>', '<Response><Pause length="999999"/></Response>',
    `<Response>${'<Dial>'.repeat(50)}</Response>`, `<Response>${'<Say>x</Say>'.repeat(600)}</Response>`, '<Response><Say>&#0;&#x110000;&bogus;</Say></Response>',
    '<!DOCTYPE x [<!ENTITY a "aaaa">]><Response>&a;</Response>', 'x'.repeat(5000), r.text(200),
  ]);
}

function createBody(r: Rand, t: TwilioRestTarget): string {
  const p = new URLSearchParams();
  if (r.chance(0.9)) p.append('To', r.chance(0.8) ? r.pick(NO_MEDIA) : r.pick(['', '+1', 'client:x', 'sip:a@b', r.text(20)]));
  if (r.chance(0.9)) p.append('From', r.chance(0.8) ? '+14155550100' : r.text(16));
  if (r.chance(0.8)) p.append('Twiml', twiml(r));
  else if (r.chance(0.5)) p.append('Url', `${t.url}/twiml`);
  if (r.chance(0.5)) p.append('StatusCallback', `${t.url}/callback`);
  for (const e of ['initiated', 'ringing', 'answered', 'completed', r.text(8)]) if (r.chance(0.4)) p.append('StatusCallbackEvent', e);
  if (r.chance(0.3)) p.append('MachineDetection', r.pick(['Enable', 'DetectMessageEnd', r.text(8)]));
  if (r.chance(0.3)) p.append('AsyncAmd', r.pick(['true', 'false', r.text(4)]));
  if (r.chance(0.2)) p.append('AsyncAmdStatusCallback', `${t.url}/amd`);
  if (r.chance(0.3)) p.append('Timeout', String(r.pick([1, 60, 600, -1, 1e309, 'NaN', r.text(5)])));
  for (let i = r.size(5); i > 0; i--) p.append(r.text(12), r.text(30));
  return p.toString();
}

function auth(r: Rand, t: TwilioRestTarget): string | undefined {
  if (r.chance(0.75)) return 'Basic ' + Buffer.from(`${t.accountSid}:${t.authToken}`).toString('base64');
  return r.pick([
    undefined, 'Basic', 'Basic !!!', 'Bearer x', 'Basic ' + Buffer.from(`${t.accountSid}:wrong`).toString('base64'),
    'Basic ' + Buffer.from(`SK${'0'.repeat(32)}:x`).toString('base64'), 'Basic ' + Buffer.from(t.accountSid).toString('base64'),
    'Basic ' + Buffer.from(`${t.accountSid}:${t.authToken}:extra`).toString('base64'), 'Basic ' + r.bytes(40).toString('base64'),
  ]);
}

/** Percent-escapes random text; a lone surrogate (which encodeURIComponent refuses) becomes U+FFFD first. */
const escapeText = (s: string) => encodeURIComponent(s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));

/** One request; `sids` collects created calls for later updates. */
export async function twilioRestCase(r: Rand, t: TwilioRestTarget, sids: string[]): Promise<TwilioRestResult> {
  // Node's client sends only escaped paths; the server side of a raw one is Node's parser, not the emulator.
  const calls = `/2010-04-01/Accounts/${r.chance(0.9) ? t.accountSid : r.pick(['AC' + '1'.repeat(32), escapeText(r.text(10)), '..'])}/Calls`;
  const sid = sids.length && r.chance(0.7) ? r.pick(sids) : 'CA' + r.bytes(16).toString('hex');
  const kind = r.int(10);
  let method = 'POST';
  let path = `${calls}.json`;
  let body: Buffer = Buffer.from(createBody(r, t));
  if (kind === 1) body = r.mutate(body, 8);
  if (kind === 2) path = `${calls}/${sid}.json`, body = Buffer.from(new URLSearchParams(r.chance(0.5) ? { Status: r.pick(['completed', 'canceled', 'busy', r.text(6)]) } : { Twiml: twiml(r) }).toString());
  if (kind === 3) method = 'GET', path = `${calls}/${sid}.json`, body = Buffer.alloc(0);
  if (kind === 4) path = r.pick(['/', '/2010-04-01/Accounts', `${calls}/${sid}/Recordings.json`, `${calls}.xml`, `/${escapeText(r.text(40))}`, `${calls}/%00.json`]);
  if (kind === 5) method = r.pick(['DELETE', 'PUT', 'PATCH', 'GET']);
  if (kind === 6) body = Buffer.alloc(70 * 1024, 'a');
  const res = await send(t.url, method, path, auth(r, t), body);
  const last = Buffer.from(`${method} ${path}\n${body.subarray(0, 4096).toString('latin1')}`);
  if (res.status === 'timeout' || res.status === 'error') return { status: res.status, violation: res.status === 'timeout' ? 'request unanswered' : null, last };
  const violation = check(res.status, res.body);
  if (res.status === 201 && !violation) {
    const s = (JSON.parse(res.body) as { sid: string }).sid;
    if (sids.length < 200) sids.push(s);
  }
  return { status: res.status, violation, last };
}

/** What the reference says every answer must look like. */
function check(status: number, body: string): string | null {
  if (status >= 500) return `answered ${status}`;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return `answered ${status} with a body that is not JSON`;
  }
  if (status < 300) return typeof j.sid === 'string' && /^CA[0-9a-f]{32}$/.test(j.sid) ? null : `answered ${status} without a call sid`;
  const keys = Object.keys(j).sort().join(',');
  if (keys !== 'code,message,more_info,status') return `error body keys ${keys} (want code,message,more_info,status)`;
  if (j.status !== status || typeof j.code !== 'number' || typeof j.message !== 'string') return `error body ${body.slice(0, 200)} for HTTP ${status}`;
  return null;
}

function send(base: string, method: string, path: string, authorization: string | undefined, body: Buffer): Promise<{ status: number | 'timeout' | 'error'; body: string }> {
  return new Promise((resolve) => {
    const u = new URL(base);
    const req = http.request({
      host: u.hostname, port: u.port, method, path,
      headers: { ...(authorization !== undefined ? { authorization } : {}), 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (clearTimeout(timer), resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() })));
      res.on('error', () => (clearTimeout(timer), resolve({ status: 'error', body: '' })));
    });
    const timer = setTimeout(() => (req.destroy(), resolve({ status: 'timeout', body: '' })), HANG_MS);
    req.on('error', () => (clearTimeout(timer), resolve({ status: 'error', body: '' })));
    req.end(body);
  });
}

/** The emulator still serves: an authenticated fetch of an unknown call answers 404 in its error shape. */
export async function twilioRestAlive(t: TwilioRestTarget): Promise<boolean> {
  const res = await send(t.url, 'GET', `/2010-04-01/Accounts/${t.accountSid}/Calls/CA${'0'.repeat(32)}.json`, 'Basic ' + Buffer.from(`${t.accountSid}:${t.authToken}`).toString('base64'), Buffer.alloc(0));
  return res.status === 404 && check(404, res.body) === null;
}
