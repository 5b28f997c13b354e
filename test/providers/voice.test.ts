// The emulators' synthetic voice: deterministic per text, and (kept for texts
// said again) every caller gets a buffer of its own.
import { describe, expect, it } from 'vitest';
import { synthesize } from '../../src/providers/emulators/voice.js';

describe('synthesize', () => {
  it('gives the same samples for the same text, in a fresh buffer each time', () => {
    const a = synthesize('Thanks for calling, how can I help?');
    const b = synthesize('Thanks for calling, how can I help?');
    expect(b).toEqual(a);
    expect(b).not.toBe(a);
    a.fill(0xff); // a caller that writes into its copy changes nothing for the next
    expect(synthesize('Thanks for calling, how can I help?')).toEqual(b);
    expect(synthesize('Something else entirely.')).not.toEqual(b);
  });

  it('still synthesizes the same after many different texts (the kept set is bounded)', () => {
    const first = synthesize('First sentence said.');
    // ~300 texts of ~100 KB each: more than the 16 MB kept, so the first one is dropped and made again.
    for (let i = 0; i < 300; i++) synthesize(`Sentence number ${i} is a rather long one, said slowly, to make the audio large enough.`.repeat(2));
    expect(synthesize('First sentence said.')).toEqual(first);
  });
});
