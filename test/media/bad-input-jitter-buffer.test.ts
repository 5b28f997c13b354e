// Hammers JitterBuffer, wrapped and native, with hostile arguments: the only
// acceptable outcomes are a result or a TypeError/RangeError.
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { detached, HUGE, outcome, rng } from '../helpers/hostile.js';
import { JitterBuffer } from '../../src/media/jitter-buffer.js';
import { native } from '../../src/media/native.js';

type Fn = (...a: unknown[]) => unknown;
type NativeJb = Record<'push' | 'pop' | 'skip' | 'stats' | 'reset' | 'close', Fn>;
const NativeJitterBuffer = native.JitterBuffer as new (...a: unknown[]) => NativeJb;

const VALUES: (() => unknown)[] = [
  () => undefined, () => null, () => 0, () => 1, () => -1, () => 0.5, () => NaN, () => Infinity, () => -Infinity,
  () => 1e300, () => -1e300, () => 65535, () => 65536, () => 2 ** 32 - 1, () => 2 ** 32, () => 2 ** 53,
  () => Number.MAX_SAFE_INTEGER, () => -0, () => 'abc', () => '1', () => '', () => 'pcma', () => 'pcmu', () => true,
  () => ({}), () => [], () => [1, 2, 3], () => Symbol('x'), () => 10n, () => () => 0, () => new Date(),
  () => new Uint8Array(0), () => new Uint8Array(1), () => new Uint8Array(159), () => new Uint8Array(160),
  () => new Uint8Array(161), () => Buffer.alloc(160, 0xff), () => new Int16Array(80), () => new Int16Array(160),
  () => new Float32Array(40), () => new Uint8ClampedArray(160), () => new DataView(new ArrayBuffer(160)),
  () => new ArrayBuffer(160), () => new Uint8Array(new SharedArrayBuffer(160)), () => detached(), () => detached(0),
  () => HUGE, () => new Uint8Array(new ArrayBuffer(161), 1, 160),
];

function rand0(rand: () => number): unknown {
  return VALUES[Math.floor(rand() * VALUES.length)]();
}

/** A packet whose fields are mostly valid, with one or two hostile ones. */
function packet(rand: () => number, k: number): unknown {
  if (rand() < 0.1) return rand0(rand);
  const p: Record<string, unknown> = {
    seq: k & 0xffff, timestamp: (k * 160) >>> 0, payload: new Uint8Array(160).fill(0x80 + (k & 0x7f)), arrivalMs: k * 20,
  };
  if (rand() < 0.3) p.ssrc = rand() < 0.5 ? 1234 : rand0(rand);
  const fields = ['seq', 'timestamp', 'payload', 'arrivalMs', 'ssrc'];
  for (let n = Math.floor(rand() * 3); n > 0; n--) p[fields[Math.floor(rand() * fields.length)]] = rand0(rand);
  return p;
}

const good = () => ({ seq: 1, timestamp: 160, payload: new Uint8Array(160), arrivalMs: 0 });

