// A failure inside a Media Streams callback ends only that socket (1011),
// is counted in aybiza_internal_errors_total{where="ws"}, and the next
// socket is served as usual (issue 13, item 1).
import twilio from 'twilio';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uws, type us_listen_socket } from '../../src/server/uws.js';
import { mountMediaStream } from '../../src/twilio/media-stream.js';
import { registry } from '../../src/metrics/index.js';

const TOKEN = 'ws-guard-token';

async function internalErrors(where: string): Promise<number> {
  const m = (await registry.getSingleMetric('aybiza_internal_errors_total')?.get())?.values.find((v) => v.labels.where === where);
  return m?.value ?? 0;
}

describe('Media Streams callbacks under the guard', () => {
  const app = uws.App();
  let listen: us_listen_socket | false = false;
  let url = '';
  let closedHookCalls = 0;
  beforeAll(async () => {
    listen = await new Promise<us_listen_socket | false>((r) => app.listen('127.0.0.1', 0, r));
    url = `ws://127.0.0.1:${uws.us_socket_local_port(listen as never)}/media`;
    mountMediaStream(app, '/media', url, () => TOKEN, {
      start: (callSid) => {
        if (callSid === 'CAthrows') throw new Error('start hook failed synchronously');
        return Promise.resolve('unknown_call');
      },
      closed: () => {
        closedHookCalls++;
        throw new Error('closed hook failed');
      },
    });
  });
  afterAll(() => {
    if (listen) uws.us_listen_socket_close(listen);
    (app as unknown as { close?: () => void }).close?.();
  });

  function connect(): Promise<WebSocket> {
    const ws = new WebSocket(url, { headers: { 'x-twilio-signature': twilio.getExpectedTwilioSignature(TOKEN, url, {}) } });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  }
  const closed = (ws: WebSocket) => new Promise<number>((r) => ws.once('close', (code) => r(code)));
  const start = (callSid: string) => JSON.stringify({ event: 'start', streamSid: 'MZ1', start: { streamSid: 'MZ1', callSid, customParameters: { token: 't' } } });

  it('closes only the failing socket with 1011 and keeps serving others', async () => {
    const before = await internalErrors('ws');
    const bystander = await connect();
    const victim = await connect();
    const victimClosed = closed(victim);
    victim.send(start('CAthrows'));
    expect(await victimClosed).toBe(1011);
    expect(bystander.readyState).toBe(WebSocket.OPEN);
    // The bystander's start is handled normally (refused token: 1008).
    const bystanderClosed = closed(bystander);
    bystander.send(start('CAfine'));
    expect(await bystanderClosed).toBe(1008);
    // start threw once; the closed hook threw on each of the two closes.
    await new Promise((r) => setTimeout(r, 50));
    expect(closedHookCalls).toBeGreaterThanOrEqual(2);
    expect(await internalErrors('ws')).toBeGreaterThanOrEqual(before + 3);
    expect(await internalErrors('uncaught')).toBe(0);
  });
});
