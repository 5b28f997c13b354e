// Answering-machine beep detection on 8 kHz PCM16: a steady single tone of
// 350–2,000 Hz lasting at least 250 ms (the range FreeSWITCH's mod_avmd and
// the LumenVox spec cover; no standard fixes a beep). No N-API inside: the
// fused per-frame channel (media_channel.cc) runs it on the samples it has
// already decoded.
//
// Per 10 ms block of audio high-passed at 250 Hz, about eleven operations
// per sample: a two-tap linear
// predictor gives the frequency of the dominant sinusoid (exact on a clean
// tone, corrected for the noise its residual shows; the lag-1/lag-2
// autocorrelation ratio, unbiased in white noise, was tried and jitters by
// tens of hertz below 500 Hz over a 10 ms block); a
// Goertzel filter at that frequency measures how much of the block's energy that one
// tone holds (its purity). A block is tonal when it is pure enough, loud
// enough and in range; a beep is a run of tonal blocks whose frequency stays
// within a few hertz of the run's and whose level stays within a few dB.
// Speech (several harmonics, gliding pitch, vowels under 250 ms), chords,
// noise and dual tones (DTMF: impure; ringback 440+480 Hz: beats, so its
// level swings) do not make such runs.
#pragma once

#include <cstdint>

namespace aybiza::beep {

struct Beep {
  double hz;          // mean frequency of the run
  int64_t startMs;    // on the detector's audio clock (ms of audio since reset)
  int64_t durationMs; // so far (onset) or in total (end)
};

class Detector {
 public:
  static constexpr int kBlock = 80;        // 10 ms
  static constexpr int kMinBlocks = 25;    // 250 ms
  static constexpr double kMinHz = 350, kMaxHz = 2000;

  Detector();
  void Reset();

  // Event bits of Process().
  static constexpr int kActive = 1;  // a qualified beep is sounding
  static constexpr int kOnset = 2;   // it qualified in this call (250 ms reached)
  static constexpr int kEnd = 4;     // it ended in this call

  // Runs n samples (a multiple of kBlock: the channel's 10/20/30 ms frames).
  int Process(const int16_t* pcm, int n);

  // The current or last qualified beep (valid after the first onset).
  const Beep& Last() const { return last_; }

 private:
  int Block(const float* x);  // event bits for one (high-passed) block
  int EndRun();

  int64_t blocks_ = 0;  // blocks processed since reset (the audio clock)
  // The run of tonal blocks under way.
  int runBlocks_ = 0, misses_ = 0;
  int64_t runStart_ = 0;
  double runHz_ = 0, runLogE_ = 0, lastLogE_ = 0;
  bool qualified_ = false;
  Beep last_{0, 0, 0};
  float b0_, b1_, a1_, a2_;       // the high-pass biquad (b2 = b0)
  float x1_, x2_, y1_, y2_;       // its state, carried across blocks and frames
  float filtered_[kBlock];
};

}  // namespace aybiza::beep
