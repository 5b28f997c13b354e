// Adaptive jitter buffer for 20 ms G.711 RTP frames, concealing with plc.h and
// changing its delay by time-scale modification (tsm.h). Plain C++ (no N-API)
// so the SIP RTP path can own a Buffer directly; the JS binding is
// native/jitter_buffer_js.cc.
//
// Two stages, as in NetEQ. Packets wait in slots on the sender's timestamp
// axis; `play_` is the timestamp of the next frame to decode. Decoded PCM
// waits in a short sample queue from which Pop takes 160 samples every 20 ms.
// The playout position (the sender time of the sample played now) is
// play_ - queue length, so removing or repeating samples in the queue moves
// the delay by exactly that many samples.
//
// Loss versus lateness. A sequence number that never arrives is loss: its
// slot is concealed and playout moves on; it never enters the delay
// statistics. When nothing at all is buffered (underrun) loss, lateness and
// DTX look alike, so play_ is held while concealment plays; when the next
// packet comes, the held frames are credited against the gap it reveals (a
// lost packet: no delay grown; a late one: played, the delay grew by the
// hold). A missing packet whose slot is concealed while later packets wait
// is still played if it arrives before that concealment starts to play;
// once any of it has played the packet is late (its remaining samples are
// still merged in). Sequence numbers that carried no audio (RFC 4733 events,
// Skip) are neither lost nor concealed. Only the transit times of arrived
// packets drive the target.
//
// Target delay. Relative delay = transit minus a reference that follows the
// fastest recent transit with the sender's clock drift removed (drift: the
// Theil-Sen slope of 2 s block minima over the last 32 s). Two histograms of
// relative delay (4 s and 7 s memory); for each, the delay d minimising
// d + kLateCostMs * (late %), where (late %) is the weight above d (Speex's
// cost rule; on a heavy-tailed path, judged on the 7 s histogram's shape,
// late loss weighs double: there the cost curve is flat over tens of ms, so
// the plain weight leaves the target hopping between tail packets and the
// late frames of the low stretches cost more than the delay saved), capped
// by the late-loss budget: when covering the tail would
// take more than kBudgetFloorMs, the smallest d leaving at most `budget`
// late wins (a heavy tail cannot push the delay up for its last fraction of
// a percent). The target is the larger of the two, within [min, max].
//
// Pop clock. Pop hands out whole 20 ms frames, so the frame after the queue
// is decoded at the first pop that needs any of it; its packet is late when
// it arrives after that pop. The delay that decides lateness (the deadline:
// current delay minus the queue's dead time, the part of a frame left over
// in the queue) therefore moves in 20 ms steps of the pop clock; trimming or
// lengthening the queue by less than a frame moves the playout, not the
// deadline. Adapt aims the deadline at the first pop step at or above the
// target (stepping down only when the step below clears the target by 2 ms)
// and removes dead time, so no frame plays later than its deadline. Where the
// late-loss budget or its floor caps the target (a heavy tail), the step just
// below it inside the target's 4 ms bin is taken when the cost rule, with the
// bin's weight spread evenly, finds it no dearer and it keeps to the budget.
//
// Delay changes by WSOLA time-scale modification, one step per pop: exactly
// the change needed in near-silence (up to 20 ms), one pitch period (5-15 ms)
// of a stationary, well-correlated stretch in speech. Speech is stretched
// after 200 ms without a pause (at once when the deadline is 20 ms or more
// below target) and compressed after 1 s without one (a step down costs only
// delay; dead time alone always waits for a pause), then needs a
// well-correlated stretch; a looser one 200 ms later. Never a whole frame
// inserted or skipped in speech.
#pragma once

#include <cstddef>
#include <cstdint>

#include "plc.h"

