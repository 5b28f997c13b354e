// Beep detector (see beep.h for the method and why).
#include "beep.h"

#include <cmath>

namespace aybiza::beep {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRate = 8000;
// Share of the block's energy the one tone must hold. A pure tone measures
// about 1, white noise 2/kBlock; a beep 10 dB above white noise about 0.9.
constexpr double kMinPurity = 0.75;
// −45 dBFS mean power: quieter "tones" are line hum or μ-law idle noise.
constexpr double kMinPower = 32768.0 * 32768.0 * 3.16e-5;
// A beep drifts by at most ±10 Hz (LumenVox); the estimate itself jitters
// by a few hertz in noise, hence 2 % above 750 Hz.
constexpr double kDriftHz = 15, kDriftShare = 0.02;
// Level steadiness of a run, against the run's mean and block to block: two
// tones closer than a block's resolution (ringback 440+480 Hz) look like one
// whose level swings at their difference frequency.
constexpr double kMaxLogDrift = 0.92;  // ln(10^0.4): 4 dB
constexpr double kMaxLogStep = 0.35;   // 1.5 dB
// Blocks a run may miss (a click, a dropped packet) without ending.
constexpr int kMaxMisses = 1;
constexpr int64_t kBlockMs = 1000 * Detector::kBlock / int(kRate);

}  // namespace

void Detector::Reset() {
  blocks_ = 0;
  runBlocks_ = misses_ = 0;
  runStart_ = 0;
  runHz_ = runLogE_ = lastLogE_ = 0;
  qualified_ = false;
  last_ = Beep{0, 0, 0};
}

int Detector::Process(const int16_t* pcm, int n) {
  int events = 0;
  for (int at = 0; at + kBlock <= n; at += kBlock) events |= Block(pcm + at);
  if (qualified_) events |= kActive;
  return events;
}

int Detector::EndRun() {
  bool was = qualified_;
  runBlocks_ = misses_ = 0;
  qualified_ = false;
  return was ? kEnd : 0;
}

int Detector::Block(const int16_t* x) {
  int64_t index = blocks_++;
  // A sinusoid obeys x[n] + x[n-2] = 2 cos(w) x[n-1] exactly, so the least
  // squares cos(w) is exact on a clean tone at any phase and block length.
  // Added white noise of power s2 pulls it towards 0 (2 kHz): the estimate
  // is num / 2(den - M s2). The noise is estimated from the predictor's
  // residual, which for white noise alone is M s2 (2 + 4 cos² w), and the
  // two are iterated (closed form, no further pass over the samples).
  double r0 = double(x[0]) * x[0] + double(x[1]) * x[1], den = 0, num = 0, sum2 = 0;
  for (int i = 2; i < kBlock; i++) {
    double m = x[i - 1], p = double(x[i]) + x[i - 2];
    r0 += double(x[i]) * x[i];
    den += m * m;
    num += m * p;
    sum2 += p * p;
  }
  bool tonal = false;
  double hz = 0, logE = 0;
  // num > 0: the dominant tone is below fs/4 = 2 kHz (2,000 Hz itself gives
  // about 0 and passes on a clean tone; the range check then decides).
  if (r0 >= kMinPower * kBlock && den > 0 && num > -0.01 * den) {
    double c = num / (2 * den);
    for (int k = 0; k < 3; k++) {
      double residual = sum2 - 4 * c * num + 4 * c * c * den;
      double noise = std::fmax(0.0, residual) / (2 + 4 * c * c);
      c = num / (2 * std::fmax(den - noise, 0.5 * den));
    }
    if (c > 1) c = 1;
    if (c < 0) c = 0;
    hz = std::acos(c) * kRate / (2 * kPi);
    if (hz >= kMinHz && hz <= kMaxHz) {
      double coeff = 2 * c, s1 = 0, s2 = 0;
      for (int i = 0; i < kBlock; i++) {
        double s = x[i] + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
      }
      double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
      tonal = 2 * power >= kMinPurity * kBlock * r0;
      logE = std::log(r0);
    }
  }
  int events = 0;
  bool continues = tonal && runBlocks_ > 0 &&
                   std::fabs(hz - runHz_) <= std::fmax(kDriftHz, kDriftShare * runHz_) &&
                   std::fabs(logE - runLogE_) <= kMaxLogDrift && std::fabs(logE - lastLogE_) <= kMaxLogStep;
  lastLogE_ = logE;
  if (continues) {
    // Running means: the run's frequency and level are what later blocks are held to.
    runHz_ += (hz - runHz_) / (runBlocks_ + 1);
    runLogE_ += (logE - runLogE_) / (runBlocks_ + 1);
    runBlocks_++;
    misses_ = 0;
  } else if (runBlocks_ > 0 && !tonal && misses_ < kMaxMisses) {
    misses_++;
    return 0;
  } else {
    events |= EndRun();
    if (tonal) {
      runBlocks_ = 1;
      runStart_ = index;
      runHz_ = hz;
      runLogE_ = logE;
    }
  }
  if (runBlocks_ == 0) return events;
  int64_t span = index - runStart_ + 1;
  last_ = qualified_ || span >= kMinBlocks ? Beep{runHz_, runStart_ * kBlockMs, span * kBlockMs} : last_;
  if (!qualified_ && span >= kMinBlocks) {
    qualified_ = true;
    events |= kOnset;
  }
  return events;
}

}  // namespace aybiza::beep
