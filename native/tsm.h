// Time-scale modification of 8 kHz PCM by WSOLA-style overlap-add (media
// reference §3: NetEQ's accelerate and preemptive expand). The jitter buffer
// changes its delay with these instead of inserting or skipping whole frames:
// removing or repeating one pitch period of a stationary stretch keeps the
// pitch and the waveform's continuity; in silence any length is inaudible.
// Plain C++, no N-API.
#pragma once

#include <cstdint>

namespace aybiza::tsm {

struct Lag {
  int lag = 0;       // samples
  double corr = 0;   // normalised cross-correlation at lag, -1..1
};

// The lag in [min_lag, max_lag] at which x[lag..lag+win) best matches
// x[0..win) (normalised cross-correlation). x must hold max_lag + win samples.
Lag BestLag(const int16_t* x, int min_lag, int max_lag, int win);

// Removes `lag` samples from the head of x[0..n): the first `lag` output
// samples fade from x[0..lag) into x[lag..2*lag), then x[2*lag..n) follows.
// In place; needs n >= 2 * lag. Returns the new length n - lag.
int Compress(int16_t* x, int n, int lag);

// Inserts `lag` samples near the head of x[0..n): x[0..lag), then a fade
// from x[lag..2*lag) back into x[0..lag), then x[lag..n) again. In place;
// needs n >= 2 * lag and room for n + lag samples. Returns n + lag.
int Stretch(int16_t* x, int n, int lag);

// Mean absolute amplitude of x[0..n) (an energy proxy without a square root).
double MeanAbs(const int16_t* x, int n);

}  // namespace aybiza::tsm
