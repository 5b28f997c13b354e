// The Twilio REST emulator through the unmodified `twilio` library: Basic
// auth with an auth token or an API key, form encoding with repeated keys,
// 201/200 JSON, errors the SDK turns into RestException (not the RFC 9457
// TwilioServiceException), signed status callbacks for the events asked.
import http from 'node:http';
import type net from 'node:net';
import twilio from 'twilio';
import RestException from 'twilio/lib/base/RestException.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twilioRestClient } from '../../src/outbound/twilio.js';
import { startTwilioRestEmulator } from '../../src/providers/emulators/index.js';
import type { TwilioRestEmulator } from '../../src/providers/emulators/twilio-rest.js';
import { waitFor } from '../helpers/calls.js';

const ACCOUNT = 'AC' + 'a'.repeat(32);
const TOKEN = 'emulator-test-token';
const KEY = 'SK' + 'b'.repeat(32);

describe('Twilio REST emulator with the official library', () => {
  let emu: TwilioRestEmulator;
  let url: string;
  let hook: http.Server;
  let hookUrl: string;
  const received: { path: string; params: Record<string, string>; valid: boolean }[] = [];

  beforeAll(async () => {
    ({ emulator: emu, url } = await startTwilioRestEmulator({ ringMs: 50 }));
    emu.addAccount(ACCOUNT, TOKEN);
    emu.addApiKey(KEY, 'key-secret', ACCOUNT);
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const params = Object.fromEntries(new URLSearchParams(body));
        const valid = twilio.validateRequest(TOKEN, String(req.headers['x-twilio-signature']), hookUrl + req.url, params);
        received.push({ path: req.url ?? '', params, valid });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    await emu?.close();
    await new Promise((r) => hook?.close(r));
  });

  it('creates, fetches and cancels a call; callbacks are signed and follow StatusCallbackEvent', async () => {
    const client = twilioRestClient({ accountSid: ACCOUNT, secret: TOKEN, baseUrl: url });
    const call = await client.calls.create({
      to: '+14155550486', from: '+14155550100', twiml: '<Response><Say>Hi</Say></Response>',
      statusCallback: `${hookUrl}/status`, statusCallbackEvent: ['initiated', 'ringing', 'completed'],
    });
    expect(call.sid).toMatch(/^CA[0-9a-f]{32}$/);
    expect(call.status).toBe('queued');
    expect(call.direction).toBe('outbound-api');
    expect(emu.calls.get(call.sid)!.params.StatusCallbackEvent).toEqual(['initiated', 'ringing', 'completed']);
    await waitFor(() => received.some((r) => r.params.CallStatus === 'busy'), 5000, 'the busy callback');
    expect(received.map((r) => r.params.CallStatus)).toEqual(['queued', 'ringing', 'busy']);
    expect(received.every((r) => r.valid && r.params.Direction === 'outbound-api' && r.params.CallSid === call.sid)).toBe(true);
    expect((await client.calls(call.sid).fetch()).status).toBe('busy');

    // An API key authenticates for its account.
    const keyed = twilioRestClient({ accountSid: ACCOUNT, apiKeySid: KEY, secret: 'key-secret', baseUrl: url });
    const ringing = await keyed.calls.create({ to: '+14155550408', from: '+14155550100', twiml: '<Response/>' });
    expect((await keyed.calls(ringing.sid).update({ status: 'canceled' })).status).toBe('canceled');
  });

  it('errors arrive as RestException with Twilio\'s codes', async () => {
    const bad = twilioRestClient({ accountSid: ACCOUNT, secret: 'wrong', baseUrl: url });
    const e1 = await bad.calls.create({ to: '+14155550123', from: '+14155550100', twiml: '<Response/>' }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(RestException);
    expect(e1).toMatchObject({ status: 401, code: 20003, moreInfo: 'https://www.twilio.com/docs/errors/20003' });
    const client = twilioRestClient({ accountSid: ACCOUNT, secret: TOKEN, baseUrl: url });
    await expect(client.calls.create({ to: '12', from: '+14155550100', twiml: '<Response/>' })).rejects.toMatchObject({ status: 400, code: 21211 });
    await expect(client.calls.create({ to: '+14155550123', from: '+14155550100' } as never)).rejects.toMatchObject({ status: 400, code: 21205 });
    await expect(client.calls('CA' + '0'.repeat(32)).fetch()).rejects.toMatchObject({ status: 404, code: 20404 });
    const done = await client.calls.create({ to: '+14155550500', from: '+14155550100', twiml: '<Response/>' });
    await waitFor(() => emu.calls.get(done.sid)!.status === 'failed', 5000, 'failed');
    await expect(client.calls(done.sid).update({ twiml: '<Response><Hangup/></Response>' })).rejects.toMatchObject({ status: 400, code: 21220 });
    // Another account's key does not reach this account's calls.
    emu.addAccount('AC' + 'c'.repeat(32), 'other');
    const other = twilioRestClient({ accountSid: 'AC' + 'c'.repeat(32), secret: 'other', baseUrl: url });
    await expect(other.calls(done.sid).fetch()).rejects.toMatchObject({ status: 404 });
  });
});
