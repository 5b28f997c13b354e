// A local Bedrock runtime serving ConverseStream over HTTP/1.1 and cleartext
// HTTP/2 (prior knowledge, as the SDK's default handler speaks it) on one
// port, with event-stream frames carrying both CRCs. Replies are
// deterministic; when tools are offered and the user asks for one by name
// (or says "use a tool"), it answers with a toolUse, then with text once the
// toolResult comes back.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import crypto from 'node:crypto';
import { eventFrame, exceptionFrame } from './eventstream.js';
import { jittered, seededRandom } from './profiles.js';
import { converseResponse, memoryEcho } from './bedrock-converse.js';

export interface BedrockEmulatorOptions {
  /** Time to the first token. */
  ttftMs: number;
  tokensPerSecond: number;
  /** Idle keep-alive connections are closed after this long (like the real endpoint). Default 60 s. */
  keepAliveTimeoutMs?: number;
  /** Relative spread per request of ttftMs and tokensPerSecond (EMULATOR_PROFILE, see profiles.ts); absent: constant. */
  jitter?: { ttft?: number; tokensPerSecond?: number };
  /** Seed of the jitter's generator (default 1). */
  seed?: number;
}

export const DEFAULT_BEDROCK_EMULATOR: BedrockEmulatorOptions = { ttftMs: 480, tokensPerSecond: 80 };

export interface BedrockFaults {
  /** Answer the next N requests with 429 ThrottlingException. */
  throttleNext?: number;
  /** Always throttle these model ids. */
  throttleModels?: string[];
  /** Add this much to the next request's time to first token. */
  slowFirstByteMs?: number;
  /** Send a frame with a bad message CRC in the next stream. */
  malformedFrame?: boolean;
  /** Cut the connection mid-stream on the next request. */
  dropMidStream?: boolean;
}

type Block = { text?: string; toolUse?: { toolUseId: string; name: string; input: unknown }; toolResult?: { toolUseId: string; content: { text?: string; json?: unknown }[] } };
interface ConverseBody {
  messages?: { role: string; content: Block[] }[];
  system?: { text?: string }[];
  toolConfig?: { tools?: { toolSpec?: { name: string; description?: string } }[] };
  inferenceConfig?: { maxTokens?: number };
}

interface Req {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  on(ev: 'data', fn: (c: Buffer) => void): unknown;
  on(ev: 'end', fn: () => void): unknown;
}
interface Res {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Buffer): unknown;
  end(body?: string): unknown;
  on(ev: 'close', fn: () => void): unknown;
  destroyed?: boolean;
  writableEnded: boolean;
  destroy?(): void;
  stream?: { close(code?: number): void };
}

export class BedrockEmulator {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly random: () => number;
  faults: BedrockFaults = {};
  /** `requests`: ConverseStream invocations; `otherRequests`: anything else (e.g. a connection warm-up's GET). */
  readonly stats = { requests: 0, converseRequests: 0, otherRequests: 0, streamsCompleted: 0, streamsAborted: 0, modelsSeen: [] as string[], connections: 0 };
  /** Token usage reported to clients, by model (only responses whose usage was actually sent: an aborted stream never gets to its metadata). */
  readonly usageSent = new Map<string, { inputTokens: number; outputTokens: number; responses: number }>();

  private reportUsage(model: string, inputTokens: number, outputTokens: number): void {
    const u = this.usageSent.get(model) ?? { inputTokens: 0, outputTokens: 0, responses: 0 };
    u.inputTokens += inputTokens;
    u.outputTokens += outputTokens;
    u.responses++;
    this.usageSent.set(model, u);
  }

  constructor(readonly opts: BedrockEmulatorOptions = DEFAULT_BEDROCK_EMULATOR) {
    this.random = seededRandom(opts.seed ?? 1);
    const handler = (req: Req, res: Res) => this.handle(req, res);
    this.h1 = http.createServer(handler as never);
    // Like the real endpoint, keep idle connections for a while (Node's default is 5 s).
    this.h1.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 60_000;
    this.h2 = http2.createServer(handler as never);
    // One port: sniff the HTTP/2 connection preface, else HTTP/1.1.
    this.tcp = net.createServer((socket) => {
      this.stats.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.once('readable', () => {
        const head = socket.read(3) as Buffer | null;
        if (!head) return socket.destroy();
        socket.unshift(head);
        if (head.toString('latin1') === 'PRI') this.h2.emit('connection', socket);
        else this.h1.emit('connection', socket);
      });
    });
  }

