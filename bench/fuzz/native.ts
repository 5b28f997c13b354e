// Native addon fuzzing, run as its own process (`node dist/bench/fuzz/native.js
// --seed S --seconds N`) so an abort is seen as the child's death, not ours:
// random argument types and sizes into every export of src/media (the typed
// wrappers), of the raw addon (its functions and classes, with positional
// arguments and now and then a foreign `this`) and of the workers' steering
// addon (native/reuseport.cc). Each call must return or
// throw; the process must never abort. The case number is written to a state
// file before each call, so a crash names the case, and `--until N` replays
// the run up to it and prints it.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as media from '../../src/media/index.js';
import { native } from '../../src/media/native.js';
import { reuseportAddon } from '../../src/server/steering.js';
import { Rand } from './random.js';

const OPTION_KEYS = ['minSpeechMs', 'minSilenceMs', 'encoding', 'dtmf', 'vad', 'minDelayMs', 'maxDelayMs', 'frameBytes', 'threshold', 'hangoverMs', 'sampleRate', 'codec', 'twistDb', 'minToneMs'];
// Over the native per-call size limit (native/args.h: 2^25 bytes).
let huge: Uint8Array | null = null;

type Gen = { value: unknown; desc: string; hostile: boolean };

function typed(r: Rand): Gen {
  const n = r.pick([0, 1, 2, 79, 80, 159, 160, 161, 240, 320, 480, 1000, 8000, r.size(70_000)]);
  const kind = r.int(14);
  switch (kind) {
    case 0: return { value: new Int16Array(n), desc: `Int16Array(${n})`, hostile: false };
    case 1: { const b = Buffer.from(r.bytes(n)); return { value: b, desc: `Buffer(${n})`, hostile: false }; }
    case 2: return { value: new Float32Array(n), desc: `Float32Array(${n})`, hostile: false };
    case 3: return { value: new Uint16Array(n), desc: `Uint16Array(${n})`, hostile: false };
    case 4: return { value: new BigInt64Array(n >> 3), desc: `BigInt64Array(${n >> 3})`, hostile: false };
    case 5: return { value: new DataView(new ArrayBuffer(n)), desc: `DataView(${n})`, hostile: false };
    case 6: return { value: new ArrayBuffer(n), desc: `ArrayBuffer(${n})`, hostile: false };
    case 7: return { value: new Uint8Array(new SharedArrayBuffer(Math.max(n, 1))), desc: `shared Uint8Array(${n})`, hostile: false };
    case 8: { const v = new Uint8Array(n + 8); structuredClone(v.buffer, { transfer: [v.buffer] }); return { value: v, desc: 'detached Uint8Array', hostile: false }; }
    case 9: { const v = new Uint8Array(n + 3).subarray(1, 1 + n); return { value: v, desc: `odd-offset Uint8Array(${n})`, hostile: false }; }
    case 10: { const v = new Int16Array(new ArrayBuffer(n * 2 + 4), 2, n); return { value: v, desc: `offset Int16Array(${n})`, hostile: false }; }
    case 11: {
      if (!r.chance(0.02)) return { value: new Uint8Array(n), desc: `Uint8Array(${n})`, hostile: false };
      huge ??= new Uint8Array((1 << 25) + 2);
      return { value: huge, desc: 'Uint8Array(2^25+2)', hostile: false };
    }
    case 12: return { value: new Uint8ClampedArray(n), desc: `Uint8ClampedArray(${n})`, hostile: false };
    default: return { value: Uint8Array.from(r.bytes(n)), desc: `Uint8Array(${n})`, hostile: false };
  }
}

function scalar(r: Rand): Gen {
  const v = r.pick<unknown>([undefined, null, 0, -1, 1, 160, 2 ** 31, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), NaN, Infinity, -Infinity, -0, 0.5, 1e308, 'ulaw', 'alaw', 'pcm16', '', 'x'.repeat(1000), true, false, 10n, Symbol('s'), [], {}, [1, 2, 3], () => 1, new Date(0), /x/]);
  return { value: v, desc: typeof v === 'symbol' ? 'Symbol' : typeof v === 'bigint' ? `${v}n` : typeof v === 'function' ? 'function' : JSON.stringify(v) ?? String(v), hostile: false };
}

