// aybiza/media: the media core usable on its own (CONTRACT §6).
export * from './g711.js';
export { Framer } from './framer.js';
export { Vad, decodeVadResult, VAD_FEATURES } from './vad.js';
export type { VadOptions, VadResult, VadEncoding } from './vad.js';
export { DtmfDetector } from './dtmf.js';
export type { DtmfDetectorOptions, DtmfDigit } from './dtmf.js';
export { MediaChannel, FRAME_SPEECH, FRAME_ACTIVE, FRAME_START, FRAME_END, FRAME_DIGITS, FRAME_BEEP, FRAME_BEEP_START, FRAME_BEEP_END } from './media-channel.js';
export type { MediaChannelOptions, Beep } from './media-channel.js';
export { JitterBuffer } from './jitter-buffer.js';
export type { JitterBufferOptions, JitterFrame, JitterPacket, JitterStats, PushOutcome } from './jitter-buffer.js';
