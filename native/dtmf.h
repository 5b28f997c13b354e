// In-band DTMF detection (ITU-T Q.23/Q.24) on 8 kHz PCM16. A plain C++ class
// with no N-API inside, so a fused per-frame native entry point can run it on
// samples it has already decoded; dtmf.cc wraps it for JavaScript.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aybiza::dtmf {

struct Options {
  // Q.24 / North American receiver limits. A receiver must accept these
  // twists, so they are acceptance limits on the measured level difference.
  double normalTwistDb = 8.0;   // row (low) tone stronger
  double reverseTwistDb = 4.0;  // column (high) tone stronger
  // Weaker tone's level; Q.24 receivers must work down to about -25 dBm0 per
  // tone and must ignore -55 dBm0, so the default sits between the two.
  double minLevelDbm0 = -40.0;
};

class Detector {
 public:
  // Goertzel windows are kWindow samples (12.75 ms, Asterisk's block size:
  // bins narrow enough to split 697/770 Hz, short enough for 40 ms tones).
  // They overlap by half, so the tone duration is measured in 6.4 ms steps:
  // with non-overlapping windows, the two-block rule cannot reject 23 ms tones
  // and still accept tones 1.5 % off frequency.
  static constexpr int kHop = 51;
  static constexpr int kWindow = 2 * kHop;
  // Four agreeing windows span 32 ms; a tone shorter than about 25 ms cannot
  // fill four of them (see kToTotal in dtmf.cc), a 40 ms tone always does.
  static constexpr int kHitsToStart = 4;
  // About 26 ms without the digit ends a key press: Q.24 requires 40 ms
  // pauses to be seen, and shorter dropouts inside a tone must not re-report.
  static constexpr int kMissesToEnd = 4;

  explicit Detector(const Options& options = Options());

  // Forgets any partial window and any digit in progress.
  void Reset();

  // Runs n samples (any n; a partial window carries over to the next call).
  // Writes each newly detected digit ('0'-'9', '*', '#', 'A'-'D') to out and
  // returns how many it wrote. A key press needs kHitsToStart * kHop samples,
  // so n / 204 + 1 digits are the most one call can produce; digits beyond
  // maxDigits are dropped and counted in Dropped().
  int Process(const int16_t* pcm, size_t n, char* out, int maxDigits);

  uint64_t Dropped() const { return dropped_; }

 private:
  struct Half {
    float re[8], im[8];  // per-tone DFT of the half window, phase at its start
    float energy;        // sum of squared samples
  };

  int EndHalf();  // the digit index a key press starts with, or -1
  int Classify() const;  // digit index 0..15 for the current window, or -1
  float HarmonicEnergy(double hz) const;

  // Limits precomputed as energy ratios.
  float normalTwist_, reverseTwist_, minToneEnergy_;

  // Goertzel state of the half window being filled.
  float s1_[8], s2_[8];
  float energy_;
  int fill_;
  Half prev_, cur_;
  bool havePrev_;
  int16_t raw_[kWindow];  // the last full window, for the harmonic check

  int candidate_, run_;
  bool bridged_;
  int current_, misses_;
  uint64_t dropped_ = 0;
};

}  // namespace aybiza::dtmf
