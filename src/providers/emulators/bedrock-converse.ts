// Converse (not streaming) for the Bedrock emulator (routed from
// bedrock.ts: POST /model/{id}/converse), answered as the service answers:
// one JSON body {output: {message: {role, content: [text | toolUse]}},
// stopReason, usage, metrics}. When the request names a tool to call
// (toolChoice {tool}, as the post-call analysis does), the tool's input is
// generated from its input schema and the transcript in the user message,
// deterministically, so tests can assert every field:
//   summary       "The caller said: " + the caller's lines
//   sentiment     positive / negative on a few words (thanks, great… / angry, terrible…), else neutral
//   enum strings  the first listed value found (on its stem) in the transcript, else (outcome) the last, (others) the first
//   integers      "qualityScore": 50 + 10 per agent line, capped at 100; others the first number said
//                 ("two" or "2"), within the schema's bounds
//   booleans      whether a word of the property's name was said
//   other strings the first caller line sharing a word with the property's name, else the first caller line
// A schema whose text holds "emulator:invalid-once" gets an answer that
// does not validate (`data` a string) unless the request is the retry after
// an error toolResult; "emulator:invalid-always" gets one every time. The
// streaming replies echo memory: a system prompt with the memory section
// (src/postcall/memory.ts) and a caller asking "do you remember…" is answered
// with the newest summary.
import crypto from 'node:crypto';

type Json = Record<string, unknown>;
interface Block { text?: string; toolUse?: unknown; toolResult?: { status?: string } }
interface ConverseRequest {
  messages?: { role: string; content: Block[] }[];
  system?: { text?: string }[];
  toolConfig?: { tools?: { toolSpec?: { name: string; inputSchema?: { json?: Json } } }[]; toolChoice?: { tool?: { name?: string } } };
}

const POSITIVE = /\b(thanks?|thank you|great|perfect|wonderful|excellent|lovely|happy)\b/i;
const NEGATIVE = /\b(angry|terrible|awful|bad|useless|annoyed|upset|complain\w*|cancel)\b/i;
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve'];
const MEMORY_SECTION = /What you remember from earlier calls with this caller[^\n]*\n- [\d-]+: ([^\n]+)/;

/** The answer to a Converse request: a forced tool call when one is named, else what `text` says. */
export function converseResponse(request: object, text: () => { text?: string }): Json {
  const body = request as ConverseRequest;
  const forced = body.toolConfig?.toolChoice?.tool?.name;
  const spec = forced ? body.toolConfig?.tools?.find((t) => t.toolSpec?.name === forced)?.toolSpec : undefined;
  const content: Json[] = [];
  if (spec) {
    const transcript = body.messages?.[0]?.content.map((b) => b.text ?? '').join('\n') ?? '';
    const schema = spec.inputSchema?.json ?? { type: 'object' };
    const input = fill(schema, '', transcript) as Json;
    const marker = JSON.stringify(schema);
    const retry = body.messages!.some((m) => m.content.some((b) => b.toolResult?.status === 'error'));
    if (marker.includes('emulator:invalid-always') || (marker.includes('emulator:invalid-once') && !retry)) input.data = 'not an object';
    content.push({ toolUse: { toolUseId: `tooluse_${crypto.randomBytes(8).toString('hex')}`, name: spec.name, input } });
  } else {
    content.push({ text: text().text ?? '' });
  }
  const inputTokens = Math.ceil(JSON.stringify(body).length / 4);
  const outputTokens = Math.ceil(JSON.stringify(content).length / 4);
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: spec ? 'tool_use' : 'end_turn',
    usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
    metrics: { latencyMs: 5 },
  };
}

/** The streaming reply to "do you remember…" when the system prompt carries memory; null otherwise. */
export function memoryEcho(system: string, userText: string): string | null {
  if (!/\bremember\b/i.test(userText)) return null;
  const m = MEMORY_SECTION.exec(system);
  return m ? `Yes, I remember. ${m[1].trim()}` : null;
}

const lines = (t: string, who: 'Caller' | 'Agent') => t.split('\n').filter((l) => l.startsWith(`${who}: `)).map((l) => l.slice(who.length + 2).trim());
const words = (name: string) => name.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase().split(/[^a-z]+/).filter((w) => w.length > 2);

function firstNumber(text: string): number | null {
  const m = new RegExp(`\\b(\\d+(?:\\.\\d+)?|${NUMBER_WORDS.join('|')})\\b`, 'i').exec(text);
  if (!m) return null;
  const i = NUMBER_WORDS.indexOf(m[1].toLowerCase());
  return i >= 0 ? i : Number(m[1]);
}

/** A value for `schema` at property `name`, from the transcript. */
function fill(schema: Json, name: string, transcript: string): unknown {
  const caller = lines(transcript, 'Caller');
  const lower = transcript.toLowerCase();
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (Array.isArray(schema.enum)) {
    // "booked" is found in "book a table": a value matches on its stem.
    const found = (schema.enum as unknown[]).find((v) => typeof v === 'string' && new RegExp(`\\b${v.replace(/[^\w ]/g, '').replace(/(ed|ing|s)$/i, '')}`, 'i').test(transcript));
    return found ?? (name === 'outcome' ? schema.enum.at(-1) : schema.enum[0]);
  }
  if (type === 'object') {
    if (name === 'sentiment') {
      const label = NEGATIVE.test(caller.join(' ')) ? 'negative' : POSITIVE.test(caller.join(' ')) ? 'positive' : 'neutral';
      return { label, score: label === 'positive' ? 0.6 : label === 'negative' ? -0.6 : 0 };
    }
    const props = (schema.properties ?? {}) as Record<string, Json>;
    return Object.fromEntries(Object.entries(props).map(([k, s]) => [k, fill(s, k, transcript)]));
  }
  if (type === 'array') {
    const n = Number(schema.minItems ?? 0);
    return Array.from({ length: n }, () => fill((schema.items as Json) ?? { type: 'string' }, name, transcript));
  }
  if (type === 'integer' || type === 'number') {
    let v = name === 'qualityScore' ? Math.min(100, 50 + 10 * lines(transcript, 'Agent').length) : firstNumber(caller.join(' ')) ?? 0;
    if (typeof schema.minimum === 'number') v = Math.max(v, schema.minimum);
    if (typeof schema.maximum === 'number') v = Math.min(v, schema.maximum);
    return type === 'integer' ? Math.round(v) : v;
  }
  if (type === 'boolean') return words(name).some((w) => lower.includes(w));
  if (type === 'null') return null;
  const max = typeof schema.maxLength === 'number' ? schema.maxLength : 400;
  if (name === 'summary') return `The caller said: ${caller.join(' ')}`.slice(0, max);
  const hit = caller.find((l) => words(name).some((w) => l.toLowerCase().includes(w)));
  return (hit ?? caller[0] ?? 'unknown').slice(0, max);
}
