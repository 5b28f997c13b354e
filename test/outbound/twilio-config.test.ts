// The Twilio REST settings: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or an
// API key pair (TWILIO_API_KEY/TWILIO_API_SECRET), and TWILIO_API_URL: the
// carrier calls that base with those credentials (here an emulator run on
// its own, standing in for api.twilio.com); bad values stop startup naming
// the variable; EMULATORS=off with no account leaves Twilio outbound off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startTestApp } from '../helpers/app.js';
import { freshDatabase } from '../helpers/databases.js';
import { loadConfig } from '../../src/config.js';
import { OutboundDialer } from '../../src/outbound/dialer.js';
import { startTwilioRestEmulator } from '../../src/providers/emulators/index.js';
import type { TwilioRestEmulator } from '../../src/providers/emulators/twilio-rest.js';

const ACCOUNT = 'AC' + '1234567890abcdef'.repeat(2);
const KEY = 'SK' + 'fedcba0987654321'.repeat(2);

describe('Twilio REST configuration', () => {
  let emu: TwilioRestEmulator;
  let url: string;
  beforeAll(async () => {
    ({ emulator: emu, url } = await startTwilioRestEmulator({ ringMs: 20 }));
    emu.addAccount(ACCOUNT, 'test-auth-token');
    emu.addApiKey(KEY, 'key-secret', ACCOUNT);
  });
  afterAll(async () => {
    await emu?.close();
  });

  it('refuses bad values, naming the variable', () => {
    expect(() => loadConfig({ TWILIO_ACCOUNT_SID: 'AC123' })).toThrow(/TWILIO_ACCOUNT_SID/);
    expect(() => loadConfig({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_API_KEY: KEY })).toThrow(/TWILIO_API_SECRET/);
    expect(() => loadConfig({ TWILIO_API_KEY: KEY, TWILIO_API_SECRET: 'x' })).toThrow(/TWILIO_ACCOUNT_SID/);
    expect(() => loadConfig({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_API_KEY: 'SKnope', TWILIO_API_SECRET: 'x' })).toThrow(/TWILIO_API_KEY/);
    expect(() => loadConfig({ TWILIO_API_URL: 'ftp://x' })).toThrow(/TWILIO_API_URL/);
    expect(loadConfig({}).twilioApiUrl).toBe('https://api.twilio.com');
  });

  for (const [name, env] of [
    ['account SID and auth token', { TWILIO_ACCOUNT_SID: ACCOUNT }],
    ['API key pair', { TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_API_KEY: KEY, TWILIO_API_SECRET: 'key-secret' }],
  ] as const) {
    it(`places calls at TWILIO_API_URL with the ${name}`, async () => {
      // WORKERS=1: the test reads this thread's Twilio carrier and dials with this thread's dialer;
      // with AYBIZA_TEST_WORKERS > 1 the carriers are the workers'.
      const t = await startTestApp({ DATABASE_URL: await freshDatabase(), EMULATORS: 'auto', TWILIO_API_URL: url, ...env, WORKERS: '1' });
      try {
        expect(t.app.twilioCarrier).not.toBeNull();
        await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
        const dialer = OutboundDialer.for(t.app.store);
        const before = emu.stats.created;
        const call = await dialer.dial(t.tenantId, { agentId: t.agentId, to: '+14155550486', from: '+14155550100', via: 'twilio' });
        expect(emu.stats.created).toBe(before + 1);
        expect(emu.calls.get(call.externalId)!.accountSid).toBe(ACCOUNT);
        // Its status callbacks are signed with TWILIO_AUTH_TOKEN, which the gateway checks.
        expect((await dialer.whenFinal(call.id, 10_000)).status).toBe('busy');
      } finally {
        await t.stop();
      }
    }, 60_000);
  }

  it('EMULATORS=off with no Twilio account: outbound over Twilio is off (422 naming via)', async () => {
    // WORKERS=1: as above, this thread's carrier and dialer.
    const t = await startTestApp({ DATABASE_URL: await freshDatabase(), EMULATORS: 'off', DEEPGRAM_URL: 'http://127.0.0.1:9', BEDROCK_ENDPOINT: 'http://127.0.0.1:9', AWS_REGION: 'us-east-1', WORKERS: '1' });
    try {
      expect(t.app.twilioCarrier).toBeNull();
      await t.app.store.tenants.update(ADMIN, t.tenantId, { outbound: { allowedCountries: ['US'] } });
      await expect(OutboundDialer.for(t.app.store).dial(t.tenantId, { agentId: t.agentId, to: '+14155550123', from: '+14155550100', via: 'twilio' }))
        .rejects.toMatchObject({ field: 'via' });
    } finally {
      await t.stop();
    }
  }, 60_000);
});
