// SIP INFO DTMF bodies: application/dtmf-relay and application/dtmf.
import { describe, expect, it } from 'vitest';
import { infoDigit } from '../../sip/call.js';

describe('infoDigit', () => {
  it('reads dtmf-relay Signal lines and bare application/dtmf digits, event codes 10/11 as * and #', () => {
    expect(infoDigit('application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n')).toBe('5');
    expect(infoDigit('Application/DTMF-Relay; charset=utf-8', 'Signal= #\r\n')).toBe('#');
    expect(infoDigit('application/dtmf-relay', 'Signal=11\r\n')).toBe('#');
    expect(infoDigit('application/dtmf', ' a ')).toBe('A');
    expect(infoDigit('application/dtmf', '10')).toBe('*');
  });

  it('refuses other bodies and types', () => {
    expect(infoDigit('application/dtmf-relay', 'Duration=160')).toBeNull();
    expect(infoDigit('application/dtmf-relay', 'Signal=12')).toBeNull();
    expect(infoDigit('text/plain', '5')).toBeNull();
    expect(infoDigit(undefined, '')).toBeNull();
  });
});
