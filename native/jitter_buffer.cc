// Jitter buffer core (see jitter_buffer.h for the playout model). No N-API:
// the binding is jitter_buffer_js.cc.
#include "jitter_buffer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>

#include "g711.h"

namespace aybiza::jitter {

Buffer::Buffer(const Options& options) : opt_(options) { Reset(); }

void Buffer::Reset() {
  stats_ = Stats();
  has_ssrc_ = false;
  playing_ = false;
  Restart();
}

void Buffer::Restart() {
  for (auto& s : slots_) s.seq = -1;
  std::fill(std::begin(seen_), std::end(seen_), int64_t(-1));
  plc_.Reset();
  // After a mid-call restart the caller's output keeps running: fill the new
  // build-up with silence rather than null. Buffered old-stream packets go.
  resumed_ = playing_;
  started_ = playing_ = false;
  held_ = since_voiced_drop_ = debt_ = 0;
  last_quiet_ = true;
  disorder_seen_ = false;
  waited_seq_ = -1;
  last_played_seq_ = -1;
  // A weak prior at 40 ms: start cautious, then let measurements take over.
  delays_.Reset(40);
  UpdateTarget();
}

int64_t Buffer::ExtendSeq(uint16_t seq) const { return max_seq_ + int16_t(uint16_t(seq - uint16_t(max_seq_))); }
int64_t Buffer::ExtendTs(uint32_t ts) const { return max_ts_ + int32_t(uint32_t(ts - uint32_t(max_ts_))); }

void DelayHistogram::Reset(double prior_ms) {
  std::fill(std::begin(bins_), std::end(bins_), 0.0);
  scale_ = 1;
  total_ = 0;
  Add(prior_ms, 1);
}

void DelayHistogram::Add(double delay_ms, double weight) {
  scale_ /= forget_;
  if (scale_ > 1e200) {
    for (double& b : bins_) b /= scale_;
    total_ /= scale_;
    scale_ = 1;
  }
  int bin = std::clamp(int(delay_ms / kBinMs), 0, kBins - 1);
  bins_[bin] += weight * scale_;
  total_ += weight * scale_;
}

double DelayHistogram::Quantile() const {
  double above = 0;
  double want = (1 - quantile_) * total_;
  for (int i = kBins - 1; i >= 0; i--) {
    if (above + bins_[i] > want) return (i + 1 - (want - above) / bins_[i]) * kBinMs;  // interpolate in the bin
    above += bins_[i];
  }
  return 0;
}

// Relative delay = transit minus the fastest transit of the last 5-10 s; the
// window lets the reference follow a route change and clock drift.
void Buffer::ObserveDelay(double arrival_ms, int64_t ts, bool late) {
  double transit = arrival_ms - double(ts - base_ts_) / 8.0;
  if (arrival_ms - dmin_block_start_ >= 5000) {
    dmin_prev_ = dmin_cur_;
    dmin_cur_ = transit;
    dmin_block_start_ = arrival_ms;
  } else {
    dmin_cur_ = std::min(dmin_cur_, transit);
  }
  double r = transit - std::min(dmin_prev_, dmin_cur_);
  // A packet that missed its slot weighs more: the target covers it at once
  // (grow fast) and forgets it slowly like the rest (shrink slowly).
  double w = late ? kLateWeight : 1;
  delays_.Add(r, w);
  UpdateTarget();
}

void Buffer::UpdateTarget() {
  target_ms_ = std::clamp(delays_.Quantile() + kMarginMs, opt_.min_delay_ms, opt_.max_delay_ms);
}

double Buffer::CurrentDelay(double now_ms) const {
  return now_ms - double(play_ - base_ts_) / 8.0 - std::min(dmin_prev_, dmin_cur_);
}

PushResult Buffer::Push(uint16_t seq, uint32_t timestamp, const uint8_t* payload, double arrival_ms, bool has_ssrc,
                        uint32_t ssrc) {
  PushResult result = PushResult::kAccepted;
  if (started_ && has_ssrc && (!has_ssrc_ || ssrc != ssrc_)) Restart(), result = PushResult::kRestarted;
  if (started_) {
    int64_t d = ExtendSeq(seq) - max_seq_;
    int64_t dts = ExtendTs(timestamp) - play_;
    // A jump of thousands of packets, or time running back over a second while
    // the sequence moves on, is a new stream (sender restart, re-INVITE). So is
    // time leaping further ahead than a hold can explain: after a real DTX
    // pause the playout point has kept up with the wall clock.
    bool ts_leap = d > 0 && (dts < -8000 || dts > 8 * (opt_.max_delay_ms + 2000));
    if (d >= kRestartJump || d <= -kRestartJump || ts_leap) Restart(), result = PushResult::kRestarted;
  }
  if (has_ssrc) has_ssrc_ = true, ssrc_ = ssrc;
  stats_.received++;
  if (!started_) {
    started_ = true;
    // Offsets keep extended values positive across backward wraps.
    max_seq_ = (int64_t(1) << 20) + seq;
    max_ts_ = base_ts_ = play_ = (int64_t(1) << 40) + timestamp;
    dmin_prev_ = dmin_cur_ = arrival_ms;
    dmin_block_start_ = arrival_ms;
  }
  int64_t es = ExtendSeq(seq), ets = ExtendTs(timestamp);
  int64_t& seen = seen_[es & 1023];
  if (seen == es) {
    stats_.duplicate++;
    return PushResult::kDuplicate;
  }
  seen = es;
  bool late = playing_ && (es <= last_played_seq_ || ets < play_ - kFrameSamples / 2);
  ObserveDelay(arrival_ms, ets, late);
  if (late || es < max_seq_) disorder_seen_ = true, last_disorder_ms_ = arrival_ms;
  if (late) {
    stats_.late++;
    // Counted lost when playout passed it; it did arrive, just too late.
    if (es < last_played_seq_ && stats_.lost > 0) stats_.lost--;
    return PushResult::kLate;
  }
  if (es < max_seq_) stats_.reordered++;
  if (es > max_seq_) max_seq_ = es, max_ts_ = ets;
  if (!playing_ && ets < play_) play_ = ets;  // first packets arrived out of order
  Slot& slot = slots_[es % kSlots];
  if (slot.seq >= 0) stats_.late++;  // evicting an unplayed packet 64 frames behind
  slot.seq = es;
  slot.ts = ets;
  std::memcpy(slot.payload, payload, kFrameSamples);
  return result;
}

Buffer::Slot* Buffer::NextBuffered() {
  Slot* best = nullptr;
  for (Slot& s : slots_) {
    if (s.seq >= 0 && (!best || s.ts < best->ts)) best = &s;
  }
  return best;
}

void Buffer::Decode(const uint8_t* in, int16_t* out) const {
  const int16_t* table = opt_.codec == Codec::kPcmu ? g711::kUlawToLinear : g711::kAlawToLinear;
  for (int i = 0; i < kFrameSamples; i++) out[i] = table[in[i]];
}

void Buffer::Encode(const int16_t* in, uint8_t* out, int n) const {
  const uint8_t* table = opt_.codec == Codec::kPcmu ? g711::kLinearToUlaw : g711::kLinearToAlaw;
  for (int i = 0; i < n; i++) out[i] = table[uint16_t(in[i])];
}

// About -50 dBov: below this a frame can be dropped or repeated unheard.
static bool QuietPcm(const int16_t* pcm) {
  int sum = 0;
  for (int i = 0; i < kFrameSamples; i++) sum += std::abs(int(pcm[i]));
  return sum < 100 * kFrameSamples;
}

bool Buffer::Quiet(const uint8_t* payload) const {
  int16_t pcm[kFrameSamples];
  Decode(payload, pcm);
  return QuietPcm(pcm);
}

PopResult Buffer::PlaySlot(Slot& s, uint8_t* out) {
  if (last_played_seq_ >= 0) {
    for (int64_t q = last_played_seq_ + 1; q < s.seq && q < last_played_seq_ + 1024; q++) {
      if (seen_[q & 1023] != q) stats_.lost++;
    }
  }
  last_played_seq_ = std::max(last_played_seq_, s.seq);
  play_ = s.ts + kFrameSamples;
  int16_t pcm[kFrameSamples];
  Decode(s.payload, pcm);
  std::memcpy(out, s.payload, kFrameSamples);
  int merged = plc_.Good(pcm);
  Encode(pcm, out, merged);  // only the merged head differs from what arrived
  last_quiet_ = QuietPcm(pcm);
  s.seq = -1;
  held_ = 0;
  stats_.played++;
  return PopResult::kPlayed;
}

PopResult Buffer::ConcealFrame(uint8_t* out) {
  int16_t pcm[kFrameSamples];
  plc_.Conceal(pcm);
  Encode(pcm, out, kFrameSamples);
  stats_.concealed++;
  return PopResult::kConcealed;
}

PopResult Buffer::SilenceFrame(uint8_t* out) {
  plc_.Silence();
  last_quiet_ = true;
  std::memset(out, opt_.codec == Codec::kPcmu ? 0xFF : 0xD5, kFrameSamples);
  return PopResult::kSilence;
}

// The frame at the playout point is here; adapt the delay around playing it.
PopResult Buffer::PlayDue(Slot& slot, double cur, uint8_t* out) {
  if (cur < target_ms_ - kMarginMs) {
    // Too little delay buffered: insert one frame, a period repeat mid-speech.
    return last_quiet_ ? SilenceFrame(out) : ConcealFrame(out);
  }
  // Too much delay: drop a quiet frame whenever possible, a voiced one only
  // rarely; either way one 20 ms frame, and only if its successor is here.
  // Still at or above target after the drop; or waiting put us 20 ms up.
  bool over = cur > target_ms_ + 15 || (debt_ > 0 && cur - 20 >= target_ms_ - kMarginMs);
  bool far_over = (cur > target_ms_ + 35 && since_voiced_drop_ >= 10) || cur > opt_.max_delay_ms;
  if (!over) return PlaySlot(slot, out);
  Slot* after = nullptr;
  for (Slot& s : slots_) {
    if (s.seq > slot.seq && s.ts <= slot.ts + kFrameSamples) after = &s;
  }
  bool quiet = Quiet(slot.payload);
  if (!after || !(quiet || far_over)) return PlaySlot(slot, out);
  if (!quiet) since_voiced_drop_ = 0;
  if (debt_ > 0) debt_--;
  last_played_seq_ = std::max(last_played_seq_, slot.seq);
  slot.seq = -1;
  play_ = slot.ts + kFrameSamples;
  return PlaySlot(*after, out);
}

PopResult Buffer::Pop(double now_ms, uint8_t* out) {
  if (!started_) return PopResult::kNone;
  double cur = CurrentDelay(now_ms);
  if (!playing_) {
    if (cur < target_ms_) return resumed_ ? SilenceFrame(out) : PopResult::kNone;
    playing_ = true;
  }
  stats_.current_delay_ms = cur;
  since_voiced_drop_++;
  Slot* next = NextBuffered();
  if (!next) {
    // Underrun: loss, lateness and DTX look alike until the next packet, so
    // hold the playout point (bounded by maxDelayMs) and bridge the wait.
    if (cur + 20 <= opt_.max_delay_ms) held_++;
    else play_ += kFrameSamples;
    return last_quiet_ && !plc_.InErasure() ? SilenceFrame(out) : ConcealFrame(out);
  }
  // Frames output during a hold stand in for the gap the next packet reveals.
  int64_t gap = (next->ts - play_ + kFrameSamples / 2) / kFrameSamples;
  if (held_ > 0 && gap > 0) play_ += std::min<int64_t>(held_, gap) * kFrameSamples;
  held_ = 0;
  if (next->ts < play_ + kFrameSamples / 2) return PlayDue(*next, cur, out);
  // A known gap before the next packet: no missing sequence numbers means the
  // sender stopped sending (DTX), so it is silence, not loss.
  bool dtx = next->seq == last_played_seq_ + 1;
  if (!dtx && last_played_seq_ >= 0 && waited_seq_ != last_played_seq_ + 1 && disorder_seen_ &&
      now_ms - last_disorder_ms_ < kDisorderMemoryMs && cur + 20 <= opt_.max_delay_ms) {
    // The next packet is missing but later ones are here. On a path that has
    // reordered lately it is more likely in flight than lost (reordered
    // packets trail their successors by tens of ms): conceal one frame without
    // moving the playout point, so it can still play, as NetEQ expands before
    // it gives up on a packet. The 20 ms are won back on a later quiet frame.
    waited_seq_ = last_played_seq_ + 1;
    debt_++;
    return ConcealFrame(out);
  }
  play_ += kFrameSamples;
  if (dtx) {
    bool shrink = cur > target_ms_ + 15 || (debt_ > 0 && cur - 20 >= target_ms_ - kMarginMs);
    if (shrink && next->ts >= play_ + kFrameSamples) {
      play_ += kFrameSamples;  // shrink in silence
      if (debt_ > 0) debt_--;
    }
    return SilenceFrame(out);
  }
  return ConcealFrame(out);
}

Stats Buffer::GetStats() const {
  Stats s = stats_;
  s.target_delay_ms = target_ms_;
  return s;
}

}  // namespace aybiza::jitter
