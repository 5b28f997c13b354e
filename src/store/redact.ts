// PII redaction for stored transcripts: payment card numbers (Luhn-checked),
// US social security numbers, e-mail addresses and phone numbers, written as
// digits or spoken as words ("four one one one …").

const DIGIT_WORDS: Record<string, string> = {
  zero: '0', oh: '0', o: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9',
};

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

function validSsn(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && area[0] !== '9' && group !== '00' && serial !== '0000';
}

// Runs of digits with single spaces, dashes or dots between groups.
const DIGIT_RUN = /(?<![\w@.])\+?\d(?:[ \-.]?\d){6,22}(?![\w@])/g;
const SPOKEN_RUN = new RegExp(`\\b(?:${Object.keys(DIGIT_WORDS).join('|')})(?:[\\s,-]+(?:${Object.keys(DIGIT_WORDS).join('|')})){6,}\\b`, 'gi');
const EMAIL = /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g;
const SPOKEN_EMAIL = /\b[a-z0-9._-]+(?: (?:dot|underscore|dash) [a-z0-9]+)* at [a-z0-9-]+(?: dot [a-z0-9-]+)+\b/gi;
const SSN = /\b(\d{3})[- ](\d{2})[- ](\d{4})\b/g;
const PHONE_PUNCT = /(?<![\w])(?:\+?1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}\b/g;

function classifyDigits(raw: string): string | null {
  const digits = raw.replace(/\D/g, '');
  if (digits.length >= 13 && digits.length <= 19 && luhnValid(digits)) return '[card]';
  if (digits.length === 9) {
    const m = /^(\d{3})(\d{2})(\d{4})$/.exec(digits)!;
    if (/^\d{3}[- ]\d{2}[- ]\d{4}$/.test(raw.trim()) && validSsn(m[1], m[2], m[3])) return '[ssn]';
  }
  // 7 (local), 10 (NANP) to 15 (E.164 max) digits; 9 digits is an SSN shape, not a phone.
  if (digits.length >= 7 && digits.length <= 15 && digits.length !== 9) return '[phone]';
  return null;
}

export function redactPii(text: string): string {
  let out = text.replace(SPOKEN_RUN, (run) => {
    const digits = run
      .toLowerCase()
      .split(/[\s,-]+/)
      .map((w) => DIGIT_WORDS[w] ?? '')
      .join('');
    return classifyDigits(digits) ?? run;
  });
  out = out.replace(EMAIL, '[email]').replace(SPOKEN_EMAIL, '[email]');
  out = out.replace(SSN, (m, a: string, g: string, s: string) => (validSsn(a, g, s) ? '[ssn]' : m));
  out = out.replace(PHONE_PUNCT, '[phone]');
  out = out.replace(DIGIT_RUN, (run) => classifyDigits(run) ?? run);
  return out;
}
