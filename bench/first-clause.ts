// The sentence splitter's early-clause rule (src/pipeline/sentences.ts,
// issue 16 need 3): how many LLM tokens the first chunk of a reply waits for,
// with the rule off and at 4/3/2 words, and what that is in milliseconds at
// the emulator profiles' output rates (80 tokens/s `default`, 55 `published`).
// The wait is computed from the token count (one word per token, as the
// Bedrock emulator streams), not timed: TTS receives the first chunk that
// much earlier, and with a time to first byte that does not depend on the
// text's length (the emulator's model; see the README) the first audio
// comes that much earlier too.
// Two corpora: the emulator's replies to the demo's and the load's phrases
// (what `npm run demo` and `npm run load` measure), and illustrative opening
// sentences of a phone agent (written for this bench, not a sample of a
// model's output).
import { SentenceSplitter } from '../src/pipeline/sentences.js';
import { reply } from '../src/providers/emulators/bedrock.js';

const CALLER_PHRASES = [
  "Hi, I'd like to book a table for two tomorrow evening.",
  'Sorry, actually make that three people.',
  'I would like to book a table for two people tomorrow evening please.',
  'Hello, I would like to book a table for two.',
  'Tomorrow at seven in the evening.',
];

const OPENINGS = [
  'Sure, I can help with that.',
  'Of course, a table for three tomorrow at seven.',
  'Great, thank you for letting me know.',
  "No problem, I've updated the booking to three people.",
  'Got it, let me check availability for tomorrow evening.',
  "I'm sorry, we're fully booked at seven, but eight is free.",
  'Absolutely! What name should I put the reservation under?',
  'Let me check that for you.',
  'Thanks for waiting, your order shipped yesterday and should arrive on Friday.',
  "Okay, so that's a table for two at seven tomorrow evening, is that right?",
  'Unfortunately, that item is out of stock right now.',
  "Yes, we're open until ten tonight.",
  'Your appointment is confirmed for Tuesday at 3:30 PM.',
  "Hmm, I couldn't find an order with that number.",
  "Just to confirm, you'd like to cancel your subscription?",
];

const RULES: { name: string; minWords: number }[] = [
  { name: 'off (sentences only)', minWords: Infinity },
  { name: 'first clause ≥ 4 words', minWords: 4 },
  { name: 'first clause ≥ 3 words', minWords: 3 },
  { name: 'first clause ≥ 2 words', minWords: 2 },
];

/** Tokens streamed (the emulator's word tokens) until the splitter releases the first chunk, and that chunk. */
export function firstChunk(text: string, minWords: number): { tokens: number; chunk: string } {
  const s = new SentenceSplitter({ firstClauseMinWords: minWords });
  const tokens = text.match(/\S+\s*/g) ?? [];
  for (let i = 0; i < tokens.length; i++) {
    const out = s.push(tokens[i]);
    if (out.length) return { tokens: i + 1, chunk: out[0] };
  }
  return { tokens: tokens.length, chunk: s.flush()[0] ?? '' };
}

function table(title: string, texts: string[]): string {
  const lines = [`### ${title} (${texts.length} replies)`, '', '| rule | mean tokens to first chunk | fires on | mean ms at 80 tok/s | mean ms at 55 tok/s |', '|---|---:|---:|---:|---:|'];
  const off = texts.map((t) => firstChunk(t, Infinity).tokens);
  for (const r of RULES) {
    const n = texts.map((t) => firstChunk(t, r.minWords).tokens);
    const mean = n.reduce((a, b) => a + b, 0) / n.length;
    const fired = n.filter((k, i) => k < off[i]).length;
    lines.push(`| ${r.name} | ${mean.toFixed(1)} | ${fired}/${texts.length} | ${((mean * 1000) / 80).toFixed(0)} | ${((mean * 1000) / 55).toFixed(0)} |`);
  }
  return lines.join('\n') + '\n';
}

export default async function run(): Promise<void> {
  const emulated = CALLER_PHRASES.map((p) => reply({ messages: [{ role: 'user', content: [{ text: p }] }] }).text ?? '');
  process.stdout.write(table("The Bedrock emulator's replies (demo and load phrases)", emulated) + '\n');
  process.stdout.write(table('Illustrative phone-agent openings', OPENINGS) + '\n');
  process.stdout.write('First chunks at ≥ 2 words:\n' + [...emulated, ...OPENINGS].map((t) => `  "${firstChunk(t, 2).chunk}"`).join('\n') + '\n');
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
