// Tools the agent can call: the built-ins (end_call, transfer_call, send_dtmf) and HTTP
// webhook tools declared in the agent's configuration (JSON-schema
// parameters, a timeout, an optional Authorization header).
//
// A webhook call is an outbound request whose URL a tenant wrote and whose
// body the model (so, the caller) shaped. It goes only where the address
// policy (./address-policy.ts) allows, to the address that was checked
// (the socket's lookup is pinned to it, so DNS cannot answer differently a
// second time), redirects are not followed, the response is capped at
// 64 KiB and the whole call, DNS and body included, is time-boxed.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ToolSpec } from '../providers/types.js';
import type { WebhookTool } from '../store/types.js';
import type { CallTransport } from '../call/transport.js';
import type { Playout } from '../call/playout.js';
import { dtmfProblem, dtmfTones, MAX_DTMF_DIGITS } from '../media/dtmf-tones.js';
import { countBadInput } from '../metrics/index.js';
import { guard, guarded } from '../guard.js';
import {
  AddressRefusedError, checkToolUrl, resolveChecked, systemLookup, DEFAULT_NETWORK_POLICY,
  type HostLookup, type NetworkPolicy, type ResolvedAddress,
} from './address-policy.js';

export const BUILTIN_TOOLS: ToolSpec[] = [
  {
    name: 'end_call',
    description: 'End the phone call after saying goodbye. Use when the caller is done or asks to hang up.',
    inputSchema: { type: 'object', properties: { reason: { type: 'string' } } },
  },
  {
    name: 'transfer_call',
    description: 'Transfer the caller to a human or another number.',
    inputSchema: { type: 'object', properties: { target: { type: 'string', description: 'E.164 number or SIP URI' } }, required: ['target'] },
  },
  {
    name: 'send_dtmf',
    description: 'Press keys on the phone keypad, e.g. to choose options in an automated phone menu.',
    inputSchema: {
      type: 'object',
      properties: { digits: { type: 'string', description: `keys 0-9, *, #, A-D; w waits half a second; at most ${MAX_DTMF_DIGITS}, e.g. "1w23#"` } },
      required: ['digits'],
    },
  },
];

/**
 * send_dtmf: RFC 4733 events when the transport can send them (a SIP call
 * that negotiated telephone-event), else in-band tones queued on the call's
 * playout (Twilio calls, SIP without telephone-event), after what the agent
 * is already saying. Returns once queued.
 */
export function sendDtmf(session: { transport: CallTransport; playout: Playout }, input: unknown): ToolOutcome {
  const digits = (input as { digits?: unknown } | null)?.digits;
  const problem = dtmfProblem(digits);
  if (problem) {
    countBadInput('tool', 'dtmf_invalid');
    return { ok: false, result: { error: problem } };
  }
  const keys = digits as string;
  if (session.transport.sendDigits?.(keys)) return { ok: true, result: { sent: keys, as: 'rfc4733' } };
  const id = session.playout.beginSegment('');
  session.playout.push(id, dtmfTones(keys));
  session.playout.endSegment(id);
  return { ok: true, result: { sent: keys, as: 'tones' } };
}

export function toolSpecs(webhooks: WebhookTool[] = []): ToolSpec[] {
  return [
    ...BUILTIN_TOOLS,
    ...webhooks.map((t) => ({ name: t.name, description: t.description, inputSchema: t.parameters })),
  ];
}

export interface ToolOutcome {
  ok: boolean;
  result: unknown;
}

/** Where webhook tools may connect (TOOLS_ALLOW_PRIVATE_NETWORKS), and how names resolve (tests inject it). */
export interface ToolNetwork extends NetworkPolicy {
  lookup?: HostLookup;
}

/** Larger responses are refused, not truncated: half a JSON document helps nobody. */
export const MAX_TOOL_RESPONSE_BYTES = 64 * 1024;
export const DEFAULT_TOOL_TIMEOUT_MS = 5000;

/** A webhook call that failed for a reason worth counting; `reason` is a stable metric token. */
class ToolCallError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'ToolCallError';
  }
}