namespace aybiza::jitter {

constexpr int kSlots = 64;  // buffered frames (1.28 s); more is late or a restart

enum class Codec { kPcmu, kPcma };

struct Options {
  Codec codec = Codec::kPcmu;
  double min_delay_ms = 20;
  double max_delay_ms = 400;
  // Largest share of packets the target may leave to arrive late when that
  // saves delay (a heavy tail); the cost rule keeps it far lower elsewhere.
  double late_loss_budget = 0.01;
};

struct Stats {
  uint64_t received = 0, played = 0, late = 0, lost = 0, concealed = 0, duplicate = 0, reordered = 0;
  uint64_t stretched = 0, compressed = 0;    // time-scale steps taken
  double stretched_ms = 0, compressed_ms = 0;  // audio added / removed by them
  double current_delay_ms = 0, target_delay_ms = 0;
  double mean_delay_ms = 0, p95_delay_ms = 0;  // arrival to playout of played packets
  double drift_ppm = 0;                        // sender clock rate against ours, + = sender fast
  bool heavy_tail = false;                     // the delay's tail is heavy now: late loss weighs double
};

enum class PushResult { kAccepted, kDuplicate, kLate, kRestarted };
// kNone: still building up delay (nothing to play yet).
enum class PopResult { kNone, kPlayed, kConcealed, kSilence };

// Relative-delay histogram with exponential forgetting per packet. Instead of
// decaying every bin per packet, new weight grows by 1/forget (rescaled now
// and then): the same distribution at O(1) per packet.
class DelayHistogram {
 public:
  static constexpr int kBins = 250;  // 0..1000 ms
  static constexpr double kBinMs = 4;
  explicit DelayHistogram(double forget) : forget_(forget) {}
  // `weight` packets' worth at prior_ms, removed after `lifetime` packets (0: kept, fading).
  void Reset(double prior_ms, double weight, int lifetime = 0);
  void Add(double delay_ms);
  // The delay d minimising d + late_cost_ms * 100 * P(delay > d), capped at
  // the smallest d with P(delay > d) <= budget when that exceeds floor_ms.
  double CostTarget(double late_cost_ms, double budget, double floor_ms, double max_ms) const;
  // P(delay > d), the bin holding d split linearly.
  double Late(double d) const;
  // Whether the tail is heavy: the 90th-to-99th percentile span more than
  // `ratio` times the median-to-90th (at least a bin). A gaussian spread
  // gives ~0.8, a pareto tail with alpha 2-2.5 gives 3-4.
  bool HeavyTail(double ratio) const;

 private:
  double forget_;
  double bins_[kBins] = {};
  double total_ = 0, scale_ = 1;
  int prior_bin_ = 0, prior_left_ = 0;
  double prior_weight_ = 0;
  mutable int top_ = 0;  // highest bin with weight that still counts
};

// The fastest transit lately, with the sender's clock drift removed.
class TransitReference {
 public:
  void Reset(double arrival_ms, double transit);
  void Add(double arrival_ms, double transit);
  double At(double now_ms) const;  // reference transit for a packet arriving now
  double slope() const { return slope_; }  // ms of transit per ms of arrival

 private:
  static constexpr int kBlocks = 16;      // 32 s of 2 s blocks for the slope
  static constexpr int kRefBlocks = 5;    // the minimum over the last 10 s
  static constexpr double kBlockMs = 2000;
  void CloseBlock();
  double block_t_[kBlocks] = {}, block_min_[kBlocks] = {};
  int blocks_ = 0;  // completed blocks (ring index = blocks_ % kBlocks)
  double cur_start_ = 0, cur_min_ = 0, cur_t_ = 0;
  double slope_ = 0;
};

// Delays of played packets, 1 ms bins: mean and p95 per call.
class DelayStats {
 public:
  void Add(double ms);
  double Mean() const { return n_ ? sum_ / double(n_) : 0; }
  double Percentile(double p) const;

 private:
  static constexpr int kBins = 2048;
  uint32_t bins_[kBins] = {};
  uint64_t n_ = 0;
  double sum_ = 0;
};

class Buffer {
 public:
  explicit Buffer(const Options& options);
  // payload must be kFrameSamples codec bytes; arrival_ms on the caller's clock.
  PushResult Push(uint16_t seq, uint32_t timestamp, const uint8_t* payload, double arrival_ms, bool has_ssrc,
                  uint32_t ssrc);
  // A packet of this stream without audio (an RFC 4733 event): not lost.
  void Skip(uint16_t seq);
  // Writes kFrameSamples codec bytes into out unless kNone.
  PopResult Pop(double now_ms, uint8_t* out);
  Stats GetStats() const;
  void Reset();  // forgets stream state and statistics

