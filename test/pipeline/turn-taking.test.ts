import { describe, expect, it } from 'vitest';
import { classifyTail, requiredSilenceMs, TurnDetector, type TurnCommit } from '../../src/pipeline/turn-taking.js';

describe('classifyTail', () => {
  it.each([
    ['I would like to book a table.', 'normal'],
    ['I was born in 1990', 'normal'],
    ['my card number is 4111 1111', 'digits'],
    ['it is five five five', 'digits'],
    ['my card number is 4111', 'digits'],
    ['the code is 12', 'digits'],
    ['my name is J O H', 'spelling'],
    ['that is j. s. m', 'spelling'],
    ['my email is john at', 'email'],
    ['john dot smith at example dot', 'email'],
    ['it is john@', 'email'],
    ['I want a', 'normal'],
    ['', 'normal'],
  ])('%j → %s', (text, kind) => {
    expect(classifyTail(text)).toBe(kind);
  });

  it('asks for more silence after digits', () => {
    expect(requiredSilenceMs('call me at 555 1234')).toBeGreaterThan(requiredSilenceMs('call me tomorrow'));
  });
});

describe('TurnDetector', () => {
  function setup() {
    const commits: TurnCommit[] = [];
    const d = new TurnDetector((c) => commits.push(c), { silenceMs: 400, slowSilenceMs: 1400, sttGraceMs: 700 });
    return { d, commits };
  }

  it('commits after the STT endpoint and enough VAD silence', () => {
    const { d, commits } = setup();
    d.speechStart();
    d.transcript('book a', false, false);
    d.transcript('book a table for two', true, true);
    d.speechEnd(1000);
    d.tick(1200);
    expect(commits).toEqual([]);
    d.tick(1400);
    expect(commits).toEqual([{ text: 'book a table for two', speechEndMs: 1000, commitMs: 1400, reason: 'endpoint' }]);
    d.tick(3000);
    expect(commits.length).toBe(1);
  });

  it('does not commit while the caller speaks or an interim is pending', () => {
    const { d, commits } = setup();
    d.speechStart();
    d.transcript('hello', true, true);
    d.tick(5000);
    d.speechEnd(5000);
    d.transcript('there', false, false);
    d.tick(9000);
    expect(commits).toEqual([]);
    d.transcript('there', true, true);
    d.tick(9020);
    expect(commits[0].text).toBe('hello there');
  });

  it('waits longer when the caller is reading digits', () => {
    const { d, commits } = setup();
    d.speechStart();
    d.transcript('my card number is 4111 1111', true, true);
    d.speechEnd(0);
    d.tick(800);
    expect(commits).toEqual([]);
    d.speechStart();
    d.transcript('1111 1111', true, true);
    d.speechEnd(2000);
    d.tick(3000);
    expect(commits).toEqual([]);
    d.tick(3400);
    expect(commits[0].text).toBe('my card number is 4111 1111 1111 1111');
  });

  it('falls back to silence alone when the STT never endpoints', () => {
    const { d, commits } = setup();
    d.speechStart();
    d.transcript('is anyone there', true, false);
    d.speechEnd(0);
    d.tick(500);
    expect(commits).toEqual([]);
    d.tick(1100);
    expect(commits[0].reason).toBe('silence');
  });

  it('an UtteranceEnd counts as the STT endpoint', () => {
    const { d, commits } = setup();
    d.speechStart();
    d.transcript('yes please', true, false);
    d.speechEnd(0);
    d.utteranceEnd();
    d.tick(400);
    expect(commits[0].reason).toBe('endpoint');
  });
});
