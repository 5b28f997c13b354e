// G.711 Appendix I style concealment (see plc.h).
#include "plc.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace aybiza::jitter {

namespace {
constexpr int kPitchMin = 40;   // 5 ms: 200 Hz
constexpr int kPitchMax = 120;  // 15 ms: 66 Hz
constexpr int kCorrLen = 160;
constexpr int kFadeStart = 80;  // full level for the first 10 ms of an erasure
constexpr int kFadeStep = 80;   // then -20 % per 10 ms: silent after 60 ms

int16_t Clamp16(float v) { return int16_t(std::lrint(std::max(-32768.f, std::min(32767.f, v)))); }
float Gain(int erased) {
  if (erased < kFadeStart) return 1.f;
  return std::max(0.f, 1.f - 0.2f * float(erased - kFadeStart) / kFadeStep);
}
}  // namespace

void Concealer::Reset() { *this = Concealer(); }

void Concealer::Push(const int16_t* pcm) {
  std::memmove(history_, history_ + kFrameSamples, (kHistory - kFrameSamples) * sizeof(int16_t));
  std::memcpy(history_ + kHistory - kFrameSamples, pcm, kFrameSamples * sizeof(int16_t));
}

void Concealer::Silence() {
  static const int16_t kZero[kFrameSamples] = {};
  erased_ = 0;
  Push(kZero);
}

// Lag maximising the normalised cross-correlation of the last 20 ms with the
// signal one lag earlier; only the candidate's energy varies with the lag.
int Concealer::EstimatePitch() const {
  const int16_t* x = history_ + kHistory - kCorrLen;
  int best = kPitchMin;
  double best_score = 0;
  for (int lag = kPitchMin; lag <= kPitchMax; lag++) {
    const int16_t* y = x - lag;
    double c = 0, e = 1;
    for (int i = 0; i < kCorrLen; i++) {
      c += double(x[i]) * y[i];
      e += double(y[i]) * y[i];
    }
    double score = c / std::sqrt(e);
    if (score > best_score) best_score = score, best = lag;
  }
  return best;
}

// Loops the last `periods` pitch periods. The buffer's tail is cross-faded
// over a quarter period into the samples that precede its start, so each
// wrap-around continues the waveform instead of clicking.
void Concealer::BuildPeriods(int periods) {
  int len = periods * pitch_;
  for (int i = 0; i < len; i++) pitch_buf_[i] = history_[kHistory - len + i];
  int q = pitch_ / 4;
  for (int i = 0; i < q; i++) {
    float w = float(i + 1) / float(q + 1);
    int at = len - q + i;
    pitch_buf_[at] = (1 - w) * pitch_buf_[at] + w * history_[kHistory - len - q + i];
  }
  // Keep the same point of the waveform: both buffers end at the history's end.
  if (periods_ > 0) pos_ += len - seg_len_;
  seg_len_ = len;
  periods_ = periods;
}

float Concealer::Next() {
  float v = pitch_buf_[pos_];
  if (++pos_ >= seg_len_) pos_ = 0;
  return v;
}

void Concealer::Conceal(int16_t* pcm) {
  if (erased_ == 0) {
    pitch_ = EstimatePitch();
    periods_ = 0;
    pos_ = 0;
    BuildPeriods(1);
  }
  for (int i = 0; i < kFrameSamples; i++, erased_++) {
    // Appendix I: 1, then 2, then 3 periods after 10 and 20 ms, against buzz.
    int want = erased_ < 80 ? 1 : erased_ < 160 ? 2 : 3;
    if (want != periods_) BuildPeriods(want);
    pcm[i] = erased_ >= kFadeStart + 5 * kFadeStep ? 0 : Clamp16(Next() * Gain(erased_));
  }
}

int Concealer::Good(int16_t* pcm) {
  int merged = 0;
  if (erased_ > 0) {
    // Appendix I: merge over 4 ms, plus 4 ms per extra 10 ms of erasure, at most 10 ms.
    merged = std::min(80, 32 * std::max(1, erased_ / 80));
    for (int i = 0; i < merged; i++) {
      float syn = Next() * Gain(erased_ + i);
      float w = float(i + 1) / float(merged + 1);
      pcm[i] = Clamp16((1 - w) * syn + w * pcm[i]);
    }
    erased_ = 0;
  }
  Push(pcm);
  return merged;
}

}  // namespace aybiza::jitter
