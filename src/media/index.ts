// aybiza/media: the media core usable on its own (CONTRACT §6).
export * from './g711.js';
export { Framer } from './framer.js';
export { JitterBuffer } from './jitter-buffer.js';
export type { JitterBufferOptions, JitterFrame, JitterPacket, JitterStats, PushOutcome } from './jitter-buffer.js';
