// Jitter buffer core (see jitter_buffer.h for the playout model). No N-API:
// the binding is jitter_buffer_js.cc; the delay estimators are in
// jitter_buffer_delay.cc.
#include "jitter_buffer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>

#include "g711.h"
#include "tsm.h"

namespace aybiza::jitter {

namespace {
  // hysteresis around the target: late loss costs more

constexpr int kMinLag = 40;             // 5 ms: the shortest pitch period searched
constexpr int kMaxVoicedLag = 120;      // 15 ms: the longest
constexpr int kMaxQuietLag = 160;       // 20 ms of near-silence at once
constexpr int kWin = 80;                // 10 ms correlation window
constexpr double kQuietMeanAbs = 100;   // about -50 dBov: inaudible to splice
constexpr double kStrictCorr = 0.85, kLooseCorr = 0.6;
constexpr int kPatience = 10;           // pops (200 ms) waiting for a pause before speech is stretched
constexpr int kDownPatience = 50;       // and 1 s before it is compressed
constexpr double kUrgentMs = 20;        // a deadline this far below target does not wait for a pause
constexpr int kMinQuietLag = 8;         // 1 ms: smaller changes wait
constexpr double kMinStepMs = 1;
constexpr double kStepDownMs = 1;       // hysteresis: a step down must clear the target by this much
}  // namespace

Buffer::Buffer(const Options& options) : opt_(options) { Reset(); }

void Buffer::Reset() {
  stats_ = Stats();
  played_delays_ = DelayStats();
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
  held_ = deferred_ = q_len_ = 0;
  for (Gap& g : gaps_) g = Gap();
  last_quiet_ = true;
  last_played_seq_ = -1;
  // A prior of ten packets at 50 ms: cautious while the first packets say
  // little about the tail, and gone after 2 s (left to fade, it held the
  // target up for ~10 s on calm paths). The long memory starts neutral.
  late_cost_ms_ = kLateCostMs, tail_check_ = 0;
  fast_.Reset(50, 10, kPriorPackets);
  slow_.Reset(0, 1);
  UpdateTarget();
}

int64_t Buffer::ExtendSeq(uint16_t seq) const { return max_seq_ + int16_t(uint16_t(seq - uint16_t(max_seq_))); }
int64_t Buffer::ExtendTs(uint32_t ts) const { return max_ts_ + int32_t(uint32_t(ts - uint32_t(max_ts_))); }

void Buffer::ObserveDelay(double arrival_ms, int64_t ts) {
  double transit = arrival_ms - double(ts - base_ts_) / 8.0;
  ref_.Add(arrival_ms, transit);
  double r = transit - ref_.At(arrival_ms);
  fast_.Add(r);
  slow_.Add(r);
  UpdateTarget();
}

void Buffer::UpdateTarget() {
  double budget = opt_.late_loss_budget;
  // The 7 s histogram's shape moves slowly: judged every kTailEvery packets.
  if (++tail_check_ >= kTailEvery) tail_check_ = 0, late_cost_ms_ = slow_.HeavyTail(kTailRatio) ? kHeavyLateCostMs : kLateCostMs;
  double t = std::max(fast_.CostTarget(late_cost_ms_, budget, kBudgetFloorMs, opt_.max_delay_ms),
                      slow_.CostTarget(late_cost_ms_, budget, kBudgetFloorMs, opt_.max_delay_ms));
  target_ms_ = std::clamp(t, opt_.min_delay_ms, opt_.max_delay_ms);
}

// Delay of the sample played now: its sender time against the reference.
double Buffer::CurrentDelay(double now_ms) const {
  return now_ms - double(play_ - q_len_ - base_ts_) / 8.0 - ref_.At(now_ms);
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
    ref_.Reset(arrival_ms, arrival_ms);
  }
  int64_t es = ExtendSeq(seq), ets = ExtendTs(timestamp);
  int64_t& seen = seen_[es & 1023];
  if (seen == es) {
    stats_.duplicate++;
    return PushResult::kDuplicate;
  }
  seen = es;
  bool late = playing_ && (es <= last_played_seq_ || ets < play_ - kFrameSamples / 2);
  ObserveDelay(arrival_ms, ets);
  // A packet due now whose slot an underrun filled, or a late one whose
  // concealed slot is still unplayed, takes its slot back.
  if (late || (playing_ && ets == play_ && held_ > 0)) {
    Rescued r = Rescue(es, ets, payload, arrival_ms);
    if (r == Rescued::kWhole) return result;
    if (r == Rescued::kPart) return PushResult::kLate;
  }
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
  slot.arrival_ms = arrival_ms;
  std::memcpy(slot.payload, payload, kFrameSamples);
  return result;
}

