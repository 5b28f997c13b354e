// A strict RFC 4180 reader for campaign contact uploads (text/csv). The input
// is hostile: one pass over the text with no backtracking and no regular
// expression over a whole line, every dimension bounded (rows, columns, field
// length), and each defect a CsvError naming the line, so a client sees where
// its file broke and the server never spends more than linear time on it.
// Accepted: a UTF-8 byte-order mark, CRLF or LF line ends, blank lines
// (skipped), quoted fields with "" for a quote and line breaks inside quotes.
// Refused: a quote inside an unquoted field, text after a closing quote, an
// unterminated quote, a row whose field count differs from the header's.

export interface CsvLimits {
  /** Data rows (the header not counted). */
  maxRows: number;
  maxColumns: number;
  /** Characters per field. */
  maxField: number;
}

export const DEFAULT_CSV_LIMITS: CsvLimits = { maxRows: 10_000, maxColumns: 50, maxField: 1000 };

export class CsvError extends Error {
  constructor(
    readonly line: number,
    readonly reason: 'unterminated_quote' | 'stray_quote' | 'field_count' | 'too_many_rows' | 'too_many_columns' | 'field_too_long' | 'empty' | 'binary',
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'CsvError';
  }
}

export interface CsvTable {
  header: string[];
  /** Each row has exactly header.length fields; `line` is where the row starts (1-based, the header is line 1 or later). */
  rows: { line: number; fields: string[] }[];
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;

/** Parses `text` into a header and rows; throws CsvError on the first defect. */
export function parseCsv(text: string, limits: CsvLimits = DEFAULT_CSV_LIMITS): CsvTable {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  let line = 1;
  let header: string[] | null = null;
  const rows: CsvTable['rows'] = [];
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    // One record: fields until an unquoted line end or the end of the text.
    for (;;) {
      let value: string;
      if (text.charCodeAt(i) === QUOTE) {
        const parts: string[] = [];
        let from = ++i;
        let length = 0;
        for (;;) {
          if (i >= n) throw new CsvError(start, 'unterminated_quote', 'a quoted field is not closed');
          const c = text.charCodeAt(i);
          if (c === QUOTE) {
            if (text.charCodeAt(i + 1) === QUOTE) {
              parts.push(text.slice(from, i + 1));
              i += 2;
              from = i;
              length++;
              continue;
            }
            break;
          }
          if (c === LF) line++;
          i++;
          if (++length > limits.maxField) throw new CsvError(start, 'field_too_long', `a field is longer than ${limits.maxField} characters`);
        }
        parts.push(text.slice(from, i));
        value = parts.join('');
        i++; // the closing quote
        const next = i < n ? text.charCodeAt(i) : LF;
        if (next !== COMMA && next !== LF && next !== CR) throw new CsvError(line, 'stray_quote', 'text after a closing quote');
      } else {
        const from = i;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === COMMA || c === LF || c === CR) break;
          if (c === QUOTE) throw new CsvError(line, 'stray_quote', 'a quote inside an unquoted field (quote the whole field and double the quote)');
          if (c === 0) throw new CsvError(line, 'binary', 'a NUL character (is this a CSV file?)');
          i++;
        }
        if (i - from > limits.maxField) throw new CsvError(line, 'field_too_long', `a field is longer than ${limits.maxField} characters`);
        value = text.slice(from, i);
      }
      if (value.includes('\0')) throw new CsvError(line, 'binary', 'a NUL character (is this a CSV file?)');
      fields.push(value);
      if (fields.length > limits.maxColumns) throw new CsvError(line, 'too_many_columns', `more than ${limits.maxColumns} columns`);
      if (i < n && text.charCodeAt(i) === COMMA) {
        i++;
        continue;
      }
      break;
    }
    // The line end (CRLF, LF, or a lone CR as old Mac files have).
    if (i < n && text.charCodeAt(i) === CR) i++;
    if (i < n && text.charCodeAt(i) === LF) i++;
    line++;
    if (fields.length === 1 && fields[0] === '') continue; // a blank line
    if (!header) {
      header = fields;
      continue;
    }
    if (fields.length !== header.length) {
      throw new CsvError(start, 'field_count', `${fields.length} fields where the header has ${header.length}`);
    }
    if (rows.length >= limits.maxRows) throw new CsvError(start, 'too_many_rows', `more than ${limits.maxRows} rows in one upload`);
    rows.push({ line: start, fields });
  }
  if (!header) throw new CsvError(1, 'empty', 'no header row');
  return { header, rows };
}
