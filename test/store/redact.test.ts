import { describe, expect, it } from 'vitest';
import { luhnValid, redactPii } from '../../src/store/redact.js';

describe('redactPii', () => {
  it.each([
    ['my card is 4111 1111 1111 1111 thanks', 'my card is [card] thanks'],
    ['card 4111-1111-1111-1111.', 'card [card].'],
    ['amex 378282246310005', 'amex [card]'],
    ['ssn 123-45-6789 ok', 'ssn [ssn] ok'],
    ['ssn 123 45 6789', 'ssn [ssn]'],
    ['mail john.smith+x@example.co.uk now', 'mail [email] now'],
    ['it is john dot smith at example dot com', 'it is [email]'],
    ['call (415) 555-0123 or +1 415 555 0123', 'call [phone] or [phone]'],
    ['call +14155550123', 'call [phone]'],
    ['my number is 415-555-0123', 'my number is [phone]'],
    ['four one one one one one one one one one one one one one one one', '[card]'],
    ['call me at five five five one two three four', 'call me at [phone]'],
  ])('%j → %j', (input, expected) => {
    expect(redactPii(input)).toBe(expected);
  });

  it.each([
    'order 42 of 2024 is ready',
    'it costs 19.99 dollars',
    'the year 1999 and 2000',
    'meet at 10:30 on 12/05',
    'version 1.2.3',
    'invalid ssn 000-12-3456',
  ])('leaves %j alone', (input) => {
    expect(redactPii(input)).toBe(input);
  });

  it('a 16-digit number failing Luhn is not called a card', () => {
    expect(luhnValid('4111111111111112')).toBe(false);
    expect(redactPii('ref 4111 1111 1111 1112')).not.toContain('[card]');
  });
});
