// Amazon Bedrock ConverseStream through @aws-sdk/client-bedrock-runtime, on a
// keep-alive HTTP/1.1 handler so turns reuse one connection (the SDK default,
// HTTP/2, opens a new connection per call). A fallback chain of models is
// tried in order when a model throttles, errors, or misses the
// time-to-first-token deadline; once a token has arrived there is no
// fallback. The caller's AbortSignal cancels the HTTP request itself.
import { BedrockRuntimeClient, ConverseStreamCommand, type ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import http from 'node:http';
import https from 'node:https';
import { checkpoint } from '../../checkpoint.js';
import { log } from '../../log.js';
import { providerErrorKind, providerErrors } from '../../metrics/index.js';
import type { LanguageModel, LlmEvent, LlmRequest } from '../types.js';

export interface BedrockConfig {
  region: string;
  endpoint?: string;
  /** Static credentials (tests, emulator); otherwise the AWS default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Models tried in order: the request's model (or the first) then the rest. */
  models: string[];
  /** Give up on a model that has not produced a first token by then. */
  ttftDeadlineMs: number;
}

const RETRYABLE = new Set(['ThrottlingException', 'ModelNotReadyException', 'ServiceUnavailableException', 'InternalServerException', 'ModelTimeoutException', 'ModelErrorException', 'TTFTDeadline']);

export class BedrockLlm implements LanguageModel {
  readonly name = 'bedrock';
  readonly client: BedrockRuntimeClient;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly cfg: BedrockConfig) {
    const agentOpts = { keepAlive: true, maxSockets: 256 };
    this.httpAgent = new http.Agent(agentOpts);
    this.httpsAgent = new https.Agent(agentOpts);
    this.client = new BedrockRuntimeClient({
      region: cfg.region,
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      ...(cfg.credentials ? { credentials: cfg.credentials } : {}),
      // Our fallback chain is the retry policy: an SDK retry would silently add seconds to TTFT.
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 2000,
        requestTimeout: 30_000,
        httpAgent: this.httpAgent,
        httpsAgent: this.httpsAgent,
      }),
    });
  }

  /** The warming in flight, shared by every call that asks meanwhile. */
  private warming: Promise<void> | null = null;

  /**
   * Makes sure a keep-alive connection to the endpoint is open (and the
   * credentials resolved) before the first turn needs it, so a reply does
   * not pay a TCP/TLS handshake. Never invokes a model: a connection is
   * opened with one unauthenticated GET of the endpoint's root (answered
   * 4xx at no cost and outside any request quota) through the same agent the
   * SDK uses, so the socket stays in its keep-alive pool. Called when a call
   * starts; does nothing while the agent already holds a connection, so it
   * costs at most one request per connection, not one per call. Best effort.
   */
  warm(): Promise<void> {
    if (this.warming) return this.warming;
    if (this.hasConnection()) return Promise.resolve();
    this.warming = this.openConnection().finally(() => {
      this.warming = null;
    });
    return this.warming;
  }

  private hasConnection(): boolean {
    for (const agent of [this.httpAgent, this.httpsAgent]) {
      for (const list of Object.values(agent.freeSockets)) if (list?.length) return true;
      for (const list of Object.values(agent.sockets)) if (list?.length) return true;
    }
    return false;
  }

  private async openConnection(): Promise<void> {
    try {
      await this.client.config.credentials();
      const endpoint = this.cfg.endpoint ?? `https://bedrock-runtime.${this.cfg.region}.amazonaws.com`;
      const u = new URL('/', endpoint);
      const tls = u.protocol === 'https:';
      await new Promise<void>((resolve) => {
        const req = (tls ? https : http).request(u, { method: 'GET', agent: tls ? this.httpsAgent : this.httpAgent, timeout: 2000 }, (res) => {
          res.on('end', () => resolve());
          res.on('error', () => resolve());
          res.resume();
        });
        req.on('error', () => resolve());
        req.on('timeout', () => {
          req.destroy();
          resolve();
        });
        req.end();
      });
    } catch {
      /* warming is best effort */
    }
  }

  private body(req: LlmRequest, model: string): ConverseStreamCommandInput {
    return {
      modelId: model,
      system: req.system ? [{ text: req.system }] : undefined,
      messages: req.messages as ConverseStreamCommandInput['messages'],
      inferenceConfig: { maxTokens: req.maxTokens ?? 400, temperature: req.temperature ?? 0.3 },
      ...(req.tools?.length
        ? { toolConfig: { tools: req.tools.map((t) => ({ toolSpec: { name: t.name, description: t.description, inputSchema: { json: t.inputSchema as never } } })) } }
        : {}),
    };
  }

  async *stream(req: LlmRequest, signal?: AbortSignal): AsyncIterable<LlmEvent> {
    const chain = [...new Set([req.model ?? this.cfg.models[0], ...this.cfg.models])];
    let lastErr: unknown;
    for (let attempt = 0; attempt < chain.length; attempt++) {
      const model = chain[attempt];
      if (signal?.aborted) return;
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let deadline: NodeJS.Timeout | undefined;
      let firstToken = false;
      let missedDeadline = false;
      // Bedrock reports usage only at the end of a stream; a reply cut after
      // the model began answering (a barge-in) is billed all the same, so its
      // tokens are estimated from the characters sent and received.
      let reported = false;
      let received = 0;
      let finished = false;
      const body = this.body(req, model);
      try {
        deadline = setTimeout(() => {
          missedDeadline = true;
          ac.abort();
        }, this.cfg.ttftDeadlineMs);
        const resp = await this.client.send(new ConverseStreamCommand(body), { abortSignal: ac.signal });
        const tools = new Map<number, { toolUseId: string; name: string; input: string }>();
        for await (const ev of resp.stream ?? []) {
          checkpoint();
          if (!firstToken && (ev.contentBlockDelta || ev.contentBlockStart)) {
            firstToken = true;
            clearTimeout(deadline);
          }
          if (ev.contentBlockDelta?.delta?.text !== undefined) {
            received += ev.contentBlockDelta.delta.text.length;
            yield { type: 'text', text: ev.contentBlockDelta.delta.text };
          } else if (ev.contentBlockStart?.start?.toolUse) {
            const t = ev.contentBlockStart.start.toolUse;
            tools.set(ev.contentBlockStart.contentBlockIndex ?? 0, { toolUseId: t.toolUseId ?? '', name: t.name ?? '', input: '' });
          } else if (ev.contentBlockDelta?.delta?.toolUse) {
            const t = tools.get(ev.contentBlockDelta.contentBlockIndex ?? 0);
            if (t) t.input += ev.contentBlockDelta.delta.toolUse.input ?? '';
            received += ev.contentBlockDelta.delta.toolUse.input?.length ?? 0;
          } else if (ev.contentBlockStop) {
            const t = tools.get(ev.contentBlockStop.contentBlockIndex ?? 0);
            if (t) {
              let input: unknown = {};
              try {
                input = t.input ? JSON.parse(t.input) : {};
              } catch {
                input = { raw: t.input };
              }
              yield { type: 'toolUse', toolUseId: t.toolUseId, name: t.name, input };
            }
          } else if (ev.messageStop) {
            yield { type: 'stop', reason: ev.messageStop.stopReason ?? 'end_turn' };
          } else if (ev.metadata) {
            reported = true;
            req.usage?.llmTokens(model, ev.metadata.usage?.inputTokens ?? 0, ev.metadata.usage?.outputTokens ?? 0);
            yield { type: 'metadata', model, inputTokens: ev.metadata.usage?.inputTokens, outputTokens: ev.metadata.usage?.outputTokens, attempts: attempt + 1 };
          }
        }
        finished = true;
        return;
      } catch (err) {
        if (signal?.aborted) return; // barge-in: not an error
        const name = missedDeadline ? 'TTFTDeadline' : ((err as { name?: string }).name ?? 'Error');
        providerErrors.inc({ provider: 'llm', kind: providerErrorKind(name) });
        lastErr = missedDeadline ? new Error(`${model}: no first token within ${this.cfg.ttftDeadlineMs} ms`) : err;
        // After the first token the reply is already being spoken: no silent switch.
        if (firstToken || (!RETRYABLE.has(name) && !missedDeadline)) throw lastErr;
        log.warn('llm model failed; falling back', { model, reason: name, next: chain[attempt + 1] ?? null });
      } finally {
        clearTimeout(deadline);
        signal?.removeEventListener('abort', onAbort);
        // A consumer that stopped reading without aborting (break) must not leave the response streaming.
        if (!finished) ac.abort();
        if (firstToken && !reported) req.usage?.llmTokens(model, estimateTokens(body), Math.ceil(received / CHARS_PER_TOKEN), true);
      }
    }
    throw lastErr ?? new Error('no model available');
  }
}

/** The rule of thumb for English text with Claude's tokenizer (an estimate: the service's own count is used whenever it reports one). */
const CHARS_PER_TOKEN = 4;

/** A request's input tokens estimated from the characters of every string in it (system, messages, tool specs), keys left out. */
export function estimateTokens(body: ConverseStreamCommandInput): number {
  let chars = 0;
  const walk = (v: unknown, depth: number): void => {
    if (typeof v === 'string') chars += v.length;
    else if (depth < 32 && v !== null && typeof v === 'object') for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, depth + 1);
  };
  walk([body.system, body.messages, body.toolConfig], 0);
  return Math.ceil(chars / CHARS_PER_TOKEN);
}
