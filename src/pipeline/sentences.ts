// Streaming sentence/clause splitter between the LLM and TTS.
// Tokens go in as they arrive; speakable chunks come out as soon as they are
// complete, so the first sentence reaches TTS while the LLM is still writing.
// A '.' ends a sentence only when it is followed by white space and is not an
// abbreviation, an initial, a decimal point, part of a URL/e-mail, or a list
// number; '!' '?' and line breaks always end one. The first chunk of a reply
// may end at a clause boundary (, ; : —) once it has two words ("Of course,",
// "Just to confirm,"), because the time to the first audio matters more than
// prosody there, and a clause boundary is a pause in speech anyway. Two, not
// four as before: at four the rule fired on 2 of 15 typical openings and on
// none of the emulator's replies; at two on 7 of 15 and on all, and the first
// chunk reaches TTS ~50 ms (openings) to ~170 ms (emulator) sooner at 55
// tokens/s (`npm run bench -- first-clause`). Over-long sentences are also
// cut at clause boundaries so TTS never waits long.

const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'etc', 'e.g', 'i.e', 'inc', 'ltd', 'co', 'corp', 'no',
  'approx', 'dept', 'est', 'fig', 'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
  'a.m', 'p.m', 'u.s', 'u.k', 'mt', 'ave', 'blvd', 'rd', 'tel', 'ext', 'min', 'max', 'vol', 'ref', 'govt', 'cf',
]);
// Abbreviations that often end a sentence: they end one when the next word is capitalised.
const TERMINAL_ABBREVIATIONS = new Set(['etc', 'a.m', 'p.m', 'inc', 'ltd', 'co', 'corp', 'u.s', 'u.k']);

export interface SplitterOptions {
  /** Words the first chunk needs before a clause boundary may end it. */
  firstClauseMinWords?: number;
  /** Sentences longer than this are cut at the last clause boundary. */
  maxChunkChars?: number;
}

export class SentenceSplitter {
  private buf = '';
  private emitted = 0;
  private readonly firstClauseMinWords: number;
  private readonly maxChunkChars: number;

  constructor(opts: SplitterOptions = {}) {
    this.firstClauseMinWords = opts.firstClauseMinWords ?? 2;
    this.maxChunkChars = opts.maxChunkChars ?? 220;
  }

  /** Adds a token; returns the chunks it completes (already cleaned for speech). */
  push(token: string): string[] {
    this.buf += token;
    const out: string[] = [];
    for (;;) {
      const end = this.findBoundary(false);
      if (end < 0) break;
      this.take(end, out);
    }
    return out;
  }

  /** End of the reply: returns whatever is left. */
  flush(): string[] {
    const out: string[] = [];
    for (;;) {
      const end = this.findBoundary(true);
      if (end < 0) break;
      this.take(end, out);
    }
    this.take(this.buf.length, out);
    return out;
  }

  /** Drops everything pending (barge-in). */
  reset(): void {
    this.buf = '';
    this.emitted = 0;
  }

  private take(end: number, out: string[]): void {
    const chunk = speakable(this.buf.slice(0, end));
    this.buf = this.buf.slice(end);
    if (chunk) {
      out.push(chunk);
      this.emitted++;
    }
  }

  /** Index just past the end of the next complete chunk, or -1. */
  private findBoundary(final: boolean): number {
    const s = this.buf;
    let lastClause = -1;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === '\n') {
        if (s.slice(0, i).trim()) return i + 1;
        continue;
      }
      if (c === '!' || c === '?') {
        const next = s[i + 1];
        if (next === undefined) {
          if (final) return i + 1;
          return -1; // "?!" or '?"' may follow
        }
        if (isSpace(next)) return i + 1;
        continue;
      }
      if (c === '.') {
        const verdict = this.periodEnds(s, i, final);
        if (verdict === 'wait') return -1;
        if (verdict === 'end') return i + 1;
        continue;
      }
      if ((c === ',' || c === ';' || c === ':' || c === '—') && (s[i + 1] === undefined ? false : isSpace(s[i + 1]))) {
        if (c === ':' && /\d/.test(s[i + 1] ?? '')) continue; // 10:30
        lastClause = i + 1;
        if (this.emitted === 0 && wordCount(s.slice(0, i)) >= this.firstClauseMinWords) return i + 1;
      }
      if (i >= this.maxChunkChars && lastClause > 0) return lastClause;
    }
    return -1;
  }

  private periodEnds(s: string, i: number, final: boolean): 'end' | 'no' | 'wait' {
    const next = s[i + 1];
    if (next === undefined) return final ? 'end' : 'wait';
    if (next === '.' ) return 'no'; // ellipsis: decided at its last dot
    if (next === '"' || next === "'" || next === ')' || next === '”') return 'no';
    if (!isSpace(next)) return 'no'; // 3.14, example.com, e.g.
    const word = wordBefore(s, i);
    const lower = word.toLowerCase();
    if (s[i - 1] === '.' || TERMINAL_ABBREVIATIONS.has(lower)) {
      // "Well... let me see" goes on; "…at 9 a.m. Please" ends: decided by the next word's case.
      const after = s.slice(i + 1).match(/^\s+(\S)/);
      if (!after) return final ? 'end' : 'wait';
      return /[A-Z]/.test(after[1]) ? 'end' : 'no';
    }
    if (/^\d{1,2}$/.test(word) && isListPosition(s, i - word.length)) return 'no'; // "1. First"
    if (/^[A-Z]$/.test(word)) return 'no'; // initial: "J. Smith"
    if (ABBREVIATIONS.has(lower)) return 'no';
    return 'end';
  }
}

function isSpace(c: string): boolean {
  return c === ' ' || c === '\n' || c === '\t' || c === '\r';
}

function wordBefore(s: string, dot: number): string {
  let j = dot;
  while (j > 0 && !isSpace(s[j - 1]) && s[j - 1] !== '(' && s[j - 1] !== '"') j--;
  return s.slice(j, dot);
}

/** A number is a list marker when it starts the text, a line, or follows a colon. */
function isListPosition(s: string, start: number): boolean {
  const before = s.slice(0, start).trimEnd();
  return before === '' || before.endsWith(':') || s.slice(0, start).endsWith('\n');
}

function wordCount(s: string): number {
  const m = s.trim().match(/\S+/g);
  return m ? m.length : 0;
}

/** Text as it should be spoken: markdown markers, bullets and extra space removed. */
export function speakable(text: string): string {
  return text
    .replace(/```[\s\S]*?```/g, ' ')
    .replace(/^\s*(?:[-*•]|#{1,6})\s+/gm, '')
    .replace(/(\*\*|__|\*|`|~~)/g, '')
    .replace(/\[([^\]]+)\]\([^)]+\)/g, '$1')
    .replace(/\s+/g, ' ')
    .trim();
}