function options(r: Rand, depth = 0): Gen {
  if (r.chance(0.1)) {
    // A Proxy whose every property read throws: the native side must let that exception through, not crash.
    const p = new Proxy({}, { get: () => { throw new Error('hostile getter'); }, has: () => true, ownKeys: () => { throw new Error('hostile ownKeys'); } });
    return { value: p, desc: 'throwing Proxy', hostile: true };
  }
  const o: Record<string, unknown> = {};
  const parts: string[] = [];
  let hostile = false;
  for (let i = r.int(4); i > 0; i--) {
    const k = r.chance(0.8) ? r.pick(OPTION_KEYS) : r.pick(['__proto__', 'constructor', 'seq', 'payload']);
    const g = depth < 1 && r.chance(0.2) ? options(r, depth + 1) : r.chance(0.2) ? typed(r) : scalar(r);
    Object.defineProperty(o, k, { value: g.value, enumerable: true, configurable: true, writable: true });
    hostile ||= g.hostile;
    parts.push(`${k}:${g.desc}`);
  }
  if (r.chance(0.1)) {
    const k = r.pick(OPTION_KEYS);
    Object.defineProperty(o, k, { get: () => { throw new Error('hostile getter'); }, enumerable: true, configurable: true });
    parts.push(`${k}:<throwing getter>`);
    hostile = true;
  }
  return { value: o, desc: `{${parts.join(',')}}`, hostile };
}

function arg(r: Rand): Gen {
  const k = r.int(10);
  if (k < 5) return typed(r);
  if (k < 8) return scalar(r);
  return options(r);
}

/** A JitterBuffer packet: mostly valid fields, one of them damaged. */
function packet(r: Rand): Gen {
  const p: Record<string, unknown> = { seq: r.int(65536), timestamp: r.int(2 ** 32), payload: new Uint8Array(160), arrivalMs: r.int(1e7), ssrc: r.int(2 ** 32) };
  const key = r.pick(Object.keys(p));
  const g = arg(r);
  if (r.chance(0.7)) p[key] = g.value;
  return { value: p, desc: `packet{${key}:${g.desc}}`, hostile: g.hostile };
}

interface Target {
  name: string;
  fn: (...a: unknown[]) => unknown;
  /** How many arguments it takes (more or fewer are tried too). */
  arity: number;
  construct?: boolean;
  methods?: string[];
}

function targets(): Target[] {
  const out: Target[] = [];
  const add = (prefix: string, obj: Record<string, unknown>) => {
    for (const [name, v] of Object.entries(obj)) {
      if (typeof v !== 'function') continue;
      const proto = (v as { prototype?: object }).prototype;
      const methods = proto ? Object.getOwnPropertyNames(proto).filter((m) => m !== 'constructor' && typeof Object.getOwnPropertyDescriptor(proto, m)?.value === 'function') : [];
      const isClass = /^[A-Z]/.test(name);
      out.push({ name: `${prefix}.${name}`, fn: v as (...a: unknown[]) => unknown, arity: (v as { length: number }).length || 2, construct: isClass, methods });
    }
  };
  add('media', media as unknown as Record<string, unknown>);
  add('native', native as unknown as Record<string, unknown>);
  // The workers' connection steering (native/reuseport.cc): this process listens on nothing, so every fd is refused.
  add('reuseport', (reuseportAddon() ?? {}) as unknown as Record<string, unknown>);
  return out;
}

/** Closes a pooled object; it may have been closed by a fuzz case already (a second close may throw). */
function closeQuietly(o: unknown): void {
  try {
    (o as { close?: () => void } | undefined)?.close?.();
  } catch {
    /* already closed */
  }
}

export interface NativeReport {
  seed: number;
  calls: number;
  ok: number;
  rejected: number;
  /** Throws that were not TypeError/RangeError (nor a hostile getter's own error), first few. */
  unexpected: { case: number; call: string; error: string }[];
  unexpectedCount: number;
}