// RFC 4733 events (and other non-audio payloads) share the stream's sequence
// numbers: such a number arrived, so it is not audio lost, and a gap made of
// them plays as silence, like DTX.
void Buffer::Skip(uint16_t seq) {
  if (!started_) return;
  int64_t es = ExtendSeq(seq);
  if (es - max_seq_ >= kRestartJump || max_seq_ - es >= kRestartJump) return;
  seen_[es & 1023] = es;
}

// Every sequence number in (from, to) arrived without audio (Skip), or there is none.
bool Buffer::NoAudioMissing(int64_t from, int64_t to) const {
  if (to - from > 1024) return false;
  for (int64_t q = from + 1; q < to; q++) {
    if (seen_[q & 1023] != q) return false;
  }
  return true;
}

Buffer::Slot* Buffer::NextBuffered() {
  Slot* best = nullptr;
  for (Slot& s : slots_) {
    if (s.seq >= 0 && (!best || s.ts < best->ts)) best = &s;
  }
  return best;
}

// The next frame to decode is a packet that is here (not a gap or underrun).
bool Buffer::NextDue() {
  Slot* next = NextBuffered();
  return next && next->ts < play_ + kFrameSamples / 2;
}

void Buffer::Decode(const uint8_t* in, int16_t* out) const {
  const int16_t* table = opt_.codec == Codec::kPcmu ? g711::kUlawToLinear : g711::kAlawToLinear;
  for (int i = 0; i < kFrameSamples; i++) out[i] = table[in[i]];
}

void Buffer::Encode(const int16_t* in, uint8_t* out, int n) const {
  const uint8_t* table = opt_.codec == Codec::kPcmu ? g711::kLinearToUlaw : g711::kLinearToAlaw;
  for (int i = 0; i < n; i++) out[i] = table[uint16_t(in[i])];
}

void Buffer::Append(const int16_t* pcm, Kind kind) {
  std::memcpy(queue_ + q_len_, pcm, kFrameSamples * sizeof(int16_t));
  std::memset(kinds_ + q_len_, kind, kFrameSamples);
  q_len_ += kFrameSamples;
  q_end_ += kFrameSamples;
}

void Buffer::PlaySlot(Slot& s, double now_ms) {
  if (last_played_seq_ >= 0) {
    for (int64_t q = last_played_seq_ + 1; q < s.seq && q < last_played_seq_ + 1024; q++) {
      if (seen_[q & 1023] != q) stats_.lost++;
    }
  }
  last_played_seq_ = std::max(last_played_seq_, s.seq);
  play_ = s.ts + kFrameSamples;
  // Its first sample plays once the queue ahead of it has been played.
  played_delays_.Add(now_ms + q_len_ / 8.0 - s.arrival_ms);
  int16_t pcm[kFrameSamples];
  Decode(s.payload, pcm);
  plc_.Good(pcm);
  last_quiet_ = tsm::MeanAbs(pcm, kFrameSamples) < kQuietMeanAbs;
  Append(pcm, kReal);
  s.seq = -1;
  held_ = 0;
  stats_.played++;
}

