import { describe, expect, it } from 'vitest';
import { SentenceSplitter, speakable } from '../../src/pipeline/sentences.js';

/** Feeds text in small tokens (as an LLM streams) and collects every chunk. */
function split(text: string, tokenSize = 3, opts = {}): string[] {
  const s = new SentenceSplitter(opts);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += tokenSize) out.push(...s.push(text.slice(i, i + tokenSize)));
  out.push(...s.flush());
  return out;
}

describe('SentenceSplitter', () => {
  it('splits plain sentences and emits each as soon as it is complete', () => {
    const s = new SentenceSplitter({ firstClauseMinWords: 100 });
    expect(s.push('Hello there. How')).toEqual(['Hello there.']);
    expect(s.push(' are you?')).toEqual([]);
    expect(s.push(' Fine')).toEqual(['How are you?']);
    expect(s.flush()).toEqual(['Fine']);
  });

  it('sends the first clause early once it has a few words', () => {
    const s = new SentenceSplitter();
    expect(s.push('Sure, ')).toEqual([]);
    expect(s.push('I can help you with that, ')).toEqual(['Sure, I can help you with that,']);
    expect(s.push('but first, tell me more.')).toEqual([]);
    expect(s.flush()).toEqual(['but first, tell me more.']);
  });

  it('the first clause may be two words ("Of course,", "You said:"), never one; only the first chunk ends at a clause', () => {
    const s = new SentenceSplitter();
    expect(s.push('Of course, ')).toEqual(['Of course,']);
    expect(s.push('a table for three, ')).toEqual([]);
    expect(s.push('at seven.')).toEqual([]);
    expect(s.flush()).toEqual(['a table for three, at seven.']);
    expect(split('You said: Hi, I would like a table.', 1)).toEqual(['You said:', 'Hi, I would like a table.']);
    expect(split('Okay, so two people.', 1)).toEqual(['Okay, so two people.']);
  });

  it('does not split abbreviations, initials, decimals, times, URLs or e-mails', () => {
    const text =
      'Dr. Smith and Mrs. Jones arrive at 10:30 a.m. tomorrow. It costs 3.75 dollars, e.g. about 3.8. ' +
      'Visit www.example.com/help or mail help@example.com today. J. R. Tolkien wrote it.';
    expect(split(text, 2, { firstClauseMinWords: 100 })).toEqual([
      'Dr. Smith and Mrs. Jones arrive at 10:30 a.m. tomorrow.',
      'It costs 3.75 dollars, e.g. about 3.8.',
      'Visit www.example.com/help or mail help@example.com today.',
      'J. R. Tolkien wrote it.',
    ]);
  });

  it('ends a sentence after a terminal abbreviation followed by a capital', () => {
    expect(split('We open at 9 a.m. Please call then.', 4, { firstClauseMinWords: 100 })).toEqual([
      'We open at 9 a.m.',
      'Please call then.',
    ]);
  });

  it('keeps numbered list markers with their item and splits list lines', () => {
    expect(split('Options:\n1. Pay online.\n2. Pay by phone.', 3, { firstClauseMinWords: 100 })).toEqual([
      'Options:',
      '1. Pay online.',
      '2. Pay by phone.',
    ]);
  });

  it('handles ellipses and question/exclamation marks', () => {
    expect(split('Well... let me see. Really?! Yes!', 2, { firstClauseMinWords: 100 })).toEqual([
      'Well... let me see.',
      'Really?!',
      'Yes!',
    ]);
  });

  it('cuts over-long sentences at a clause boundary', () => {
    const long = 'This is a very long sentence with many words, ' .repeat(8) + 'and it ends here.';
    const chunks = split(long, 5, { maxChunkChars: 120, firstClauseMinWords: 100 });
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.every((c) => c.length <= 170)).toBe(true);
    expect(chunks.join(' ')).toBe(speakable(long));
  });

  it('loses no text whatever the token size', () => {
    const text = 'First one. Second, with a clause; and more: yes. Third? Fourth! 4.5 percent. Done';
    for (const size of [1, 2, 3, 7, 50]) {
      expect(split(text, size).join(' ')).toBe(text);
    }
  });

  it('reset drops pending text', () => {
    const s = new SentenceSplitter();
    s.push('Half a sent');
    s.reset();
    expect(s.flush()).toEqual([]);
  });
});

describe('speakable', () => {
  it('strips markdown and bullets', () => {
    expect(speakable('**Note:** use `npm` and [the docs](http://x.y)')).toBe('Note: use npm and the docs');
    expect(speakable('- one\n- two')).toBe('one two');
    expect(speakable('## Title\ntext')).toBe('Title text');
  });
});
