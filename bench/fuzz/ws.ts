// Twilio Media Streams fuzzing: upgrades with mutated or missing signatures,
// sockets that never present a valid call token, and real calls (signed
// webhook → single-use token → start) fed mutated start/media/mark/stop/dtmf
// messages, binary frames, frames over the size limit and bad base64. An
// input is answered when the server closes, refuses or ignores-and-counts it;
// what matters here is that nothing it does reaches another call.
import crypto from 'node:crypto';
import twilio from 'twilio';
import WebSocket from 'ws';
import type { Rand } from './random.js';
import { sendRaw, type HttpOutcome } from './http.js';

export interface WsTarget {
  host: string;
  port: number;
  publicUrl: string;
  twilioToken: string;
  /** A number of the fuzzer's own tenant (its calls are the fuzzer's, not the healthy ones). */
  number: string;
}

export interface WsResult {
  kind: 'raw_upgrade' | 'no_token' | 'call';
  sent: number;
  /** HTTP status of a refused upgrade, the close code of an opened socket, or 'dropped'/'timeout'. */
  outcome: number | string;
  /** The last message sent (for the report when something breaks). */
  last?: Buffer;
}

const WSS_PATH = '/twilio/media';

function wssUrl(t: WsTarget): string {
  return t.publicUrl.replace(/^http/, 'ws') + WSS_PATH;
}

/** A raw upgrade request, its headers and signature damaged. */
export async function rawUpgrade(r: Rand, t: WsTarget, deadline = Infinity): Promise<WsResult> {
  const sig = r.chance(0.5) ? twilio.getExpectedTwilioSignature(t.twilioToken, wssUrl(t), {}) : r.text(40);
  const key = r.chance(0.9) ? crypto.randomBytes(16).toString('base64') : r.text(30);
  let req: Buffer = Buffer.from([
    `GET ${WSS_PATH}${r.chance(0.2) ? '?' + r.text(20) : ''} HTTP/1.1`, `Host: ${t.host}:${t.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`, `Sec-WebSocket-Version: ${r.pick(['13', '8', '', '99999999999'])}`, `X-Twilio-Signature: ${sig}`,
    ...(r.chance(0.3) ? [`Sec-WebSocket-Extensions: ${r.pick(['permessage-deflate', 'permessage-deflate; client_max_window_bits=0', r.text(50)])}`] : []),
    ...(r.chance(0.2) ? [`Sec-WebSocket-Protocol: ${r.text(100)}`] : []), '', '',
  ].join('\r\n'));
  if (r.chance(0.5)) req = r.mutate(req, 4);
  const o: HttpOutcome = await sendRaw(t.host, t.port, req, deadline);
  return { kind: 'raw_upgrade', sent: 1, outcome: o.idle ? 'dropped_at_idle_timeout' : o.status, last: req };
}

