// WSOLA-style time-scale modification (see tsm.h).
#include "tsm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace aybiza::tsm {

namespace {
int16_t Clamp16(double v) { return int16_t(std::lrint(std::max(-32768.0, std::min(32767.0, v)))); }
// Raised-cosine weights: the fade's slope is zero at both ends, so the
// spliced waveform has no corner where it joins the untouched samples.
double Fade(int i, int len) { return 0.5 - 0.5 * std::cos(M_PI * (i + 0.5) / len); }
}  // namespace

Lag BestLag(const int16_t* x, int min_lag, int max_lag, int win) {
  Lag best{min_lag, -2};
  double ex = 1;
  for (int i = 0; i < win; i++) ex += double(x[i]) * x[i];
  for (int lag = min_lag; lag <= max_lag; lag++) {
    const int16_t* y = x + lag;
    double c = 0, ey = 1;
    for (int i = 0; i < win; i++) {
      c += double(x[i]) * y[i];
      ey += double(y[i]) * y[i];
    }
    double corr = c / std::sqrt(ex * ey);
    // Ties go to the shorter lag: the smaller change is the safer one.
    if (corr > best.corr + 1e-9) best = {lag, corr};
  }
  return best;
}

int Compress(int16_t* x, int n, int lag) {
  for (int i = 0; i < lag; i++) {
    double w = Fade(i, lag);
    x[i] = Clamp16((1 - w) * x[i] + w * x[lag + i]);
  }
  std::memmove(x + lag, x + 2 * lag, size_t(n - 2 * lag) * sizeof(int16_t));
  return n - lag;
}

int Stretch(int16_t* x, int n, int lag) {
  // x[lag..n) moves up by lag; the gap x[lag..2*lag) becomes the fade.
  std::memmove(x + 2 * lag, x + lag, size_t(n - lag) * sizeof(int16_t));
  for (int i = 0; i < lag; i++) {
    double w = Fade(i, lag);
    x[lag + i] = Clamp16((1 - w) * x[2 * lag + i] + w * x[i]);
  }
  return n + lag;
}

double MeanAbs(const int16_t* x, int n) {
  long sum = 0;
  for (int i = 0; i < n; i++) sum += std::abs(int(x[i]));
  return n > 0 ? double(sum) / n : 0;
}

}  // namespace aybiza::tsm
