// What our provider clients add on top of the providers' own latency: each
// emulator is configured with a known delay, and we measure from our call to
// the event our client hands to the pipeline, minus that delay.
import { performance } from 'node:perf_hooks';
import { startEmulators } from '../src/providers/emulators/index.js';
import { deepgramClient } from '../src/providers/deepgram/client.js';
import { DeepgramStt } from '../src/providers/deepgram/stt.js';
import { DeepgramTts } from '../src/providers/deepgram/tts.js';
import { BedrockLlm } from '../src/providers/bedrock/llm.js';
import { synthesize } from '../src/providers/emulators/voice.js';
import { printMarkdown } from './table.js';
import { setLogLevel } from '../src/log.js';

const STT_DELAY = 100;
const TTS_TTFB = 50;
const LLM_TTFT = 100;

function pct(xs: number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  return [s[Math.floor(s.length * 0.5)], s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]];
}

export default async function run(): Promise<void> {
  setLogLevel('warn');
  const emu = await startEmulators({
    deepgram: { sttFinalDelayMs: STT_DELAY, ttsFirstByteMs: TTS_TTFB, ttsRealtimeFactor: 0.01 },
    bedrock: { ttftMs: LLM_TTFT, tokensPerSecond: 1000 },
  });
  const dg = deepgramClient({ apiKey: 'bench', url: emu.deepgramUrl });
  const stt = new DeepgramStt(dg);
  const tts = new DeepgramTts(dg, 1);
  const llm = new BedrockLlm({ region: 'us-east-1', endpoint: emu.bedrockUrl, credentials: { accessKeyId: 'b', secretAccessKey: 'b' }, models: ['m'], ttftDeadlineMs: 5000 });
  const N = 60;
  try {
    // LLM: request → first text event, minus the configured TTFT.
    const llmOver: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      for await (const e of llm.stream({ system: 's', messages: [{ role: 'user', content: [{ text: `turn ${i}` }] }] })) {
        if (e.type === 'text' && llmOver.length === i) llmOver.push(performance.now() - t0 - LLM_TTFT);
      }
    }
    // TTS: speak+flush → first audio chunk, minus the configured TTFB (one warm stream per turn).
    const ttsOver: number[] = [];
    tts.prewarm();
    for (let i = 0; i < N; i++) {
      let first = -1;
      let flushed = false;
      const s = await tts.open({}, { onAudio: () => first < 0 && (first = performance.now()), onFlushed: () => (flushed = true) });
      const t0 = performance.now();
      s.speak('Sure, I can help you with that.');
      s.flush();
      while (!flushed) await new Promise((r) => setTimeout(r, 1));
      ttsOver.push(first - t0 - TTS_TTFB);
      await s.close();
    }
    // STT: last frame of the endpointing window sent → final event, minus the configured final delay.
    const sttOver: number[] = [];
    const speech = synthesize('Hello, I would like a table.');
    const audio = new Uint8Array(speech.length + 8000 * 0.4).fill(0xff);
    audio.set(speech);
    const s = await stt.open({ endpointingMs: 300 }, {
      onTranscript: (t) => {
        if (t.isFinal && t.text) sttOver.push(performance.now() - sent - STT_DELAY);
      },
    });
    let sent = 0;
    for (let i = 0; i < Math.min(N, 30); i++) {
      const want = sttOver.length + 1;
      s.send(audio);
      sent = performance.now();
      while (sttOver.length < want) await new Promise((r) => setTimeout(r, 1));
    }
    await s.close();
    const [l50, l99] = pct(llmOver);
    const [t50, t99] = pct(ttsOver);
    const [s50, s99] = pct(sttOver);
    printMarkdown('client overhead per turn on top of the provider latency (ms; loopback emulators)', ['stage', 'configured delay ms', 'our overhead p50 ms', 'p99 ms'], [
      ['LLM: request → first token (Bedrock SDK, HTTP/1.1 keep-alive)', LLM_TTFT, l50, l99],
      ['TTS: Speak+Flush → first audio byte (Deepgram SDK, warm socket)', TTS_TTFB, t50, t99],
      ['STT: end of endpointing window → final (Deepgram SDK)', STT_DELAY, s50, s99],
    ]);
  } finally {
    llm.client.destroy();
    await tts.close();
    await emu.close();
  }
}
