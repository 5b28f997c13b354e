// Logs (issue 13 item 17): pino JSON lines with level/time/msg, secrets
// censored whatever the call site passes, conversation text redacted (a phone
// or card number the caller speaks never reaches a log line), and the lines
// written before `process.exit` on shutdown are not lost.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { log, setLogLevel, setLogSink } from '../../src/log.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';
import { api } from '../helpers/api.js';
import { freePort } from '../helpers/app.js';
import { spawnServer, type Spawned } from '../helpers/spawn-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms: number, what: string) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let lines: string[] = [];
beforeAll(() => {
  setLogSink((l) => lines.push(l));
  setLogLevel('debug');
});
afterEach(() => {
  lines = [];
});

describe('log lines', () => {
  it('are JSON with a level label, an ISO time and msg', () => {
    log.child({ callId: 'c_1' }).info('hello', { n: 1 });
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(rec.level).toBe('info');
    expect(typeof rec.time).toBe('string');
    expect(new Date(rec.time as string).toISOString()).toBe(rec.time);
    expect(rec.msg).toBe('hello');
    expect(rec).toMatchObject({ callId: 'c_1', n: 1 });
  });

  it('never carry authorization headers, tool auth headers, passwords, keys or tokens', () => {
    const secret = 'S3cr3t-value-xyz';
    log.info('request', { authorization: `Bearer ${secret}`, headers: { authorization: `Bearer ${secret}`, Authorization: secret } });
    log.warn('tool', { tool: { name: 'lookup', authHeader: `Bearer ${secret}` }, authHeader: secret });
    log.error('login', { password: secret, user: { password: secret }, apiKey: secret, token: secret, key: secret });
    log.child({ authHeader: secret }).debug('child');
    expect(lines).toHaveLength(4);
    for (const l of lines) {
      expect(() => JSON.parse(l)).not.toThrow();
      expect(l).not.toContain(secret);
    }
    expect(lines.join('\n')).toContain('[redacted]');
  });

  it('redact phone and card numbers in conversation text fields', () => {
    log.info('barge-in', { heard: 'You said: call me at 415 555 0123, card 4111 1111 1111 1111.' });
    expect(lines[0]).not.toMatch(/415 555 0123|4111 1111/);
    expect(lines[0]).toContain('[phone]');
    expect(lines[0]).toContain('[card]');
  });
});

// Keeps the agent talking long after the sentence with the number, so the barge-in lands in it.
const LONG_TAIL = 'I have a long question about the menu, the opening hours, the parking and the terrace, and I would like to hear all of it.';

describe('a conversation run at info', () => {
  // A spawned `aybiza serve`, its stdout read: with WORKERS > 1 (AYBIZA_TEST_WORKERS) the
  // call runs in a worker thread whose lines never pass through this process's log sink.
  let srv: Spawned;
  let number: string;
  const out = () => srv.stdout.filter((l) => l.startsWith('{'));
  beforeAll(async () => {
    const port = await freePort();
    // The emulated LLM echoes the caller ("You said: …"): the caller's number comes back in the agent's words.
    srv = await spawnServer({
      PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, TWILIO_AUTH_TOKEN: 'test-auth-token', ADMIN_API_KEY: 'log-admin', EMULATORS: 'on', LOG_LEVEL: 'info',
      EMULATOR_PHRASES: `Call me at 415 555 0123. ${LONG_TAIL}|Stop.|Thanks.`, EMULATOR_STT_FINAL_DELAY_MS: '50', EMULATOR_LLM_TTFT_MS: '60',
      EMULATOR_LLM_TOKENS_PER_S: '60', EMULATOR_TTS_TTFB_MS: '30', EMULATOR_TTS_RTF: '0.1',
    });
    const tenant = await api(srv.base, 'POST', '/v1/tenants', 'log-admin', { name: 'Logs' });
    const agent = await api(srv.base, 'POST', '/v1/agents', 'log-admin', {
      tenantId: tenant.body.id, name: 'Agent', prompt: 'You are a helpful receptionist.', greeting: 'Hello! Thanks for calling. How can I help you today?',
    });
    number = `+1415555${String(Math.floor(1000 + Math.random() * 8999))}`;
    expect((await api(srv.base, 'POST', '/v1/phone-numbers', 'log-admin', { number, agentId: agent.body.id })).status).toBe(201);
  }, 90_000);
  afterAll(async () => {
    await srv?.stop();
  });

  it('logs no phone number the caller spoke, not even in what the caller heard at a barge-in', async () => {
    const c = new TwilioCaller({ baseUrl: srv.base, authToken: 'test-auth-token', to: number });
    await c.dial();
    // the greeting, then the caller's turn
    let last = c.stats.frames;
    let since = Date.now();
    await waitFor(() => {
      if (c.stats.frames !== last) [last, since] = [c.stats.frames, Date.now()];
      return c.stats.frames > 0 && Date.now() - since > 400;
    }, 20_000, 'greeting to end');
    // Audio arrives ahead of the caller's playhead: wait until the greeting has been played out (every mark echoed).
    await waitFor(() => c.stats.marks > 0 && c.stats.echoed === c.stats.marks, 20_000, 'greeting played out');
    // The emulated recogniser hears the next EMULATOR_PHRASES entry whatever the audio says.
    const greetingFrames = c.stats.frames;
    c.speak(synthesize('call me back'));
    // Let the whole first sentence of the reply ("You said: Call me at 415 555 0123.", 70 ms a
    // character in the emulator's voice) play out at the caller, then talk over the rest.
    const firstSentence = synthesize('You said: Call me at 415 555 0123.').length / 160;
    await waitFor(() => c.stats.frames - greetingFrames > firstSentence + 25, 20_000, 'first reply sentence');
    c.speak(synthesize('stop'));
    await waitFor(() => out().some((l) => l.includes('"msg":"barge-in"')), 20_000, 'barge-in');
    await c.hangup();
    await sleep(200);
    const all = srv.stdout.join('\n');
    const bargeIn = JSON.parse(out().find((l) => l.includes('"msg":"barge-in"'))!) as { heard: string };
    expect(bargeIn.heard).toContain('[phone]');
    expect(all).not.toMatch(/415[ .-]?555[ .-]?0123/);
    for (const l of srv.stdout) expect(() => JSON.parse(l)).not.toThrow();
  }, 90_000);
});

describe('shutdown', () => {
  it('the log lines written just before process.exit reach stdout (asynchronous destination flushed)', async () => {
    const srv = await spawnServer({ EMULATORS: 'on', LOG_LEVEL: 'info' });
    expect(await srv.stop('SIGTERM')).toBe(0);
    await new Promise<void>((resolve) => (srv.child.stdout!.readableEnded ? resolve() : srv.child.stdout!.once('end', () => resolve())));
    const recs = srv.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: string; time: string });
    expect(recs.map((r) => r.msg)).toContain('stopped');
    for (const r of recs) {
      expect(typeof r.level).toBe('string');
      expect(typeof r.time).toBe('string');
    }
  }, 90_000);
});
