// The naive Media Streams server `npm run load` measures beside ours in the
// same run (issue 14, need 4): what a Node developer would write first with
// the usual packages. `ws` for the stream, `alawmulaw` for G.711, one
// `setInterval(…, 20)` per call; no STT, no VAD, no conversation, no
// signature checks. It is the baseline, not a competitor: keep it plain.
//
// Per call it greets the caller, decodes every inbound μ-law frame to PCM (as
// a server feeding a VAD or STT must), and, about a second after the caller
// stops speaking (a peak-level gate on that PCM, not a VAD), plays a canned
// reply. Each is PCM from
// the TTS emulator's synthesizer, encoded to μ-law 20 ms at a time on the
// call's interval, one Twilio `media` message per tick and a mark named like
// ours (`<generation>.<seq>.end`) after each sentence, so the simulated
// callers split their gaps the same way for both servers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import alawmulaw from 'alawmulaw';
import { WebSocketServer, type WebSocket } from 'ws';
import { synthesize } from '../../src/providers/emulators/voice.js';

const { mulaw } = alawmulaw;
const SAMPLES_PER_FRAME = 160; // 20 ms at 8 kHz
/** A decoded sample above this is the caller speaking (the simulated caller's own "audible" level). */
const SPEECH_PEAK = 500;

export interface NaiveServerOptions {
  port?: number;
  host?: string;
  /** Played when the stream starts, one spoken segment per sentence. */
  greeting?: string[];
  /** Played after each caller utterance, one spoken segment per sentence. */
  reply?: string[];
  /** Silence after the caller's speech before the reply starts. */
  replyAfterSilenceMs?: number;
}

export interface NaiveStats {
  calls: number;
  active: number;
  /** `media` messages sent (one 20 ms frame each). */
  framesSent: number;
  marksSent: number;
  framesReceived: number;
}

export interface NaiveServer {
  url: string;
  stats: NaiveStats;
  close(): Promise<void>;
}

const DEFAULT_GREETING = ['Hello, thanks for calling. How can I help you today?'];
const DEFAULT_REPLY = [
  'Of course, a table for two tomorrow evening.',
  'What time would you like, and may I have a name for the booking?',
];

export async function startNaiveServer(o: NaiveServerOptions = {}): Promise<NaiveServer> {
  // The "TTS": PCM made once; each call encodes it to μ-law as it plays.
  const pcm = (text: string[]) => text.map((s) => mulaw.decode(synthesize(s)));
  const speech = { greeting: pcm(o.greeting ?? DEFAULT_GREETING), reply: pcm(o.reply ?? DEFAULT_REPLY) };
  const silenceFrames = Math.ceil((o.replyAfterSilenceMs ?? 800) / 20);
  const stats: NaiveStats = { calls: 0, active: 0, framesSent: 0, marksSent: 0, framesReceived: 0 };
  let wsUrl = '';

  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/twilio/voice') {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="${wsUrl}">` +
            '<Parameter name="token" value="naive"/></Stream></Connect></Response>',
        );
      });
    } else if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
    } else {
      res.writeHead(404).end();
    }
  });
  const wss = new WebSocketServer({ server, path: '/stream', perMessageDeflate: false });
  wss.on('connection', (ws) => serveCall(ws, speech, silenceFrames, stats));
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${o.host ?? '127.0.0.1'}:${port}`;
  wsUrl = `ws://${o.host ?? '127.0.0.1'}:${port}/stream`;
  return {
    url,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

function serveCall(ws: WebSocket, speech: { greeting: Int16Array[]; reply: Int16Array[] }, silenceFrames: number, stats: NaiveStats): void {
  let streamSid = '';
  let timer: NodeJS.Timeout | null = null;
  let heardSpeech = false;
  let silentFrames = 0;
  let generation = 0;
  let markSeq = 0;
  // What is being played: its sentences, the current one, the sample offset in it.
  let sentences: Int16Array[] = [];
  let sentence = -1;
  let offset = 0;
  const play = (what: Int16Array[]) => {
    generation++;
    markSeq = 0;
    sentences = what;
    sentence = 0;
    offset = 0;
  };

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  const tick = () => {
    // Closing (our close after `stop`, or theirs): nothing more would be delivered, so nothing is counted as sent.
    if (sentence < 0 || ws.readyState !== ws.OPEN) return;
    const pcm = sentences[sentence];
    const frame = new Int16Array(SAMPLES_PER_FRAME);
    frame.set(pcm.subarray(offset, offset + SAMPLES_PER_FRAME));
    offset += SAMPLES_PER_FRAME;
    const payload = Buffer.from(mulaw.encode(frame)).toString('base64');
    ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload } }));
    stats.framesSent++;
    if (offset >= pcm.length) {
      ws.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: `${generation}.${markSeq++}.end` } }));
      stats.marksSent++;
      offset = 0;
      sentence = sentence + 1 < sentences.length ? sentence + 1 : -1;
    }
  };

  ws.on('message', (data) => {
    try {
      const msg = JSON.parse(data.toString()) as { event?: string; streamSid?: string; media?: { payload?: string } };
      if (msg.event === 'start') {
        streamSid = String(msg.streamSid ?? '');
        stats.calls++;
        stats.active++;
        timer = setInterval(tick, 20);
        play(speech.greeting);
      } else if (msg.event === 'media' && msg.media?.payload) {
        stats.framesReceived++;
        const pcm = mulaw.decode(Buffer.from(msg.media.payload, 'base64'));
        let peak = 0;
        for (let i = 0; i < pcm.length; i++) peak = Math.max(peak, Math.abs(pcm[i]));
        if (peak > SPEECH_PEAK) {
          heardSpeech = true;
          silentFrames = 0;
        } else if (heardSpeech && ++silentFrames >= silenceFrames) {
          heardSpeech = false;
          // No barge-in: speech during the reply does not restart it.
          if (sentence < 0) play(speech.reply);
        }
      } else if (msg.event === 'stop') {
        stop();
        ws.close(1000);
      }
    } catch {
      ws.close(1011);
    }
  });
  // A protocol error on one socket ends that call, not the process.
  ws.on('error', () => ws.terminate());
  ws.on('close', () => {
    if (streamSid) stats.active--;
    stop();
  });
}
