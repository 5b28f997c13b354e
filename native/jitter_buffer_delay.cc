// The jitter buffer's delay estimators (declared in jitter_buffer.h): the
// relative-delay histograms and their cost rule, the drift-corrected transit
// reference, and the per-call playout delay statistics.
#include <algorithm>
#include <cmath>
#include <iterator>

#include "jitter_buffer.h"

namespace aybiza::jitter {

void DelayHistogram::Reset(double prior_ms, double weight, int lifetime) {
  std::fill(std::begin(bins_), std::end(bins_), 0.0);
  scale_ = 1;
  prior_bin_ = std::clamp(int(prior_ms / kBinMs), 0, kBins - 1);
  bins_[prior_bin_] = total_ = prior_weight_ = weight;
  prior_left_ = lifetime;
  top_ = prior_bin_;
}

void DelayHistogram::Add(double delay_ms) {
  scale_ /= forget_;
  if (scale_ > 1e200) {
    for (double& b : bins_) b /= scale_;
    total_ /= scale_;
    prior_weight_ /= scale_;
    scale_ = 1;
  }
  int bin = std::clamp(int(delay_ms / kBinMs), 0, kBins - 1);
  top_ = std::max(top_, bin);
  bins_[bin] += scale_;
  total_ += scale_;
  // The prior only stands in until the path has spoken for itself.
  if (prior_left_ > 0 && --prior_left_ == 0) {
    bins_[prior_bin_] = std::max(0.0, bins_[prior_bin_] - prior_weight_);
    total_ -= prior_weight_;
  }
}

double DelayHistogram::CostTarget(double late_cost_ms, double budget, double floor_ms, double max_ms) const {
  // Scan candidate delays (bin upper edges) from the top, accumulating the
  // weight above each one: the cheapest by cost, and the smallest that keeps
  // late loss within the budget (max_ms when none does).
  double above = 0, best = max_ms, best_cost = 1e300, within = max_ms;
  double per_weight = 1 / total_, late_cost = late_cost_ms * 100;
  // Bins above top_ are empty; bins whose weight has faded below a
  // hundred-millionth of the total move top_ down (together under 0.3 ms of cost).
  while (top_ > 0 && bins_[top_] * per_weight < 1e-8) above += bins_[top_--];
  int top = std::min(kBins - 1, int(max_ms / kBinMs));
  for (int i = top_; i > top; i--) above += bins_[i];
  for (int i = std::min(top, top_); i >= 0; i--) {
    double d = std::min(max_ms, (i + 1) * kBinMs);
    double late = above * per_weight;
    // Lower candidates only add late loss: once it alone costs more than the
    // best so far and the budget is already exceeded, nothing below can win.
    if (late_cost * late > best_cost && late > budget) break;
    if (late <= budget) within = d;
    double cost = d + late_cost * late;
    if (cost <= best_cost) best_cost = cost, best = d;
    above += bins_[i];
  }
  // Never more late loss than the budget; beyond it, the cost rule, capped
  // at floor_ms (covering the tail below that is cheap and late loss is what
  // callers hear; above it a heavy tail would set the delay).
  return std::max(within, std::min(best, std::max(within, floor_ms)));
}

double DelayHistogram::Late(double d) const {
  int bin = std::clamp(int(d / kBinMs), 0, kBins);
  if (bin >= kBins) return 0;
  double above = bins_[bin] * (1 - std::min(1.0, d / kBinMs - bin));
  for (int i = std::min(top_, kBins - 1); i > bin; i--) above += bins_[i];
  return above / total_;
}

bool DelayHistogram::HeavyTail(double ratio) const {
  // One pass from the top: the bin edges where the weight above first reaches
  // 1 %, 10 % and 50 % of the total.
  const double want[3] = {0.01 * total_, 0.1 * total_, 0.5 * total_};
  double q[3] = {0, 0, 0}, above = 0;
  int k = 0;
  for (int i = std::min(top_, kBins - 1); i >= 0 && k < 3; i--) {
    above += bins_[i];
    while (k < 3 && above > want[k]) q[k++] = i * kBinMs;
  }
  return q[0] - q[1] > ratio * std::max(q[1] - q[2], kBinMs);
}

void TransitReference::Reset(double arrival_ms, double transit) {
  blocks_ = 0;
  slope_ = 0;
  cur_start_ = cur_t_ = arrival_ms;
  cur_min_ = transit;
}

void TransitReference::Add(double arrival_ms, double transit) {
  if (arrival_ms - cur_start_ >= kBlockMs) {
    CloseBlock();
    cur_start_ = cur_t_ = arrival_ms;
    cur_min_ = transit;
  } else if (transit < cur_min_) {
    cur_min_ = transit;
    cur_t_ = arrival_ms;
  }
}

// Theil-Sen: the median of the pairwise slopes of the block minima. A delay
// spike or a route change moves one or two blocks, not the median.
void TransitReference::CloseBlock() {
  block_t_[blocks_ % kBlocks] = cur_t_;
  block_min_[blocks_ % kBlocks] = cur_min_;
  blocks_++;
  int n = std::min(blocks_, kBlocks);
  if (n < 4) return;
  double slopes[kBlocks * (kBlocks - 1) / 2];
  int m = 0;
  for (int i = 0; i < n; i++) {
    for (int j = i + 1; j < n; j++) {
      double dt = block_t_[j] - block_t_[i];
      if (std::abs(dt) >= kBlockMs / 2) slopes[m++] = (block_min_[j] - block_min_[i]) / dt;
    }
  }
  if (m == 0) return;
  std::nth_element(slopes, slopes + m / 2, slopes + m);
  // Beyond 1000 ppm it is no oscillator: a route change in progress.
  slope_ = std::clamp(slopes[m / 2], -1e-3, 1e-3);
}

double TransitReference::At(double now_ms) const {
  double ref = cur_min_ + slope_ * (now_ms - cur_t_);
  int n = std::min({blocks_, kBlocks, kRefBlocks - 1});
  for (int k = 1; k <= n; k++) {
    int i = (blocks_ - k) % kBlocks;
    ref = std::min(ref, block_min_[i] + slope_ * (now_ms - block_t_[i]));
  }
  return ref;
}

void DelayStats::Add(double ms) {
  bins_[std::clamp(int(ms), 0, kBins - 1)]++;
  n_++;
  sum_ += ms;
}

double DelayStats::Percentile(double p) const {
  if (n_ == 0) return 0;
  uint64_t want = uint64_t(std::ceil(p * double(n_))), seen = 0;
  for (int i = 0; i < kBins; i++) {
    seen += bins_[i];
    if (seen >= want) return i + 0.5;
  }
  return kBins;
}

}  // namespace aybiza::jitter