void Buffer::AppendConcealment() {
  int16_t pcm[kFrameSamples];
  plc_.Conceal(pcm);
  Append(pcm, kSynth);
  stats_.concealed++;
}

void Buffer::AppendSilence() {
  static const int16_t kZero[kFrameSamples] = {};
  plc_.Silence();
  last_quiet_ = true;
  Append(kZero, kQuiet);
}

// Decodes the frame at play_ into the queue: the packet, or what stands in.
void Buffer::Fetch(double now_ms) {
  Slot* next = NextBuffered();
  if (!next) {
    // Underrun: loss, lateness and DTX look alike until the next packet, so
    // hold the playout point (bounded by maxDelayMs) and bridge the wait.
    bool hold = CurrentDelay(now_ms) + 20 <= opt_.max_delay_ms;
    if (last_quiet_ && !plc_.InErasure()) AppendSilence();
    else AppendConcealment();
    if (hold) {
      if (held_++ == 0) AddGap(play_, true);
    } else {
      AddGap(play_, false);
      play_ += kFrameSamples;
    }
    return;
  }
  // Frames output during a hold stand in for the gap the next packet reveals.
  int64_t gap = (next->ts - play_ + kFrameSamples / 2) / kFrameSamples;
  if (held_ > 0 && gap > 0) play_ += std::min<int64_t>(held_, gap) * kFrameSamples;
  held_ = 0;
  if (next->ts < play_ + kFrameSamples / 2) return PlaySlot(*next, now_ms);
  // A known gap before the next packet: no missing sequence numbers means the
  // sender stopped sending (DTX), so it is silence; missing ones are loss,
  // concealed in place (the playout point moves on).
  bool dtx = NoAudioMissing(last_played_seq_, next->seq);
  if (dtx) AppendSilence();
  else AppendConcealment(), AddGap(play_, false);
  play_ += kFrameSamples;
}

// A packet whose concealed stand-in is still (at least partly) unplayed in
// the queue takes its place. The queue's tail is untouched by time-scale
// steps (they work on its head and invalidate gaps they reach), so the
// frame's samples end play_ - ts samples before the queue's end.
void Buffer::AddGap(int64_t ts, bool held) {
  Gap& g = gaps_[(ts / kFrameSamples) % kGaps];
  g.ts = ts;
  g.end = q_end_;
  g.held = held;
  g.synth = kinds_[q_len_ - 1] == kSynth;  // called right after the frame's Append
}

Buffer::Rescued Buffer::Rescue(int64_t seq, int64_t ts, const uint8_t* payload, double arrival_ms) {
  Gap& gap = gaps_[(ts / kFrameSamples) % kGaps];
  if (gap.ts != ts) return Rescued::kNo;
  // An underrun frame can only be replaced while playout still waits on it.
  if (gap.held && !(held_ > 0 && play_ == ts)) return Rescued::kNo;
  int64_t start = q_len_ - (q_end_ - gap.end) - kFrameSamples;
  if (start + kFrameSamples <= kFrameSamples / 2) return Rescued::kNo;  // half of it heard already
  gap.ts = -1;
  if (gap.held) {
    held_--;
    play_ = ts + kFrameSamples;
    last_played_seq_ = std::max(last_played_seq_, seq);
  }
  int16_t pcm[kFrameSamples];
  Decode(payload, pcm);
  int from = int(std::max<int64_t>(0, -start));
  for (int i = from; i < kFrameSamples; i++) {
    // Fade in over 2 ms where the concealment has started to play.
    double w = from > 0 ? std::min(1.0, (i - from + 1) / 16.0) : 1.0;
    int16_t& q = queue_[start + i];
    q = int16_t(std::lrint((1 - w) * q + w * pcm[i]));
    kinds_[start + i] = kReal;
  }
  if (seq < last_played_seq_ && stats_.lost > 0) stats_.lost--;
  // Its playout time has passed (the start of its frame was heard as
  // concealment): late, as a fixed buffer would count it, though its
  // remaining samples are merged in.
  if (from > 0) {
    stats_.late++;
    return Rescued::kPart;
  }
  if (gap.synth && stats_.concealed > 0) stats_.concealed--;
  stats_.played++;
  // The queue's head plays from the next pop on.
  played_delays_.Add(last_pop_ms_ + 20 + double(start) / 8.0 - arrival_ms);
  return Rescued::kWhole;
}