describe('JitterBuffer under hostile input', () => {
  it('rejects specific bad arguments with errors naming the field', () => {
    const jb = new JitterBuffer();
    const push = (p: unknown) => () => jb.push(p as never);
    expect(push(null)).toThrow(TypeError);
    expect(push(7)).toThrow(/packet/);
    expect(push({ ...good(), seq: 1.5 })).toThrow(/seq.*integer/);
    expect(push({ ...good(), seq: 65536 })).toThrow(RangeError);
    expect(push({ ...good(), seq: '1' })).toThrow(/seq/);
    expect(push({ ...good(), seq: undefined })).toThrow(TypeError);
    expect(push({ ...good(), timestamp: -1 })).toThrow(/timestamp/);
    expect(push({ ...good(), timestamp: 2 ** 32 })).toThrow(RangeError);
    expect(push({ ...good(), payload: new Uint8Array(159) })).toThrow(/payload.*160 bytes/);
    expect(push({ ...good(), payload: new Int16Array(160) })).toThrow(TypeError);
    expect(push({ ...good(), payload: new Uint8Array(new SharedArrayBuffer(160)) })).toThrow(/SharedArrayBuffer/);
    expect(push({ ...good(), payload: detached() })).toThrow(/detached/);
    expect(push({ ...good(), arrivalMs: NaN })).toThrow(/arrivalMs/);
    expect(push({ ...good(), arrivalMs: Infinity })).toThrow(RangeError);
    expect(push({ ...good(), ssrc: -5 })).toThrow(/ssrc/);
    expect(() => jb.pop(NaN)).toThrow(/nowMs/);
    expect(() => jb.skip(-1)).toThrow(/seq/);
    expect(() => jb.skip(1.5)).toThrow(/seq.*integer/);
    expect(() => jb.skip('1' as never)).toThrow(TypeError);
    expect(() => jb.pop('5' as never)).toThrow(TypeError);
    expect(() => new JitterBuffer({ codec: 'opus' as never })).toThrow(/codec/);
    expect(() => new JitterBuffer(5 as never)).toThrow(TypeError);
    expect(() => new JitterBuffer({ minDelayMs: NaN })).toThrow(/minDelayMs/);
    expect(() => new JitterBuffer({ minDelayMs: 300, maxDelayMs: 100 })).toThrow(/maxDelayMs/);
    expect(() => new JitterBuffer({ maxDelayMs: 1e9 })).toThrow(RangeError);
    const n = new NativeJitterBuffer();
    expect(() => n.pop(0, new Uint8Array(100))).toThrow(/dst/);
    expect(() => n.push()).toThrow(TypeError);
    n.close();
    n.close(); // idempotent on the native side too
    const closed = { name: 'TypeError', code: 'ERR_AYBIZA_CLOSED', message: 'JitterBuffer is closed' };
    expect(() => n.stats()).toThrow(expect.objectContaining(closed));
    expect(() => n.reset()).toThrow(expect.objectContaining(closed));
    expect(() => n.skip(1)).toThrow(expect.objectContaining(closed));
    expect(() => n.pop(0, new Uint8Array(160))).toThrow(expect.objectContaining(closed));
    expect(() => n.push(1, 160, new Uint8Array(160), 0)).toThrow(expect.objectContaining(closed));
    expect(() => n.push()).toThrow(expect.objectContaining(closed));
  });

  it('survives 20,000 random calls on wrapped and native buffers, including after close', () => {
    const rand = rng(0x7177e4);
    const outcomes = { ok: 0, rejected: 0 };
    let wrapped: JitterBuffer[] = [new JitterBuffer(), new JitterBuffer({ codec: 'pcma' })];
    let natives: NativeJb[] = [new NativeJitterBuffer()];
    let k = 0;
    for (let i = 0; i < 20_000; i++) {
      k += rand() < 0.9 ? 1 : Math.floor(rand() * 70_000);
      const r = rand();
      const wjb = wrapped[Math.floor(rand() * wrapped.length)];
      const njb = natives[Math.floor(rand() * natives.length)];
      let call: () => unknown;
      if (r < 0.35) call = () => wjb.push(packet(rand, k) as never);
      else if (r < 0.55) call = () => wjb.pop(rand() < 0.7 ? k * 20 : (rand0(rand) as number));
      else if (r < 0.58) call = () => wjb.skip(rand() < 0.7 ? (k + 1) & 0xffff : (rand0(rand) as number));
      else if (r < 0.6) call = () => wjb.stats();
      else if (r < 0.62) call = () => wjb.reset();
      else if (r < 0.63) call = () => wjb.close();
      else if (r < 0.66) call = () => wrapped.push(new JitterBuffer(rand0(rand) as never));
      else if (r < 0.68) call = () => natives.push(new NativeJitterBuffer(rand0(rand), rand0(rand)));
      else if (r < 0.7) call = () => njb.close(rand0(rand));
      else {
        const argc = Math.floor(rand() * 6);
        const args = Array.from({ length: argc }, () => rand0(rand));
        const method = (['push', 'pop', 'skip', 'stats', 'reset'] as const)[Math.floor(rand() * 5)];
        call = () => njb[method](...args);
      }
      outcomes[outcome(call)]++;
      if (wrapped.length > 20) wrapped = wrapped.slice(-5);
      if (natives.length > 20) natives = natives.slice(-5);
    }
    expect(outcomes.rejected).toBeGreaterThan(1000);
    expect(outcomes.ok).toBeGreaterThan(1000);
  });

  it('rejects methods called on a foreign receiver', () => {
    const proto = NativeJitterBuffer.prototype as unknown as NativeJb;
    expect(() => proto.push.call({}, 1, 2, new Uint8Array(160), 0)).toThrow(TypeError);
    expect(() => (NativeJitterBuffer as unknown as Fn)()).toThrow(TypeError);
  });

  it('collects closed and abandoned buffers (native finalizers run under gc)', async () => {
    // vitest runs without --expose-gc; turn it on for this process.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    let collected = 0;
    const registry = new FinalizationRegistry(() => collected++);
    (() => {
      for (let i = 0; i < 500; i++) {
        const jb = new JitterBuffer();
        jb.push({ ...good(), seq: i });
        if (i % 2) jb.close();
        registry.register(jb, i);
      }
    })();
    for (let i = 0; i < 10 && collected < 400; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(collected).toBeGreaterThanOrEqual(400);
  });
});
