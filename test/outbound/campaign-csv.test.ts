// The contact upload's CSV reader and the calling window, in isolation: the
// RFC 4180 cases, a round trip of random tables, the hostile-input property
// over seeded fuzz cases (bench/fuzz/csv.ts), and windows across zones,
// daylight-saving changes and midnight.
import { describe, expect, it } from 'vitest';
import { CsvError, parseCsv } from '../../src/outbound/csv.js';
import { isOpen, isTimeZone, type CallWindow } from '../../src/outbound/campaign-window.js';
import { checkCsvParser } from '../../bench/fuzz/csv.js';
import { Rand } from '../../bench/fuzz/random.js';

describe('CSV reader', () => {
  it('reads RFC 4180: quotes, doubled quotes, line breaks inside quotes, CRLF/LF/CR, BOM, blank lines', () => {
    const t = parseCsv('\ufeffto,name\r\n+1,"a, b"\r\n\r\n+2,"say ""hi"""\n+3,"two\r\nlines"\r+4,\n');
    expect(t.header).toEqual(['to', 'name']);
    expect(t.rows).toEqual([
      { line: 2, fields: ['+1', 'a, b'] },
      { line: 4, fields: ['+2', 'say "hi"'] },
      { line: 5, fields: ['+3', 'two\r\nlines'] },
      { line: 7, fields: ['+4', ''] },
    ]);
    expect(parseCsv('to').rows).toEqual([]);
  });

  it('names the line and the defect', () => {
    const cases: [string, CsvError['reason'], number][] = [
      ['to\n"+1', 'unterminated_quote', 2],
      ['to\n+1"', 'stray_quote', 2],
      ['to\n"+1"x', 'stray_quote', 2],
      ['to,a\n+1,x\n+2', 'field_count', 3],
      ['to\n+1\0', 'binary', 2],
      ['', 'empty', 1],
      ['\n\n', 'empty', 1],
    ];
    for (const [text, reason, line] of cases) {
      let err: unknown;
      try {
        parseCsv(text);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(text)).toBeInstanceOf(CsvError);
      expect((err as CsvError).reason, JSON.stringify(text)).toBe(reason);
      expect((err as CsvError).line, JSON.stringify(text)).toBe(line);
    }
  });

  it('bounds rows, columns and field length', () => {
    const limits = { maxRows: 3, maxColumns: 3, maxField: 5 };
    expect(() => parseCsv('to\n1\n2\n3\n4', limits)).toThrow(/more than 3 rows/);
    expect(() => parseCsv('a,b,c,d\n', limits)).toThrow(/more than 3 columns/);
    expect(() => parseCsv('to\n123456', limits)).toThrow(/longer than 5/);
    expect(() => parseCsv('to\n"123456"', limits)).toThrow(/longer than 5/);
    expect(parseCsv('to\n"12""45"', limits).rows[0].fields).toEqual(['12"45']);
  });

  it('reads back any table written with RFC 4180 quoting', () => {
    const r = new Rand(20261201);
    const alphabet = ['a', 'Z', '0', ' ', ',', '"', '\n', '\r\n', 'é', '☎'];
    for (let n = 0; n < 500; n++) {
      const cols = r.range(1, 5);
      const table = Array.from({ length: r.range(1, 6) }, () => Array.from({ length: cols }, () => Array.from({ length: r.int(6) }, () => r.pick(alphabet)).join('')));
      // A one-column row holding '' would be a blank line (skipped): give it text.
      if (cols === 1) for (const row of table) row[0] ||= 'x';
      const text = table.map((row) => row.map((f) => (/[",\r\n]/.test(f) || r.chance(0.3) ? `"${f.replace(/"/g, '""')}"` : f)).join(',')).join(r.pick(['\n', '\r\n'])) + (r.chance(0.5) ? '\n' : '');
      const t = parseCsv(text);
      expect([t.header, ...t.rows.map((x) => x.fields)]).toEqual(table);
    }
  });

  it('hostile input: a table or a CsvError, and the upload a 422, never anything else (seeded, bench/fuzz/csv.ts)', () => {
    const res = checkCsvParser(new Rand(17_06), 2000);
    expect(res.violations).toEqual([]);
    // Both sides of the property were exercised.
    expect(res.parsed).toBeGreaterThan(100);
    expect(res.parsed).toBeLessThan(res.cases);
  });
});

describe('calling window', () => {
  const weekdays: CallWindow = { timezone: 'America/New_York', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '20:00' };

  it('reads the callee\'s wall clock, daylight saving included', () => {
    // Monday 2026-03-09 (EDT, UTC-4): 09:00 local is 13:00Z.
    expect(isOpen(weekdays, new Date('2026-03-09T12:59:00Z'))).toBe(false);
    expect(isOpen(weekdays, new Date('2026-03-09T13:00:00Z'))).toBe(true);
    expect(isOpen(weekdays, new Date('2026-03-09T23:59:00Z'))).toBe(true);
    expect(isOpen(weekdays, new Date('2026-03-10T00:00:00Z'))).toBe(false); // 20:00 local: the end is exclusive
    // Monday 2026-03-02 (EST, UTC-5): 09:00 local is 14:00Z.
    expect(isOpen(weekdays, new Date('2026-03-02T13:30:00Z'))).toBe(false);
    expect(isOpen(weekdays, new Date('2026-03-02T14:00:00Z'))).toBe(true);
    // Saturday: closed all day; Friday 19:59 local open.
    expect(isOpen(weekdays, new Date('2026-03-07T15:00:00Z'))).toBe(false);
    expect(isOpen(weekdays, new Date('2026-03-06T23:59:00Z'))).toBe(true);
  });

  it('runs a window over midnight on the day it opens, and 24:00 to the end of the day', () => {
    const night: CallWindow = { timezone: 'Asia/Tokyo', days: ['fri'], start: '22:00', end: '02:00' };
    // Friday 2026-03-06 22:30 JST = 13:30Z; Saturday 01:30 JST = Friday 16:30Z; Saturday 22:30 JST closed.
    expect(isOpen(night, new Date('2026-03-06T13:30:00Z'))).toBe(true);
    expect(isOpen(night, new Date('2026-03-06T16:30:00Z'))).toBe(true);
    expect(isOpen(night, new Date('2026-03-06T17:00:00Z'))).toBe(false);
    expect(isOpen(night, new Date('2026-03-07T13:30:00Z'))).toBe(false);
    expect(isOpen(night, new Date('2026-03-05T16:30:00Z'))).toBe(false); // Friday 01:30: Thursday's window, not listed
    const allDay: CallWindow = { timezone: 'UTC', days: ['sun'], start: '00:00', end: '24:00' };
    expect(isOpen(allDay, new Date('2026-03-08T23:59:59Z'))).toBe(true);
    expect(isOpen(allDay, new Date('2026-03-09T00:00:00Z'))).toBe(false);
  });

  it('knows IANA zones and nothing else', () => {
    expect(isTimeZone('Europe/Paris')).toBe(true);
    expect(isTimeZone('UTC')).toBe(true);
    for (const bad of ['Mars/Base', '', 'Europe/Paris\0', 'x'.repeat(100), '+05:00/../etc']) expect(isTimeZone(bad), bad).toBe(false);
  });
});
