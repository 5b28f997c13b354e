// Replies whose body is a stream of known length (a recording from its file
// or its bucket): written chunk by chunk with uWS backpressure (tryEnd, and
// onWritable when the socket is full, as uWS's VideoStreamer example does),
// never read whole into memory. A client that goes away stops the stream.
import type { Readable } from 'node:stream';
import type { HttpResponse } from './uws.js';
import type { Reply, ResponseState } from './http.js';
import { reportInternalError } from '../guard.js';

/** A body to stream: `length` bytes (uWS writes Content-Length from it). */
export class StreamBody {
  constructor(readonly stream: Readable, readonly length: number) {}
}

/** An API handler's result sent as it is (status, headers, body), not as a JSON body. */
export class DirectReply {
  constructor(readonly reply: Reply) {}
}

export function streamReply(res: HttpResponse, state: ResponseState, statusLine: string, headers: Record<string, string>, body: StreamBody): void {
  const { stream, length } = body;
  let done = false;
  const stop = () => {
    done = true;
    stream.destroy();
  };
  state.onAborted = stop;
  const write = (chunk: Buffer, first: boolean): [boolean, boolean] => {
    // cork() returns the response, not the callback's value.
    let result: [boolean, boolean] = [false, false];
    res.cork(() => {
      if (first) {
        res.writeStatus(statusLine);
        for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      }
      result = res.tryEnd(chunk, length);
    });
    return result;
  };
  let first = true;
  const send = (chunk: Buffer) => {
    if (done || state.aborted) return stop();
    const offset = res.getWriteOffset();
    const [ok, finished] = write(chunk, first);
    first = false;
    if (finished) return stop();
    if (ok) return;
    // The socket is full: wait for it, then send what it did not take.
    stream.pause();
    res.onWritable((at) => {
      if (done || state.aborted) return true;
      const [ok2, finished2] = res.tryEnd(chunk.subarray(at - offset), length);
      if (finished2) stop();
      else if (ok2) stream.resume();
      return ok2;
    });
  };
  stream.on('data', (chunk: Buffer) => {
    try {
      send(chunk);
    } catch (err) {
      reportInternalError('http', err);
      cut();
    }
  });
  // Headers may be out already: the only honest end of a failed stream is to cut the connection.
  const cut = () => {
    if (done || state.aborted) return;
    stop();
    try {
      res.close();
    } catch {
      /* already closed */
    }
  };
  stream.on('error', (err) => {
    reportInternalError('http', err);
    cut();
  });
  stream.on('end', () => {
    if (done || state.aborted) return;
    // A source shorter than announced (a file truncated under us): cut rather than hang.
    if (first && length === 0) {
      write(Buffer.alloc(0), true);
      return;
    }
    cut();
  });
}
