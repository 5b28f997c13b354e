// Hostile CSV for the campaign contact upload (src/outbound/csv.ts): valid
// tables (quoted fields with commas, quotes, line breaks; CRLF, LF, lone CR;
// a BOM) and the ways such files break — unterminated and stray quotes,
// ragged rows, NULs, invalid UTF-8, huge fields, thousands of columns or
// rows, prototype-key headers — then byte-mutated. Sent to
// POST /v1/campaigns/{id}/contacts by the HTTP boundary (http.ts), and fed to
// the parser directly by checkCsvParser (test/outbound/campaign-csv.test.ts).
import type { Rand } from './random.js';
import { CsvError, parseCsv } from '../../src/outbound/csv.js';
import { contactsFromCsv } from '../../src/outbound/campaign-api.js';
import { HttpError } from '../../src/server/http.js';

const HEADERS = ['to', 'To', ' to ', 'name', 'when', '__proto__', 'constructor', 'to', '', '1x', 'a-b', 'x'.repeat(70), '"to"'];
const VALUES = ['+14155550100', '+1415555', '+999999999999999', '4155550100', '', ' ', 'Ada', 'Lovelace, Ada', 'say "hi"', 'line\nbreak', 'cr\rhere', '\u0000', '\ufeff', '\ud800', '=cmd|calc!A1'];

function field(r: Rand, v: string): string {
  const needs = /[",\r\n]/.test(v);
  if (needs || r.chance(0.2)) return `"${v.replace(/"/g, '""')}"`;
  return v;
}

/** One CSV body, valid or damaged. */
export function hostileCsv(r: Rand): Buffer {
  const cols = r.chance(0.05) ? r.pick([60, 1000, 5000]) : r.range(1, 4);
  const header = Array.from({ length: cols }, (_, i) => (i === 0 && r.chance(0.8) ? 'to' : r.pick(HEADERS)));
  // Wide or long, not both: the API takes at most 256 KiB, and so does this.
  const rows = cols > 4 ? r.range(0, 3) : r.chance(0.05) ? r.pick([2000, 10_001]) : r.range(0, 6);
  const eol = r.pick(['\r\n', '\n', '\r']);
  const lines = [header.map((h) => field(r, h)).join(',')];
  for (let i = 0; i < rows; i++) {
    const n = r.chance(0.1) ? r.range(0, cols + 2) : cols;
    lines.push(Array.from({ length: n }, (_, j) => field(r, j === 0 ? `+1415${String(5_550_000 + r.int(9999))}` : r.pick(VALUES))).join(','));
  }
  let text = (r.chance(0.2) ? '\ufeff' : '') + lines.join(eol) + (r.chance(0.5) ? eol : '');
  switch (r.int(10)) {
    case 0: text += '"unterminated'; break;
    case 1: text = text.replace(',', ',x"y'); break;
    case 2: text += `${eol}"a""b"c,d`; break;
    case 3: text += `${eol}${'x'.repeat(r.pick([1001, 100_000]))}`; break;
    case 4: text += `${eol}"${'"'.repeat(r.pick([1, 2, 999, 5000]))}`; break;
    case 5: text = '\n'.repeat(r.pick([1, 1000])) + text; break;
    default: break;
  }
  let body: Buffer = Buffer.from(text, 'utf8');
  if (r.chance(0.15)) body = Buffer.concat([body, r.bytes(r.range(1, 32))]); // invalid UTF-8, NULs
  if (r.chance(0.25)) body = r.mutate(body, r.range(1, 8));
  return body;
}

/**
 * The parser's properties over `cases` hostile inputs: it returns a table or
 * throws a CsvError (never anything else); every row has the header's width;
 * the upload reader answers contacts or a 422, never another error.
 */
export function checkCsvParser(r: Rand, cases: number): { cases: number; parsed: number; violations: string[] } {
  const violations: string[] = [];
  let parsed = 0;
  for (let i = 0; i < cases; i++) {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(hostileCsv(r));
    try {
      const t = parseCsv(text);
      parsed++;
      if (t.rows.some((row) => row.fields.length !== t.header.length)) violations.push(`ragged row accepted: ${JSON.stringify(text.slice(0, 200))}`);
    } catch (err) {
      if (!(err instanceof CsvError)) violations.push(`${(err as Error).name}: ${(err as Error).message} on ${JSON.stringify(text.slice(0, 200))}`);
    }
    try {
      contactsFromCsv(text);
    } catch (err) {
      if (!(err instanceof HttpError && err.status === 422)) violations.push(`upload: ${(err as Error).name}: ${(err as Error).message} on ${JSON.stringify(text.slice(0, 200))}`);
    }
    if (violations.length >= 10) break;
  }
  return { cases, parsed, violations };
}