/** Calls a webhook tool: POST the input as JSON, the response JSON (or text) is the result. */
export async function callWebhookTool(tool: WebhookTool, input: unknown, signal?: AbortSignal, network: ToolNetwork = DEFAULT_NETWORK_POLICY): Promise<ToolOutcome> {
  const timeoutMs = tool.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const ac = new AbortController();
  const timer = setTimeout(() => guarded('pipeline', () => ac.abort(new ToolCallError('timeout', `timed out after ${timeoutMs} ms`))), timeoutMs);
  const onAbort = () => ac.abort(new ToolCallError('cancelled', 'the call ended'));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const body = Buffer.from(JSON.stringify(input ?? {}));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'accept-encoding': 'identity',
      ...(tool.authHeader ? { authorization: tool.authHeader } : {}),
    };
    const res = await postChecked(tool.url, network, headers, body, ac.signal);
    let result: unknown = res.text;
    try {
      result = JSON.parse(res.text);
    } catch {
      /* plain text result */
    }
    return res.status >= 200 && res.status < 300 ? { ok: true, result } : { ok: false, result: { error: `HTTP ${res.status}`, body: result } };
  } catch (err) {
    if (err instanceof AddressRefusedError) {
      countBadInput('tool', err.reason);
      return { ok: false, result: { error: `refused: the tool URL ${err.message}` } };
    }
    if (err instanceof ToolCallError) {
      if (err.reason !== 'cancelled') countBadInput('tool', err.reason);
      return { ok: false, result: { error: err.message } };
    }
    return { ok: false, result: { error: (err as Error).message } };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * POSTs `body` to a URL the address policy allows, connected to the address
 * that was checked, under the rules above (no redirects, 64 KiB response,
 * `signal` bounds it all, DNS included). Webhook deliveries (src/webhooks)
 * go out through it too. Throws AddressRefusedError for a refused URL or
 * address, ToolCallError for a redirect or an oversized answer.
 */
export async function postChecked(rawUrl: string, network: ToolNetwork, headers: Record<string, string>, body: Buffer, signal: AbortSignal): Promise<{ status: number; text: string }> {
  const url = checkToolUrl(rawUrl, network);
  const to = await untilAborted(resolveChecked(url, network, network.lookup ?? systemLookup), signal);
  return post(url, to, { ...headers, 'content-length': String(body.length) }, body, signal);
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/** One POST to exactly `to`, with the URL's host in Host and TLS SNI/certificate check. */
function post(url: URL, to: ResolvedAddress, headers: Record<string, string>, body: Buffer, signal: AbortSignal): Promise<{ status: number; text: string }> {
  // The socket asks this for the host's address: always the checked one.
  const pinned = ((_host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address: to.address, family: to.family }]);
    else cb(null, to.address, to.family);
  }) as unknown as LookupFunction;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, v?: { status: number; text: string }) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(v!);
    };
    const onAbort = () => settle(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(
      { host, port: url.port || undefined, path: `${url.pathname}${url.search}`, method: 'POST', headers, lookup: pinned, agent: false },
      guard('pipeline', (res: http.IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          // Not followed: a redirect is where a POST to a tool becomes a GET of the metadata service.
          return settle(new ToolCallError('redirect', `HTTP ${status}: redirects are not followed`));
        }
        const declared = Number(res.headers['content-length']);
        if (declared > MAX_TOOL_RESPONSE_BYTES) return settle(tooLarge());
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_TOOL_RESPONSE_BYTES) return settle(tooLarge());
          chunks.push(c);
        });
        res.on('end', () => settle(null, { status, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => settle(e));
        res.on('close', () => settle(new Error('the tool closed the connection mid-response')));
      }, (err) => settle(err instanceof Error ? err : new Error(String(err)))),
    );
    req.on('error', (e) => settle(e));
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return onAbort();
    req.end(body);
  });
}

const tooLarge = () => new ToolCallError('body_too_large', `response larger than ${MAX_TOOL_RESPONSE_BYTES} bytes`);