// One time-scale step toward the delay wanted now. Pop takes whole frames, so
// the frame after the queue is decoded at the pop that first needs some of it:
// `dead` ms before it starts to play when the queue's length is not a whole
// number of frames. Its packet counts late if it arrives after that pop, so
// the delay that decides lateness (the deadline: current minus dead time)
// moves on the 20 ms grid of pops; shortening or lengthening the queue by
// less than its dead time only moves the playout, not the deadline. Wanted:
// the lowest deadline on that grid at or above the target (held until a
// whole step down clears the target by kStepDownMs), with no dead time.
void Buffer::Adapt(double now_ms, double cur) {
  double dead = double((q_len_ - kFrameSamples) % kFrameSamples) / 8;
  double deadline = cur - dead;
  double want = deadline;
  if (deadline < target_ms_) want += 20 * std::ceil((target_ms_ - deadline) / 20);
  else if (deadline - 20 >= target_ms_ + kStepDownMs) want -= 20 * std::floor((deadline - target_ms_ - kStepDownMs) / 20);
  // The target is a histogram bin's upper edge. Where the late-loss budget or
  // its floor set it rather than the cost rule (a heavy tail), a pop step just
  // below it, inside that bin, can cost less by the cost rule with the bin's
  // weight spread evenly and still keep within the budget: then it is taken,
  // rather than a whole 20 ms step more for a fraction of a bin.
  double low = want - 20;
  if (low > target_ms_ - DelayHistogram::kBinMs && low >= opt_.min_delay_ms) {
    double cost = StepCost(low);
    if (std::isfinite(cost) && cost <= StepCost(target_ms_)) want = low;
  }
  double excess = cur - want;
  bool compress = excess >= kMinStepMs;
  bool stretch = excess <= -kMinStepMs;
  if (!compress && !stretch) {
    deferred_ = 0;
    return;
  }
  // A second frame of material when its packet is here; never conceal just to
  // have something to splice.
  if (q_len_ < 2 * kFrameSamples && NextDue()) Fetch(now_ms);
  // No compressing while playout waits on an underrun: the queue's tail may
  // still be rescued by the packet it waits for.
  if (compress && held_ > 0) return;
  // Exactly the change wanted in near-silence; a compression never goes past
  // it (that would move the deadline a whole step down), a stretch in speech
  // may (the surplus is dead time, removed at the next pause).
  // (Clamped before the conversion: a caller's clock may jump arbitrarily far.)
  int need = int(std::lrint(std::min(std::abs(excess) * 8, double(kQueueCap))));
  // A compressed queue must still hold this pop's frame; a stretched one must fit.
  int room = compress ? q_len_ - kFrameSamples : kQueueCap - q_len_;
  int max_lag = std::min({kMaxQuietLag, q_len_ / 2, room});
  int lag = 0;
  int wait = stretch ? kPatience : kDownPatience;
  if (tsm::MeanAbs(queue_, 2 * std::min(need, max_lag)) < kQuietMeanAbs) {
    lag = std::min(need, max_lag);
  } else if ((deferred_ >= wait && want != deadline) || target_ms_ - deadline > kUrgentMs) {
    // Speech waits for a pause unless the deadline is well below target or a
    // step has waited too long (a step down, costing only delay, waits
    // longer); dead time alone always waits for a pause.
    int voiced_max = std::min({max_lag, kMaxVoicedLag, q_len_ - kWin});
    if (compress) voiced_max = std::min(voiced_max, need);
    if (voiced_max >= kMinLag) {
      tsm::Lag best = tsm::BestLag(queue_, kMinLag, voiced_max, kWin);
      if (best.corr >= (deferred_ >= wait + kPatience ? kLooseCorr : kStrictCorr)) lag = best.lag;
    }
  }
  if (lag < kMinQuietLag) {
    deferred_++;  // a transient or unvoiced stretch: wait for a safer spot
    return;
  }
  deferred_ = 0;
  // Gap frames the step reaches can no longer be told apart from its splice.
  int reach = compress ? 2 * lag : 3 * lag;
  for (Gap& g : gaps_) {
    if (g.ts >= 0 && q_len_ - (q_end_ - g.end) - kFrameSamples < reach) g.ts = -1;
  }
  if (compress) {
    q_len_ = tsm::Compress(queue_, q_len_, lag);
    std::memmove(kinds_ + lag, kinds_ + 2 * lag, size_t(q_len_ - lag));
    stats_.compressed++;
    stats_.compressed_ms += lag / 8.0;
  } else {
    std::memmove(kinds_ + 2 * lag, kinds_ + lag, size_t(q_len_ - lag));
    q_len_ = tsm::Stretch(queue_, q_len_, lag);
    stats_.stretched++;
    stats_.stretched_ms += lag / 8.0;
  }
}

