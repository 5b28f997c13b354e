// The TwiML the Twilio REST emulator runs: a strict reader for the subset a
// voice agent sends (<Connect><Stream> with <Parameter>s, <Dial> to a
// <Number>/<Sip>/<Client> or a bare number, <Say>, <Play>, <Pause>,
// <Hangup>, <Reject>). TwiML arrives from the network, so the reader is
// bounded (size, depth, node count) and throws on anything that is not
// well-formed XML of that shape.
export interface TwimlVerb {
  verb: string;
  attrs: Record<string, string>;
  /** <Connect><Stream url>: where the Media Stream goes, and its <Parameter>s. */
  stream?: { url: string; parameters: Record<string, string> };
  /** <Dial>: the number or URI dialled. */
  target?: string;
}

interface Node {
  name: string;
  attrs: Record<string, string>;
  children: Node[];
  text: string;
}

const MAX_CHARS = 64 * 1024;
const MAX_NODES = 500;
const MAX_DEPTH = 8;
const TOKEN = /<\?xml[^>]{0,200}\?>|<(\/?)([A-Za-z][A-Za-z0-9]{0,40})((?:\s+[A-Za-z][\w:-]{0,40}\s*=\s*"[^"<]*")*)\s*(\/?)>|([^<]+)/y;
const ATTR = /([A-Za-z][\w:-]{0,40})\s*=\s*"([^"<]*)"/g;
const ENTITY: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});/g, (_, e: string) => {
    if (e[0] !== '#') return ENTITY[e]!;
    const n = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : '';
  });
}

function parse(doc: string): Node {
  if (doc.length > MAX_CHARS) throw new Error('TwiML too long');
  const root: Node = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: Node[] = [root];
  let nodes = 0;
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < doc.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(doc);
    if (!m) throw new Error(`TwiML is not well-formed at character ${at}`);
    const [, close, name, rawAttrs, selfClose, text] = m;
    const top = stack[stack.length - 1]!;
    if (text !== undefined) {
      top.text += decode(text);
      continue;
    }
    if (!name) continue; // the <?xml?> prolog
    if (close) {
      if (top.name !== name || stack.length === 1) throw new Error(`TwiML: unexpected </${name}>`);
      stack.pop();
      continue;
    }
    if (++nodes > MAX_NODES || stack.length > MAX_DEPTH) throw new Error('TwiML too large or too deep');
    const attrs: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const a of (rawAttrs ?? '').matchAll(ATTR)) attrs[a[1]!] = decode(a[2]!);
    const node: Node = { name, attrs, children: [], text: '' };
    top.children.push(node);
    if (!selfClose) stack.push(node);
  }
  if (stack.length !== 1) throw new Error('TwiML: unclosed element');
  const response = root.children[0];
  if (!response || response.name !== 'Response' || root.children.length !== 1 || root.text.trim()) throw new Error('TwiML must be one <Response> element');
  return response;
}

/** The verbs of a TwiML document, in order. */
export function parseTwiml(doc: string): TwimlVerb[] {
  return parse(doc).children.map((v) => {
    const verb: TwimlVerb = { verb: v.name, attrs: { ...v.attrs } };
    if (v.name === 'Connect') {
      const s = v.children.find((c) => c.name === 'Stream');
      if (s?.attrs.url) {
        const parameters: Record<string, string> = {};
        for (const p of s.children) if (p.name === 'Parameter' && p.attrs.name !== undefined) parameters[p.attrs.name] = p.attrs.value ?? '';
        verb.stream = { url: s.attrs.url, parameters };
      }
    }
    if (v.name === 'Dial') {
      const noun = v.children.find((c) => c.name === 'Number' || c.name === 'Sip' || c.name === 'Client');
      verb.target = (noun?.text ?? v.text).trim();
    }
    return verb;
  });
}
