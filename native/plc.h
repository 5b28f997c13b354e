// Packet-loss concealment for 8 kHz PCM in the style of ITU-T G.711
// Appendix I (media reference §2): pitch-period repetition with overlap-add,
// 1-2-3 period growth, -20 % per 10 ms after the first 10 ms, silence after
// 60 ms, and a merge into the first good frame. Plain C++, no N-API.
#pragma once

#include <cstdint>

namespace aybiza::jitter {

// The unit of concealment and of the jitter buffer: one RTP packet.
constexpr int kFrameSamples = 160;  // 20 ms at 8 kHz

// Pitch-repetition concealment on 8 kHz PCM (ITU-T G.711 Appendix I, without
// its 3.75 ms output delay: joins are smoothed inside the pitch buffer).
class Concealer {
 public:
  void Reset();
  // Feeds a frame about to be played; after an erasure its head is merged with
  // the synthetic continuation. Returns how many leading samples changed.
  int Good(int16_t* pcm);
  // Feeds a silence frame (DTX): ends any erasure without a merge.
  void Silence();
  // Synthesises the next 20 ms of an erasure into pcm.
  void Conceal(int16_t* pcm);
  bool InErasure() const { return erased_ > 0; }

 private:
  static constexpr int kHistory = 390;  // 48.75 ms: three periods of the longest pitch
  void Push(const int16_t* pcm);
  int EstimatePitch() const;
  void BuildPeriods(int periods);
  float Next();

  int16_t history_[kHistory] = {};
  float pitch_buf_[kHistory] = {};
  int pitch_ = 0, seg_len_ = 0, pos_ = 0, periods_ = 0;
  int erased_ = 0;  // samples synthesised in the current erasure
};

}  // namespace aybiza::jitter
