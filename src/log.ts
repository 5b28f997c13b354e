// Structured JSON logs on stdout, one object per line, written by pino through
// an asynchronous destination (sonic-boom): a log call only formats a string
// and queues it, the write to the pipe happens off the 20 ms audio clock.
// Small on purpose: the hot path never logs per frame, and bad input is logged
// once per call.
//
// Line shape (what SREs' collectors expect): {"level":"info","time":"<ISO 8601>",
// "pid":…,"hostname":…,"msg":"…", …fields}. `level` is the label string
// (debug, info, warn, error), not pino's number, so log queries need no mapping.
//
// Two safety nets, whatever a call site passes:
// - secrets: pino `redact` censors authorization headers, tool auth headers,
//   passwords, keys and tokens (top level and one level down) as "[redacted]";
// - PII: fields that carry conversation text (`heard`, `text`, `transcript`…)
//   go through the transcript redactor (src/store/redact.ts) first, so a card
//   or phone number spoken on a call never reaches a log line.
import pino from 'pino';
import type { LogLevel } from './config.js';
import { redactPii } from './store/redact.js';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const SECRET_KEYS = [
  'authorization', 'Authorization', 'authHeader', 'password', 'passwd', 'secret', 'key', 'apiKey', 'api_key',
  'token', 'accessToken', 'authToken', 'secretAccessKey', 'sessionToken', 'cookie', 'ha1',
];
const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'headers["x-twilio-signature"]', '*.headers["x-twilio-signature"]',
];

/** Field names whose string values are conversation text (caller or agent words). */
const PII_FIELDS = new Set(['heard', 'text', 'transcript', 'utterance', 'said', 'user', 'agent', 'caller', 'reply', 'prompt']);

function options(level: LogLevel): pino.LoggerOptions {
  return {
    level,
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    // Errors are already plain objects (fieldValue): no second serialisation.
    serializers: { err: (v: unknown) => v },
  };
}

let level: LogLevel = (['debug', 'info', 'warn', 'error'] as const).find((l) => l === process.env.LOG_LEVEL) ?? 'info';
const stdout = pino.destination({ dest: 1, sync: false });
let root: pino.Logger = pino(options(level), stdout);

export function setLogLevel(l: LogLevel): void {
  level = l;
  root.level = l;
}

/** Redirects log lines (tests capture them; the CLI's `call` sends them to stderr). Synchronous. */
export function setLogSink(fn: (line: string) => void): void {
  flushLogs();
  root = pino(options(level), { write: (s: string) => fn(s.endsWith('\n') ? s.slice(0, -1) : s) });
}

/**
 * Writes out whatever the asynchronous destination still holds. pino already
 * does this on process exit; call it before `process.exit` on fatal paths too.
 */
export function flushLogs(): void {
  try {
    stdout.flushSync();
  } catch {
    /* nothing buffered yet, or stdout gone: nothing to save */
  }
}

function fieldValue(k: string, v: unknown, depth = 0): unknown {
  if (v instanceof Error) return { name: v.name, message: v.message, code: (v as { code?: unknown }).code, stack: v.stack };
  if (typeof v === 'string') return PII_FIELDS.has(k) ? redactPii(v) : v;
  // A turn or message object passed whole ({ user, agent }, { role, text }): its text fields too.
  if (depth < 3 && v !== null && typeof v === 'object' && (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype)) {
    if (Array.isArray(v)) return v.map((x) => fieldValue(k, x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [kk, vv] of Object.entries(v)) out[kk] = fieldValue(kk, vv, depth + 1);
    return out;
  }
  return v;
}

function make(base: Record<string, unknown>): Logger {
  const write = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (!root.isLevelEnabled(l)) return;
    const rec: Record<string, unknown> = { ...base };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = fieldValue(k, v);
    root[l](rec, msg);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => {
      const b: Record<string, unknown> = { ...base };
      for (const [k, v] of Object.entries(fields)) b[k] = fieldValue(k, v);
      return make(b);
    },
  };
}

export const log: Logger = make({});
