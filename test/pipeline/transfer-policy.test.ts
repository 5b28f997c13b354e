// The transfer allowlist: pattern grammar (what agent create/update accept),
// normalisation of what the model asks for, and matching.
import { describe, expect, it } from 'vitest';
import { decideTransfer, maskTarget, normalizeTarget, TRANSFER_TARGET_PATTERN, validTransferPattern } from '../../src/pipeline/transfer-policy.js';

describe('transfer target patterns', () => {
  it('accepts E.164 numbers, E.164 prefixes and sip: URIs with a user wildcard', () => {
    for (const p of ['+14155550123', '+1415555*', '+44*', 'sip:desk@pbx.example.com', 'sips:desk@pbx.example.com:5061', 'sip:*@pbx.example.com', 'sip:sales-*@pbx.example.com', 'sip:+14155550123@10.0.0.5', 'sip:100@[2001:db8::1]']) {
      expect(validTransferPattern(p), p).toBe(true);
    }
  });

  it('refuses anything broader or stranger', () => {
    for (const p of ['*', '+*', '+0123456', '14155550123', '+1 415 555 0123', '+1234567890123456', 'sip:desk@*', 'sip:desk@*.example.com', 'sip:*', 'sip:desk@pbx.example.com;transport=tcp',
      'sip:desk@pbx.example.com?Replaces=x', 'tel:+14155550123', 'http://x', 'sip:<desk>@pbx', 'sip:de sk@pbx.example.com', '']) {
      expect(validTransferPattern(p), p).toBe(false);
    }
  });

  it('is a valid Unicode-mode regular expression (as Ajv compiles patterns)', () => {
    expect(() => new RegExp(TRANSFER_TARGET_PATTERN, 'u')).not.toThrow();
  });
});

describe('transfer decisions', () => {
  const targets = ['+1415555*', '+442071234567', 'sip:desk@pbx.example.com', 'sip:*@support.example.com', 'sip:sales-*@pbx.example.com'];

  it('normalises spoken and formatted numbers, lower-cases SIP scheme and host', () => {
    expect(normalizeTarget(' +1 (415) 555-0123 ')).toBe('+14155550123');
    expect(normalizeTarget('tel:+1.415.555.0123')).toBe('+14155550123');
    expect(normalizeTarget('SIP:desk@PBX.Example.com')).toBe('sip:desk@pbx.example.com');
    expect(normalizeTarget('4155550123')).toBeNull(); // no country code: not guessed
    expect(normalizeTarget('sip:desk@pbx.example.com;transport=udp')).toBeNull();
    expect(normalizeTarget('sip:desk@pbx.example.com>, <sip:x@evil.example')).toBeNull();
  });

  it('allows only configured targets', () => {
    expect(decideTransfer(targets, '+1 415 555 0123')).toEqual({ allowed: true, target: '+14155550123' });
    expect(decideTransfer(targets, '+442071234567')).toEqual({ allowed: true, target: '+442071234567' });
    expect(decideTransfer(targets, 'sip:desk@pbx.example.com')).toEqual({ allowed: true, target: 'sip:desk@pbx.example.com' });
    expect(decideTransfer(targets, 'sip:anyone@support.example.com')).toEqual({ allowed: true, target: 'sip:anyone@support.example.com' });
    expect(decideTransfer(targets, 'sip:sales-emea@pbx.example.com')).toEqual({ allowed: true, target: 'sip:sales-emea@pbx.example.com' });

    for (const asked of ['+19005550199', '+14165550123', '+442071234568', '+4420712345670', 'sip:Desk@pbx.example.com', 'sip:desk@pbx.example.com:5070',
      'sips:desk@pbx.example.com', 'sip:desk@evil.example.com', 'sip:desk@pbx.example.com.evil.example', 'sip:support@pbx.example.com', 'sip:x@support.example.com.evil']) {
      expect(decideTransfer(targets, asked).allowed, asked).toBe(false);
    }
    expect(decideTransfer(targets, 'the front desk')).toEqual({ allowed: false, reason: 'malformed' });
    expect(decideTransfer(targets, '+19005550199')).toEqual({ allowed: false, reason: 'not_allowed' });
  });

  it('refuses every transfer when no targets are configured', () => {
    expect(decideTransfer(undefined, '+14155550123')).toEqual({ allowed: false, reason: 'no_targets' });
    expect(decideTransfer([], '+14155550123')).toEqual({ allowed: false, reason: 'no_targets' });
  });

  it('masks targets for the log', () => {
    expect(maskTarget('+19005550199')).toBe('+1900…(12)');
    expect(maskTarget('+1 900 555 0199')).toBe('+1900…(12)');
    expect(maskTarget('sip:someone@pbx.example.com')).toBe('****@pbx.example.com');
  });
});
