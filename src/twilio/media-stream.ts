// WS /twilio/media: Twilio Media Streams. The upgrade must carry a valid
// X-Twilio-Signature over the wss URL; `start` must carry a valid single-use
// call token. Every malformed message is counted (aybiza_bad_input_total
// {source="twilio_ws"}) and logged once per reason per call; a socket that
// keeps sending garbage is closed with 1008. Nothing here can affect another call.
import twilio from 'twilio';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from '../server/uws.js';
import type { us_socket_context_t } from 'uWebSockets.js';
import { countBadInput } from '../metrics/index.js';
import { log } from '../log.js';
import { guard, reportInternalError } from '../guard.js';
import type { CallSession } from '../call/session.js';
import { TwilioTransport } from './transport.js';
import { clock } from '../call/clock.js';
import { NOT_FAST, readMediaMessage } from './media-message.js';

const MAX_PAYLOAD_BYTES = 1600; // 200 ms of μ-law; Twilio sends 160
const MAX_BAD_TOTAL = 200;
const MAX_BAD_PER_SECOND = 50;
const MAX_EARLY_FRAMES = 100; // caller audio held while the session starts
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DIGITS = /^[0-9*#A-D]$/;

export interface StartedCall {
  session: CallSession;
}

export interface MediaStreamHooks {
  /** Verifies the token and builds the session; a string is the refusal reason. */
  start(callSid: string, streamSid: string, params: Record<string, string>, transport: TwilioTransport): Promise<CallSession | string>;
  /** Called when the socket closes, whatever the cause. */
  closed(session: CallSession | null, reason: string): void;
  /**
   * +1 when a stream is accepted, −1 once its start has settled or it
   * closed first: streams whose call is not counted anywhere yet (the main
   * thread's connection steering counts them against this worker).
   */
  connecting?(delta: 1 | -1): void;
}

interface Conn {
  state: 'new' | 'starting' | 'started' | 'stopped';
  streamSid: string;
  callSid: string;
  session: CallSession | null;
  transport: TwilioTransport | null;
  early: Uint8Array[];
  bad: number;
  badWindowStart: number;
  badInWindow: number;
  logged: Set<string>;
  /** Counted by hooks.connecting until its start settles or it closes. */
  connecting: boolean;
  closed: boolean;
  /** The streamSid's UTF-8 bytes, for the allocation-free media reader. */
  sid: Uint8Array;
  /** Where that reader decodes a 20 ms payload (reused for every frame). */
  frame: Uint8Array;
}

const FRAME_BYTES = 160;

export function mountMediaStream(app: TemplatedApp, path: string, wssUrl: string, authToken: () => string, hooks: MediaStreamHooks): void {
  app.ws<Conn>(path, {
    // Big enough to read (and count) an oversized media message ourselves.
    maxPayloadLength: 64 * 1024,
    idleTimeout: 60,
    maxBackpressure: 1024 * 1024,
    // Every callback runs under the guard (src/guard.ts): a failure ends only
    // this socket (1011) or answers this upgrade with 500, never the process.
    upgrade: guard('ws', (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => {
      // uWS invalidates req when this returns: copy everything first.
      const sig = req.getHeader('x-twilio-signature');
      const query = req.getQuery();
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const valid = !query && !!sig && (twilio.validateRequest(authToken(), sig, wssUrl, {}) || twilio.validateRequest(authToken(), sig, wssUrl + '/', {}));
      if (!valid) {
        countBadInput('twilio_ws', sig ? 'bad_signature' : 'missing_signature');
        log.warn('media stream upgrade refused: bad or missing X-Twilio-Signature');
        res.cork(() => res.writeStatus('403 Forbidden').end('invalid signature'));
        return;
      }
      const conn: Conn = {
        state: 'new', streamSid: '', callSid: '', session: null, transport: null, early: [],
        bad: 0, badWindowStart: Date.now(), badInWindow: 0, logged: new Set(), closed: false,
        sid: new Uint8Array(0), frame: new Uint8Array(FRAME_BYTES), connecting: false,
      };
      upgraded.add(res);
      res.upgrade(conn, key, protocol, extensions, context);
    }, (_err, res) => {
      if (upgraded.has(res)) return;
      upgraded.add(res);
      res.cork(() => res.writeStatus('500 Internal Server Error').end('internal server error', true));
    }),
    // Counted from here: uWS closes every socket it opened, and close settles it.
    open: guard('ws', (ws: WebSocket<Conn>) => {
      const c = ws.getUserData();
      c.connecting = true;
      hooks.connecting?.(1);
    }),
    message: guard('ws', (ws: WebSocket<Conn>, message: ArrayBuffer, isBinary: boolean) => {
      clock.poll(); // a due pacing step goes before more messages (see src/call/clock.ts)
      const c = ws.getUserData();
      if (isBinary) return bad(ws, c, 'binary_frame');
      // The common case, a well-formed media message of a started stream,
      // is read from the bytes without parsing (see media-message.ts).
      if (c.state === 'started' || c.state === 'starting') {
        const n = readMediaMessage(new Uint8Array(message), c.sid, c.frame);
        if (n !== NOT_FAST) return deliver(c, n === FRAME_BYTES ? c.frame : c.frame.subarray(0, n));
      }
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(Buffer.from(message).toString('utf8')) as Record<string, unknown>;
      } catch {
        return bad(ws, c, 'invalid_json');
      }
      if (typeof msg !== 'object' || msg === null) return bad(ws, c, 'invalid_json');
      if (c.state === 'stopped') return bad(ws, c, 'after_stop');
      switch (msg.event) {
        case 'connected':
          if (c.state !== 'new') return bad(ws, c, 'unexpected_connected');
          return;
        case 'start':
          return onStart(ws, c, msg);
        case 'media':
          return onMedia(ws, c, msg);
        case 'dtmf': {
          if (!checkStream(ws, c, msg)) return;
          const digit = (msg.dtmf as { digit?: unknown } | undefined)?.digit;
          if (typeof digit !== 'string' || !DIGITS.test(digit)) return bad(ws, c, 'bad_dtmf');
          c.session?.dtmf(digit);
          return;
        }
        case 'mark': {
          if (!checkStream(ws, c, msg)) return;
          const name = (msg.mark as { name?: unknown } | undefined)?.name;
          if (typeof name !== 'string') return bad(ws, c, 'bad_mark');
          c.session?.onMarkPlayed(name); // late or unknown names are ignored
          return;
        }
        case 'stop':
          if (!checkStream(ws, c, msg)) return;
          c.state = 'stopped';
          if (c.session) endSession(c.session, 'caller hung up');
          return;
        default:
          return bad(ws, c, 'unknown_event');
      }
    }, (_err, ws) => endSocket(ws, ws.getUserData())),
    close: guard('ws', (ws: WebSocket<Conn>, code: number) => {
      const c = ws.getUserData();
      // uWS closes a socket on a message over maxPayloadLength (1009) by itself.
      if (code === 1009 || (code === 1006 && !c.closed && c.state !== 'stopped')) countBadInput('twilio_ws', code === 1009 ? 'message_too_large' : 'abnormal_close');
      c.closed = true;
      settle(c);
      if (c.transport) c.transport.closed = true;
      hooks.closed(c.session, c.state === 'stopped' ? 'caller hung up' : `media stream closed (${code})`);
    }, (_err, ws) => {
      // The call must still end with its socket, whatever failed above.
      const c = ws.getUserData();
      c.closed = true;
      settle(c);
      if (c.transport) c.transport.closed = true;
      hooks.closed(c.session, 'media stream closed');
    }),
  });

  /** Responses already upgraded or answered (a failed upgrade must not write twice). */
  const upgraded = new WeakSet<HttpResponse>();

  /** The stream's start has settled (or it closed): no longer counted as connecting. */
  function settle(c: Conn): void {
    if (!c.connecting) return;
    c.connecting = false;
    hooks.connecting?.(-1);
  }

  function endSession(session: CallSession, reason: string): void {
    session.end(reason).catch((err) => reportInternalError('ws', err));
  }

  /** Ends one socket after a failure in its callback: 1011, as RFC 6455 §7.4.1 has it. */
  function endSocket(ws: WebSocket<Conn>, c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    ws.end(1011, 'internal error');
  }

  function bad(ws: WebSocket<Conn>, c: Conn, reason: string): void {
    countBadInput('twilio_ws', reason);
    c.bad++;
    const now = Date.now();
    if (now - c.badWindowStart >= 1000) {
      c.badWindowStart = now;
      c.badInWindow = 0;
    }
    c.badInWindow++;
    if (!c.logged.has(reason)) {
      c.logged.add(reason);
      log.warn('bad media stream message', { reason, callSid: c.callSid || undefined, streamSid: c.streamSid || undefined });
    }
    if ((c.bad > MAX_BAD_TOTAL || c.badInWindow > MAX_BAD_PER_SECOND) && !c.closed) {
      countBadInput('twilio_ws', 'abuse_closed');
      log.warn('closing media stream after persistent bad input', { callSid: c.callSid || undefined, bad: c.bad });
      c.closed = true;
      ws.end(1008, 'policy violation');
    }
  }

  function checkStream(ws: WebSocket<Conn>, c: Conn, msg: Record<string, unknown>): boolean {
    if (c.state === 'new') {
      bad(ws, c, 'before_start');
      return false;
    }
    if (msg.streamSid !== c.streamSid) {
      bad(ws, c, 'wrong_stream_sid');
      return false;
    }
    return true;
  }

  function onStart(ws: WebSocket<Conn>, c: Conn, msg: Record<string, unknown>): void {
    if (c.state !== 'new') return bad(ws, c, 'duplicate_start');
    const start = msg.start as { streamSid?: unknown; callSid?: unknown; customParameters?: unknown; mediaFormat?: { encoding?: unknown; sampleRate?: unknown } } | undefined;
    const streamSid = start?.streamSid ?? msg.streamSid;
    if (!start || typeof streamSid !== 'string' || !streamSid || streamSid.length > 64 || typeof start.callSid !== 'string' || !start.callSid) {
      return bad(ws, c, 'bad_start');
    }
    if (start.mediaFormat && (start.mediaFormat.encoding !== 'audio/x-mulaw' || start.mediaFormat.sampleRate !== 8000)) {
      bad(ws, c, 'unsupported_media_format');
      c.closed = true;
      ws.end(1003, 'unsupported media format');
      return;
    }
    const params: Record<string, string> = {};
    if (start.customParameters && typeof start.customParameters === 'object') {
      for (const [k, v] of Object.entries(start.customParameters)) if (typeof v === 'string') params[k] = v;
    }
    c.state = 'starting';
    c.streamSid = streamSid;
    c.sid = new TextEncoder().encode(streamSid);
    c.callSid = start.callSid;
    const transport = new TwilioTransport(ws as unknown as WebSocket<unknown>, streamSid, () => {});
    c.transport = transport;
    hooks.start(c.callSid, streamSid, params, transport).then(
      guard('ws', (result: CallSession | string) => {
        settle(c);
        if (typeof result === 'string') {
          bad(ws, c, `token_${result}`);
          if (!c.closed) {
            c.closed = true;
            ws.end(1008, 'call token refused');
          }
          return;
        }
        if (c.closed || c.state === 'stopped') {
          endSession(result, c.state === 'stopped' ? 'caller hung up' : 'media stream closed');
          return;
        }
        c.session = result;
        c.state = 'started';
        for (const f of c.early) result.inbound(f);
        c.early = [];
      }, () => endSocket(ws, c)),
      guard('ws', (err: unknown) => {
        settle(c);
        reportInternalError('ws', err, { callSid: c.callSid });
        endSocket(ws, c);
      }),
    );
  }

  function onMedia(ws: WebSocket<Conn>, c: Conn, msg: Record<string, unknown>): void {
    if (!checkStream(ws, c, msg)) return;
    const media = msg.media as { payload?: unknown; track?: unknown } | undefined;
    const payload = media?.payload;
    if (typeof payload !== 'string' || payload.length === 0) return bad(ws, c, 'missing_payload');
    if (payload.length > Math.ceil(MAX_PAYLOAD_BYTES / 3) * 4) return bad(ws, c, 'oversized_payload');
    if (payload.length % 4 !== 0 || !BASE64.test(payload)) return bad(ws, c, 'bad_base64');
    if (media!.track !== undefined && media!.track !== 'inbound') return bad(ws, c, 'bad_track');
    deliver(c, Buffer.from(payload, 'base64'));
  }

  /** A caller frame to the session (which copies what it keeps), or held until the session exists. */
  function deliver(c: Conn, frame: Uint8Array): void {
    if (c.session) c.session.inbound(frame);
    else if (c.early.length < MAX_EARLY_FRAMES) c.early.push(frame.buffer === c.frame.buffer ? frame.slice() : frame);
  }
}