 private:
  struct Slot {
    int64_t seq = -1;  // extended sequence number; -1 = empty
    int64_t ts = 0;    // extended timestamp
    double arrival_ms = 0;
    uint8_t payload[kFrameSamples];
  };
  enum Kind : uint8_t { kReal, kSynth, kQuiet };  // origin of each queued sample
  static constexpr int kQueueCap = 1024;

  void Restart();
  int64_t ExtendSeq(uint16_t seq) const;
  int64_t ExtendTs(uint32_t ts) const;
  void ObserveDelay(double arrival_ms, int64_t ts);
  void UpdateTarget();
  double CurrentDelay(double now_ms) const;
  Slot* NextBuffered();
  bool NoAudioMissing(int64_t from, int64_t to) const;
  bool NextDue();
  void Fetch(double now_ms);
  void PlaySlot(Slot& s, double now_ms);
  void AppendConcealment();
  void AppendSilence();
  void Append(const int16_t* pcm, Kind kind);
  enum class Rescued { kNo, kWhole, kPart };  // kPart: the frame had started to play (late)
  Rescued Rescue(int64_t seq, int64_t ts, const uint8_t* payload, double arrival_ms);
  void Adapt(double now_ms, double cur);
  PopResult Emit(uint8_t* out);
  void Decode(const uint8_t* in, int16_t* out) const;
  void Encode(const int16_t* in, uint8_t* out, int n) const;

  Options opt_;
  Stats stats_;
  Slot slots_[kSlots];
  int64_t seen_[1024];  // recently received extended seqs: duplicate and late-arrival bookkeeping
  Concealer plc_;
  int16_t queue_[kQueueCap];
  uint8_t kinds_[kQueueCap];
  int q_len_ = 0;

  bool started_ = false;  // a packet has been received since the last restart
  bool playing_ = false;  // playout has begun
  bool resumed_ = false;  // restarted mid-call: silence, not null, while rebuilding
  bool has_ssrc_ = false;
  uint32_t ssrc_ = 0;
  int64_t max_seq_ = 0, max_ts_ = 0;  // highest extended seq / its timestamp
  int64_t base_ts_ = 0;               // timestamp origin for the delay axis
  int64_t play_ = 0;                  // timestamp of the next frame to decode
  int64_t last_played_seq_ = -1;
  int held_ = 0;                      // frames decoded while play_ was held (underrun)
  bool last_quiet_ = true;
  int deferred_ = 0;                  // pops a needed delay change has waited for a safe spot
  double last_pop_ms_ = 0;
  // Gap frames concealed ahead of their playout: a packet arriving before its
  // concealment has started to play replaces it (late only once it is heard).
  // Each gap: the frame's timestamp and the queue's append count (q_end_)
  // just after it, which locates it from the queue's tail.
  struct Gap {
    int64_t ts = -1, end = 0;
    bool held = false;   // an underrun frame: play_ did not move past it
    bool synth = false;  // concealment (not comfort silence)
  };
  static constexpr int kGaps = 4;
  Gap gaps_[kGaps];
  int64_t q_end_ = 0;  // samples ever appended to the queue
  void AddGap(int64_t ts, bool held);

  TransitReference ref_;
  DelayStats played_delays_;
  static constexpr double kLateCostMs = 100;       // 1 % late loss weighs like 100 ms of delay
  static constexpr double kHeavyLateCostMs = 200;  // ... and like 200 ms on a heavy-tailed path
  static constexpr double kTailRatio = 2;          // DelayHistogram::HeavyTail's line (7 s history)
  static constexpr int kTailEvery = 16;           // packets (~320 ms)
  double late_cost_ms_ = kLateCostMs;
  int tail_check_ = 0;
  static constexpr double kBudgetFloorMs = 100;  // the late-loss budget binds only above this
  static constexpr int kPriorPackets = 100;      // the start-up prior's lifetime (2 s)
  static constexpr int64_t kRestartJump = 1000;  // packets (20 s): a new stream
  DelayHistogram fast_{0.995};    // 4 s: follows a change at once
  DelayHistogram slow_{0.997};    // 7 s: a steadier view of the tail
  double target_ms_ = 0;
  double StepCost(double deadline_ms) const;
};

}  // namespace aybiza::jitter