function open(t: WsTarget, r: Rand): Promise<WebSocket> {
  const sig = twilio.getExpectedTwilioSignature(t.twilioToken, wssUrl(t), {});
  const ws = new WebSocket(`ws://${t.host}:${t.port}${WSS_PATH}`, { headers: { 'x-twilio-signature': sig }, perMessageDeflate: r.chance(0.1), maxPayload: 1 << 20 });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_q, res) => reject(new Error(`upgrade refused ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket, ms: number): Promise<number | string> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve('closed');
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve('still_open');
    }, ms);
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function deepJson(n: number): string {
  return '{"event":"media","media":' + '{"a":'.repeat(n) + '1' + '}'.repeat(n) + '}';
}

/** A message for a stream `streamSid`: valid-shaped, then damaged in structure or bytes. */
export function streamMessage(r: Rand, streamSid: string, callSid: string, token: string, seq: number): { data: Buffer; binary: boolean } {
  const ulaw = r.chance(0.7) ? r.bytes(160) : r.bytes(r.size(3000));
  const base: Record<string, unknown>[] = [
    { event: 'media', sequenceNumber: String(seq), streamSid, media: { track: 'inbound', chunk: String(seq), timestamp: String(seq * 20), payload: ulaw.toString('base64') } },
    { event: 'mark', sequenceNumber: String(seq), streamSid, mark: { name: r.pick(['m1', 'seg-1', r.text(30)]) } },
    { event: 'dtmf', sequenceNumber: String(seq), streamSid, dtmf: { track: 'inbound_track', digit: r.pick(['1', '#', '*', 'A', 'E', '11', '', '\u0000']) } },
    { event: 'stop', sequenceNumber: String(seq), streamSid, stop: { accountSid: 'AC' + '0'.repeat(32), callSid } },
    { event: 'start', sequenceNumber: '1', streamSid, start: { streamSid, callSid, accountSid: 'AC' + '0'.repeat(32), tracks: ['inbound'], customParameters: { token }, mediaFormat: { encoding: r.pick(['audio/x-mulaw', 'audio/l16']), sampleRate: r.pick([8000, 16000, '8000']), channels: 1 } } },
    { event: 'connected', protocol: 'Call', version: '1.0.0' },
  ];
  const m = r.chance(0.6) ? base[0]! : r.pick(base);
  switch (r.int(12)) {
    case 0: return { data: r.bytes(r.size(2000)), binary: true };
    case 1: return { data: Buffer.from(JSON.stringify({ ...m, media: { payload: r.pick(['@@@@', 'AAA', 'A===', '====', '////'.repeat(600), r.text(100), ''.padEnd(217, 'Q')]) } })), binary: false };
    case 2: return { data: Buffer.from(JSON.stringify({ ...m, streamSid: r.pick(['', 'MZ' + '0'.repeat(32), r.text(70)]) })), binary: false };
    case 3: return { data: Buffer.from(deepJson(r.pick([100, 2000, 20000]))), binary: false };
    case 4: return { data: Buffer.alloc(r.pick([65 * 1024, 200 * 1024]), 0x41), binary: r.chance(0.5) }; // over maxPayloadLength
    case 5: {
      const k = Object.keys(m);
      const o: Record<string, unknown> = { ...m, [r.pick(k)]: r.pick([null, 1e309, [], {}, 'x'.repeat(5000), -1, true]) };
      return { data: Buffer.from(JSON.stringify(o)), binary: false };
    }
    case 6: return { data: Buffer.from(`{"__proto__":{"event":"stop"},"constructor":{},${JSON.stringify(m).slice(1)}`), binary: false };
    case 7: case 8: return { data: r.mutate(Buffer.from(JSON.stringify(m)), 4), binary: false };
    case 9: return { data: Buffer.concat([Buffer.from('{"event":"media","streamSid":"'), r.bytes(40), Buffer.from('"}')]), binary: false };
    default: return { data: Buffer.from(JSON.stringify(m)), binary: false };
  }
}

/** A signed socket that never presents a valid token: start messages and stream messages, damaged. */
export async function noTokenSession(r: Rand, t: WsTarget): Promise<WsResult> {
  let ws: WebSocket;
  try {
    ws = await open(t, r);
  } catch (err) {
    return { kind: 'no_token', sent: 0, outcome: `refused: ${(err as Error).message}` };
  }
  ws.on('error', () => {});
  const streamSid = 'MZ' + crypto.randomBytes(16).toString('hex');
  const callSid = 'CA' + crypto.randomBytes(16).toString('hex');
  let sent = 0;
  let last: Buffer | undefined;
  for (let i = r.range(1, 20); i > 0 && ws.readyState === WebSocket.OPEN; i--) {
    const m = streamMessage(r, streamSid, callSid, r.chance(0.5) ? r.text(80) : 'v1.' + crypto.randomBytes(40).toString('base64url'), sent + 1);
    last = m.data;
    ws.send(m.data, { binary: m.binary });
    sent++;
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  return { kind: 'no_token', sent, outcome: await closed(ws, 3000), last };
}

/** A real call on the fuzzer's own number, then a burst of damaged messages among valid frames, then stop. */
export async function callSession(r: Rand, t: WsTarget, messages: number): Promise<WsResult> {
  const callSid = 'CA' + crypto.randomBytes(16).toString('hex');
  const streamSid = 'MZ' + crypto.randomBytes(16).toString('hex');
  const params: Record<string, string> = { CallSid: callSid, AccountSid: 'AC' + '0'.repeat(32), From: '+15005550006', To: t.number, CallStatus: 'ringing', Direction: 'inbound', ApiVersion: '2010-04-01' };
  const sig = twilio.getExpectedTwilioSignature(t.twilioToken, t.publicUrl + '/twilio/voice', params);
  const res = await fetch(`http://${t.host}:${t.port}/twilio/voice`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': sig }, body: new URLSearchParams(params).toString() });
  const twiml = await res.text();
  const token = /<Parameter name="token" value="([^"]+)"/.exec(twiml)?.[1];
  if (!token) return { kind: 'call', sent: 0, outcome: `no call: ${res.status}` };
  let ws: WebSocket;
  try {
    ws = await open(t, r);
  } catch (err) {
    return { kind: 'call', sent: 0, outcome: `refused: ${(err as Error).message}` };
  }
  ws.on('error', () => {});
  ws.on('message', () => {});
  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  ws.send(JSON.stringify({ event: 'start', sequenceNumber: '1', streamSid, start: { accountSid: 'AC' + '0'.repeat(32), streamSid, callSid, tracks: ['inbound'], customParameters: { token }, mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } }));
  let sent = 2;
  let last: Buffer | undefined;
  const silence = Buffer.alloc(160, 0xff).toString('base64');
  for (let i = 0; i < messages && ws.readyState === WebSocket.OPEN; i++) {
    // A valid frame every 20 ms, with damaged messages between them (under the server's per-second abuse limit mostly).
    ws.send(`{"event":"media","sequenceNumber":"${sent}","streamSid":"${streamSid}","media":{"track":"inbound","chunk":"${sent}","timestamp":"${sent * 20}","payload":"${silence}"}}`);
    sent++;
    if (r.chance(0.5)) {
      const m = streamMessage(r, streamSid, callSid, token, sent);
      last = m.data;
      ws.send(m.data, { binary: m.binary });
      sent++;
    }
    await new Promise((res2) => setTimeout(res2, 20));
  }
  if (ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ event: 'stop', sequenceNumber: String(sent++), streamSid, stop: { accountSid: 'AC' + '0'.repeat(32), callSid } }));
    setTimeout(() => ws.close(1000), 200);
  }
  return { kind: 'call', sent, outcome: await closed(ws, 5000), last };
}