  async listenOn(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.tcp.listen(port, host, resolve));
    return `http://${host}:${(this.tcp.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  private error(res: Res, status: number, type: string, message: string): void {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': crypto.randomUUID() });
    res.end(JSON.stringify({ message }));
  }

  private handle(req: Req, res: Res): void {
    const m = /^\/model\/([^/]+)\/(converse-stream|converse)$/.exec((req.url ?? '').split('?')[0]);
    if (req.method !== 'POST' || !m) {
      this.stats.otherRequests++;
      return this.error(res, 404, 'ResourceNotFoundException', 'Not found');
    }
    const auth = String(req.headers['authorization'] ?? '');
    if (!/^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/[\w-]+\/bedrock\/aws4_request/.test(auth) && !/^Bearer \S+/.test(auth)) {
      return this.error(res, 403, 'AccessDeniedException', 'Missing or malformed authorization');
    }
    const modelId = decodeURIComponent(m[1]);
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      // Converse (post-call analysis, bedrock-converse.ts) is counted apart from the voice path's streams.
      const converse = m[2] === 'converse';
      if (converse) this.stats.converseRequests++;
      else this.stats.requests++;
      this.stats.modelsSeen.push(modelId);
      const raw = Buffer.concat(chunks);
      const sha = req.headers['x-amz-content-sha256'];
      if (typeof sha === 'string' && sha !== 'UNSIGNED-PAYLOAD' && sha !== crypto.createHash('sha256').update(raw).digest('hex')) {
        return this.error(res, 400, 'ValidationException', 'x-amz-content-sha256 does not match the body');
      }
      let body: ConverseBody;
      try {
        body = JSON.parse(raw.toString()) as ConverseBody;
      } catch {
        return this.error(res, 400, 'ValidationException', 'Malformed input request');
      }
      const f = this.faults;
      if ((f.throttleNext ?? 0) > 0 || f.throttleModels?.includes(modelId)) {
        if ((f.throttleNext ?? 0) > 0) f.throttleNext!--;
        return this.error(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
      }
      if (!body.messages?.length || body.messages[0].role !== 'user') {
        return this.error(res, 400, 'ValidationException', 'A conversation must start with a user message.');
      }
      if (converse) {
        const answer = converseResponse(body, () => reply(body));
        const usage = answer.usage as { inputTokens: number; outputTokens: number };
        this.reportUsage(modelId, usage.inputTokens, usage.outputTokens);
        res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': crypto.randomUUID() });
        return res.end(JSON.stringify(answer));
      }
      this.stream(body, res, modelId, inputTokens(body));
    });
  }

  /** One request's time to first token and gap between tokens, drawn within the profile's bounds. */
  drawTiming(): { ttftMs: number; tokenGapMs: number } {
    const j = this.opts.jitter ?? {};
    return {
      ttftMs: jittered(this.opts.ttftMs, j.ttft ?? 0, this.random),
      tokenGapMs: 1000 / jittered(this.opts.tokensPerSecond, j.tokensPerSecond ?? 0, this.random),
    };
  }

  private stream(body: ConverseBody, res: Res, modelId: string, inTokens: number): void {
    const f = this.faults;
    const slow = f.slowFirstByteMs ?? 0;
    f.slowFirstByteMs = undefined;
    const malformed = f.malformedFrame ?? false;
    f.malformedFrame = false;
    const drop = f.dropMidStream ?? false;
    f.dropMidStream = false;
    const plan = reply(body);
    let closed = false;
    res.on('close', () => {
      if (!res.writableEnded) {
        closed = true;
        this.stats.streamsAborted++;
      }
    });
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': crypto.randomUUID() });
    const frames: { at: number; frame: Buffer }[] = [];
    const { ttftMs, tokenGapMs: gap } = this.drawTiming();
    let t = ttftMs + slow;
    const pad = () => 'x'.repeat(1 + Math.floor(Math.random() * 20));
    frames.push({ at: t, frame: eventFrame('messageStart', { role: 'assistant', p: pad() }) });
    let index = 0;
    if (plan.text) {
      const tokens = plan.text.match(/\S+\s*/g) ?? [];
      tokens.forEach((tok, i) => {
        frames.push({ at: t, frame: eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: tok }, p: pad() }, malformed && i === 1) });
        t += gap;
      });
      frames.push({ at: t, frame: eventFrame('contentBlockStop', { contentBlockIndex: 0, p: pad() }) });
      index = 1;
    }
    if (plan.toolUse) {
      const input = JSON.stringify(plan.toolUse.input);
      frames.push({ at: t, frame: eventFrame('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: plan.toolUse.toolUseId, name: plan.toolUse.name } }, p: pad() }) });
      const half = Math.ceil(input.length / 2);
      for (const part of [input.slice(0, half), input.slice(half)]) {
        frames.push({ at: (t += gap), frame: eventFrame('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: part } }, p: pad() }) });
      }
      frames.push({ at: t, frame: eventFrame('contentBlockStop', { contentBlockIndex: index, p: pad() }) });
    }
    frames.push({ at: t, frame: eventFrame('messageStop', { stopReason: plan.toolUse ? 'tool_use' : 'end_turn', p: pad() }) });
    // Usage as the service reports it after messageStop (about 4 characters a token, as Claude's tokenizer averages on English).
    const outTokens = Math.ceil((plan.text?.length ?? 0) / 4) + (plan.toolUse ? Math.ceil(JSON.stringify(plan.toolUse).length / 4) : 0);
    frames.push({ at: t, frame: eventFrame('metadata', { usage: { inputTokens: inTokens, outputTokens: outTokens, totalTokens: inTokens + outTokens }, metrics: { latencyMs: Math.round(t) }, p: pad() }) });
    const start = Date.now();
    let i = 0;
    const pump = () => {
      if (closed) return;
      const now = Date.now() - start;
      while (i < frames.length && frames[i].at <= now) {
        if (drop && i === Math.floor(frames.length / 2)) {
          closed = true;
          if (res.stream) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          else res.destroy?.();
          return;
        }
        res.write(frames[i++].frame);
        if (i === frames.length) this.reportUsage(modelId, inTokens, outTokens);
      }
      if (i >= frames.length) {
        res.end();
        this.stats.streamsCompleted++;
        return;
      }
      setTimeout(pump, Math.max(0, frames[i].at - (Date.now() - start)));
    };
    setTimeout(pump, frames[0].at);
  }
}

/** The prompt's tokens, as the service would count them: its text (system, messages, tool specs) at ~4 characters a token. */
export function inputTokens(body: ConverseBody): number {
  return Math.max(1, Math.ceil(JSON.stringify({ s: body.system, m: body.messages, t: body.toolConfig }).length / 4));
}

/** The destination a caller named: a SIP URI or a +number as spoken ("+1 415 555 0123"). */
function transferTarget(text: string): string {
  return /sips?:[^\s,]+[^\s,.!?]/i.exec(text)?.[0] ?? /\+\d[\d ().-]*\d/.exec(text)?.[0] ?? '';
}

/** The keys a caller asked to press: the last run of keypad characters ("… send_dtmf 1w23#." → "1w23#"). */
function keysIn(text: string): string {
  return /([0-9*#A-D][0-9*#A-Dw]*)[^0-9*#A-Dw]*$/.exec(text)?.[1] ?? '';
}

/** What the emulated model says: deterministic, driven by the last user message. */
export function reply(body: ConverseBody): { text?: string; toolUse?: { toolUseId: string; name: string; input: unknown } } {
  const last = body.messages![body.messages!.length - 1];
  const result = last.content.find((b) => b.toolResult)?.toolResult;
  if (result) {
    const c = result.content[0];
    const value = c?.text ?? JSON.stringify(c?.json ?? {});
    return { text: `I checked that for you. The result is ${value}. Is there anything else?` };
  }
  const userText = last.content.map((b) => b.text ?? '').join(' ').trim();
  const recalled = memoryEcho((body.system ?? []).map((b) => b.text ?? '').join('\n'), userText);
  if (recalled) return { text: recalled };
  const tools = (body.toolConfig?.tools ?? []).map((t) => t.toolSpec!).filter(Boolean);
  const lower = userText.toLowerCase();
  const asked = tools.find((t) => lower.includes(t.name.toLowerCase()) || lower.includes(t.name.toLowerCase().replace(/_/g, ' ')))
    ?? (/\b(use a tool|goodbye|bye)\b/.test(lower) ? tools.find((t) => (/bye/.test(lower) ? t.name === 'end_call' : true)) : undefined);
  if (asked) {
    return {
      text: asked.name === 'end_call' ? undefined : 'Let me check that. ',
      toolUse: { toolUseId: `tooluse_${crypto.randomBytes(8).toString('hex')}`, name: asked.name, input: asked.name === 'transfer_call' ? { target: transferTarget(userText) } : asked.name === 'send_dtmf' ? { digits: keysIn(userText) } : { request: userText } },
    };
  }
  const echo = userText.replace(/[.?!]+$/, '');
  return { text: `You said: ${echo}. I can help with that. What else would you like to know?` };
}