// A deadline's cost by the target's rule: its delay plus its late loss at
// the target's weight per percent (by the histogram that sees more of it); a step
// leaving more late loss than the budget is never taken.
double Buffer::StepCost(double deadline_ms) const {
  double late = std::max(fast_.Late(deadline_ms), slow_.Late(deadline_ms));
  return late > opt_.late_loss_budget ? HUGE_VAL : deadline_ms + late_cost_ms_ * 100 * late;
}

// Plays the queue's head frame. It counts as concealment when most of it is
// synthetic, as silence when all of it is comfort silence.
PopResult Buffer::Emit(uint8_t* out) {
  Encode(queue_, out, kFrameSamples);
  int synth = 0, quiet = 0;
  for (int i = 0; i < kFrameSamples; i++) synth += kinds_[i] == kSynth, quiet += kinds_[i] == kQuiet;
  q_len_ -= kFrameSamples;
  std::memmove(queue_, queue_ + kFrameSamples, size_t(q_len_) * sizeof(int16_t));
  std::memmove(kinds_, kinds_ + kFrameSamples, size_t(q_len_));
  if (quiet == kFrameSamples) {
    // Digital silence as the codec spells it (μ-law 0xFF, A-law 0xD5).
    std::memset(out, opt_.codec == Codec::kPcmu ? 0xFF : 0xD5, kFrameSamples);
    return PopResult::kSilence;
  }
  return synth * 2 > kFrameSamples ? PopResult::kConcealed : PopResult::kPlayed;
}

PopResult Buffer::Pop(double now_ms, uint8_t* out) {
  if (!started_) return PopResult::kNone;
  last_pop_ms_ = now_ms;
  double cur = CurrentDelay(now_ms);
  if (!playing_) {
    if (cur < target_ms_) {
      if (!resumed_) return PopResult::kNone;
      std::memset(out, opt_.codec == Codec::kPcmu ? 0xFF : 0xD5, kFrameSamples);
      return PopResult::kSilence;
    }
    playing_ = true;
  }
  while (q_len_ < kFrameSamples) Fetch(now_ms);
  cur = CurrentDelay(now_ms);
  stats_.current_delay_ms = cur;
  Adapt(now_ms, cur);
  return Emit(out);
}

Stats Buffer::GetStats() const {
  Stats s = stats_;
  s.target_delay_ms = target_ms_;
  s.mean_delay_ms = played_delays_.Mean();
  s.p95_delay_ms = played_delays_.Percentile(0.95);
  s.drift_ppm = -ref_.slope() * 1e6;
  s.heavy_tail = late_cost_ms_ == kHeavyLateCostMs;
  return s;
}

}  // namespace aybiza::jitter
