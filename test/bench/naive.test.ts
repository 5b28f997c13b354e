// The naive baseline server `npm run load` measures beside ours (issue 14,
// need 4) is driven by the same simulated Twilio callers: it answers the
// webhook with <Connect><Stream>, greets, plays a reply after the caller speaks, and
// ends each sentence with a `.end` mark, so the callers split their gaps
// inside a segment from gaps across a segment end, and every frame it sent
// reaches a caller.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNaiveServer, type NaiveServer } from '../../bench/naive/server.js';
import { TwilioCaller } from '../../src/twilio/caller.js';
import { synthesize } from '../../src/providers/emulators/voice.js';

describe('naive baseline server', () => {
  let server: NaiveServer;
  beforeAll(async () => {
    server = await startNaiveServer({ greeting: ['Hi.'], reply: ['Sure.', 'Two people.'], replyAfterSilenceMs: 200 });
  });
  afterAll(() => server.close());

  it('plays a reply to three simulated callers, sentence by sentence, every frame received', async () => {
    const callers = [0, 1, 2].map(() => new TwilioCaller({ baseUrl: server.url, authToken: 'unused', to: '+15550000000' }));
    const dialed = await Promise.all(callers.map((c) => c.dial()));
    expect(dialed.map((d) => d.outcome)).toEqual(['connected', 'connected', 'connected']);
    for (const c of callers) c.speak(synthesize('Hello there.'));
    // The greeting; the caller's speech (~0.8 s), the silence gate, then two short sentences.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !callers.every((c) => c.events.filter((e) => e.name?.endsWith('.end')).length >= 3)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(callers.map((c) => c.hangup(300)));
    const received = callers.reduce((n, c) => n + c.stats.frames, 0);
    expect(server.stats.calls).toBe(3);
    expect(server.stats.framesReceived).toBeGreaterThan(0);
    expect(received).toBeGreaterThan(0);
    expect(received).toBe(server.stats.framesSent);
    for (const c of callers) {
      const ends = c.events.filter((e) => e.event === 'mark' && e.name?.endsWith('.end')).map((e) => e.name);
      expect(ends).toEqual(['1.0.end', '2.0.end', '2.1.end']);
      // Two gaps cross a segment end (greeting → reply, first → second sentence); the rest are inside one.
      expect(c.betweenSegmentGaps).toHaveLength(2);
      expect(c.inSegmentGaps.length).toBe(c.gaps.length - 2);
      expect(c.inSegmentGaps.length).toBeGreaterThan(10);
      expect(c.stats.nonSilent).toBeGreaterThan(0);
    }
  });
});