/** Runs the fuzz loop; `until` stops after that case and returns its description. */
export function runNative(seed: number, seconds: number, stateFile: string | null, until = -1): { report: NativeReport; lastCase: string } {
  const r = new Rand(seed);
  const list = targets();
  const live = new Map<string, object[]>();
  const report: NativeReport = { seed, calls: 0, ok: 0, rejected: 0, unexpected: [], unexpectedCount: 0 };
  const fd = stateFile ? fs.openSync(stateFile, 'w') : null;
  const idx = Buffer.alloc(8);
  const end = performance.now() + seconds * 1000;
  let desc = '';
  for (let i = 0; until >= 0 ? i <= until : performance.now() < end; i++) {
    const t = r.pick(list);
    const n = Math.max(0, t.arity + r.pick([0, 0, 0, -1, 1, 2]));
    const args = Array.from({ length: n }, () => (t.name.endsWith('JitterBuffer') && r.chance(0.3) ? packet(r) : arg(r)));
    let hostile = args.some((a) => a.hostile);
    let call: () => unknown;
    if (t.construct) {
      const pool = live.get(t.name) ?? [];
      live.set(t.name, pool);
      const m = t.methods?.length ? r.pick(t.methods) : null;
      if (!pool.length || !m || r.chance(0.1)) {
        const ctorArgs = r.chance(0.5) ? [] : [r.chance(0.7) ? options(r) : arg(r)];
        hostile ||= ctorArgs.some((a) => a.hostile);
        desc = `new ${t.name}(${ctorArgs.map((a) => a.desc).join(', ')})`;
        call = () => {
          const o = new (t.fn as unknown as new (...a: unknown[]) => object)(...ctorArgs.map((a) => a.value));
          pool.push(o);
          if (pool.length > 8) {
            closeQuietly(pool.shift());
          }
          return o;
        };
      } else if (r.chance(0.05)) {
        // A foreign `this`: a plain object, another class's instance, or the prototype itself.
        const others = [...live.values()].flat();
        const self = r.pick<unknown>([{}, (t.fn as { prototype: object }).prototype, others.length ? r.pick(others) : null, Object.create((t.fn as { prototype: object }).prototype)]);
        const f = (t.fn as { prototype: Record<string, (...a: unknown[]) => unknown> }).prototype[m]!;
        desc = `${t.name}.prototype.${m}.call(<foreign this>, ${args.map((a) => a.desc).join(', ')})`;
        call = () => f.apply(self, args.map((a) => a.value));
      } else {
        const o = r.pick(pool) as Record<string, (...a: unknown[]) => unknown>;
        if (m === 'close' && r.chance(0.5)) pool.splice(pool.indexOf(o), 1);
        desc = `${t.name}#.${m}(${args.map((a) => a.desc).join(', ')})`;
        call = () => o[m]!(...args.map((a) => a.value));
      }
    } else {
      desc = `${t.name}(${args.map((a) => a.desc).join(', ')})`;
      call = () => t.fn(...args.map((a) => a.value));
    }
    if (until >= 0 && i === until) return { report, lastCase: `case #${i}: ${desc}` };
    if (fd !== null) {
      idx.writeDoubleLE(i, 0);
      fs.writeSync(fd, idx, 0, 8, 0);
    }
    report.calls++;
    try {
      call();
      report.ok++;
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError || (hostile && err instanceof Error && /hostile/.test(err.message))) report.rejected++;
      else {
        report.unexpectedCount++;
        if (report.unexpected.length < 10) report.unexpected.push({ case: i, call: desc, error: err instanceof Error ? `${err.name}: ${err.message}` : `non-Error thrown: ${String(err)}` });
        report.rejected++;
      }
    }
  }
  for (const pool of live.values()) for (const o of pool) closeQuietly(o);
  if (fd !== null) fs.closeSync(fd);
  return { report, lastCase: desc };
}

/** The case number the state file holds (the one running when the child died). */
export function lastCaseNumber(stateFile: string): number | null {
  try {
    const b = fs.readFileSync(stateFile);
    return b.length >= 8 ? b.readDoubleLE(0) : null;
  } catch {
    return null;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const a = process.argv.slice(2);
  const get = (k: string) => {
    const i = a.indexOf(k);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const seed = Number(get('--seed') ?? 1);
  const until = get('--until');
  if (until !== undefined) {
    const { lastCase } = runNative(seed, 0, null, Number(until));
    process.stdout.write(lastCase + '\n');
  } else {
    const { report } = runNative(seed, Number(get('--seconds') ?? 10), get('--state') ?? null);
    process.stdout.write(JSON.stringify(report) + '\n');
  }
}
