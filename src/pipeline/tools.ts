// Tools the agent can call: the built-ins (end_call, transfer_call) and HTTP
// webhook tools declared in the agent's configuration (JSON-schema
// parameters, a timeout, an optional Authorization header).
import type { ToolSpec } from '../providers/types.js';
import type { WebhookTool } from '../store/types.js';

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
];

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

/** Calls a webhook tool: POST the input as JSON, the response JSON (or text) is the result. */
export async function callWebhookTool(tool: WebhookTool, input: unknown, signal?: AbortSignal): Promise<ToolOutcome> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), tool.timeoutMs ?? 5000);
  const onAbort = () => ac.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const res = await fetch(tool.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(tool.authHeader ? { authorization: tool.authHeader } : {}) },
      body: JSON.stringify(input ?? {}),
      signal: ac.signal,
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* plain text result */
    }
    return res.ok ? { ok: true, result: body } : { ok: false, result: { error: `HTTP ${res.status}`, body } };
  } catch (err) {
    return { ok: false, result: { error: ac.signal.aborted ? `timed out after ${tool.timeoutMs ?? 5000} ms` : (err as Error).message } };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
