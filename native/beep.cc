// Beep detector (see beep.h for the method and why).
#include "beep.h"

#include <cmath>

namespace aybiza::beep {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRate = 8000;
constexpr double kHighPassHz = 250;
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
  x1_ = x2_ = y1_ = y2_ = 0;
  qualified_ = false;
  last_ = Beep{0, 0, 0};
}

Detector::Detector() {
  // Butterworth high-pass (RBJ biquad) at kHighPassHz: traffic, hum, HVAC and
  // pink noise put most of their power below a beep's range, and low-
  // frequency noise both biases the predictor and dilutes the purity.
  double w0 = 2 * kPi * kHighPassHz / kRate, cw = std::cos(w0), alpha = std::sin(w0) / (2 * 0.7071067811865476);
  double a0 = 1 + alpha;
  b0_ = float((1 + cw) / 2 / a0);
  b1_ = float(-(1 + cw) / a0);
  a1_ = float(-2 * cw / a0);
  a2_ = float((1 - alpha) / a0);
  Reset();
}

int Detector::Process(const int16_t* pcm, int n) {
  int events = 0;
  for (int at = 0; at + kBlock <= n; at += kBlock) {
    // State and coefficients in locals: as members, every store to filtered_ could alias them.
    float* y = filtered_;
    float x1 = x1_, x2 = x2_, y1 = y1_, y2 = y2_;
    const float b0 = b0_, b1 = b1_, a1 = a1_, a2 = a2_;
    for (int i = 0; i < kBlock; i++) {
      float x = pcm[at + i];
      // b2 = b0 for a high-pass biquad.
      float v = b0 * (x + x2) + b1 * x1 - a1 * y1 - a2 * y2;
      x2 = x1;
      x1 = x;
      y2 = y1;
      y1 = v;
      y[i] = v;
    }
    // Digital silence would let the state decay into denormals, which cost
    // a hundred times more per operation: below any audible level, it is 0.
    if (std::fabs(y1) + std::fabs(y2) < 1e-6f) y1 = y2 = 0;
    x1_ = x1, x2_ = x2, y1_ = y1, y2_ = y2;
    events |= Block(y);
  }
  if (qualified_) events |= kActive;
  return events;
}

int Detector::EndRun() {
  bool was = qualified_;
  runBlocks_ = misses_ = 0;
  qualified_ = false;
  return was ? kEnd : 0;
}

int Detector::Block(const float* x) {
  int64_t index = blocks_++;
  // A sinusoid obeys x[n] + x[n-2] = 2 cos(w) x[n-1] exactly, so the least
  // squares cos(w) is exact on a clean tone at any phase and block length.
  // Added white noise of power s2 pulls it towards 0 (2 kHz): the estimate
  // is num / 2(den - M s2). The noise is estimated from the predictor's
  // residual, which for white noise alone is M s2 (2 + 4 cos² w), and the
  // two are iterated (closed form, no further pass over the samples).
  // Float sums vectorise (four lanes); 80 products lose nothing that matters to these ratios.
  float fr0 = x[0] * x[0] + x[1] * x[1], fden = 0, fnum = 0, fsum2 = 0;
  for (int i = 2; i < kBlock; i++) {
    float m = x[i - 1], p = x[i] + x[i - 2];
    fr0 += x[i] * x[i];
    fden += m * m;
    fnum += m * p;
    fsum2 += p * p;
  }
  double r0 = fr0, den = fden, num = fnum, sum2 = fsum2;
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
    // 2 % of slack at the edges: a 350 Hz beep must not fail on the estimate's last hertz.
    if (hz >= 0.98 * kMinHz && hz <= 1.02 * kMaxHz) {
      float coeff = float(2 * c), s1 = 0, s2 = 0;
      for (int i = 0; i < kBlock; i++) {
        float s = x[i] + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
      }
      double power = double(s1) * s1 + double(s2) * s2 - double(coeff) * s1 * s2;
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
