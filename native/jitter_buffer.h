// Adaptive jitter buffer for 20 ms G.711 RTP frames, concealing with plc.h.
// Plain C++ (no N-API) so the SIP RTP path can own a Buffer directly; the JS
// binding is native/jitter_buffer_js.cc.
//
// Playout model. Frames are placed on the sender's timestamp axis; `play_`
// is the timestamp of the next frame to output and advances 160 per Pop,
// except:
//  - underrun (nothing at or after play_ is buffered): we cannot yet tell
//    loss, a late packet and DTX apart, so play_ is *held* while we output
//    concealment. When the next packet arrives, held frames are credited
//    against the gap it reveals; a packet that was merely late is then
//    played (the delay grew by the hold) instead of being dropped as late.
//  - the next packet missing while later ones are here, on a path that has
//    reordered (or delivered late) in the last 10 s: one concealed frame
//    with play_ held, once per missing packet, so a reordered packet still
//    plays; the 20 ms are won back on the next quiet frame that keeps the
//    delay at or above target - 5 ms. Otherwise the gap is concealed.
//  - current delay below target: one frame is inserted (grows fast).
//  - current delay above target + 15 ms: a quiet frame (or a DTX silence
//    slot) is skipped at once; a voiced frame only above target + 35 ms and
//    at most once per 200 ms (shrinks mostly in silence).
// Target delay = 99.8th percentile of relative transit delay (transit minus
// the fastest of the last 5-10 s) from a histogram with exponential
// forgetting (4 s time constant, late packets weigh 5x) + 5 ms, clamped to
// [min, max]. A high percentile because late loss is what callers hear.
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
};

struct Stats {
  uint64_t received = 0, played = 0, late = 0, lost = 0, concealed = 0, duplicate = 0, reordered = 0;
  double current_delay_ms = 0, target_delay_ms = 0;
};

enum class PushResult { kAccepted, kDuplicate, kLate, kRestarted };
// kNone: still building up delay (nothing to play yet).
enum class PopResult { kNone, kPlayed, kConcealed, kSilence };

// Relative-delay histogram with exponential forgetting per packet. Instead of
// decaying every bin per packet, new weight grows by 1/forget (rescaled now
// and then): the same distribution at O(1) per packet.
class DelayHistogram {
 public:
  static constexpr int kBins = 200;  // 0..1000 ms
  static constexpr double kBinMs = 5;
  DelayHistogram(double forget, double quantile) : forget_(forget), quantile_(quantile) {}
  void Reset(double prior_ms);  // one packet's worth of weight at prior_ms
  void Add(double delay_ms, double weight);
  double Quantile() const;  // delay below which `quantile` of the weight lies, ms

 private:
  double forget_, quantile_;
  double bins_[kBins] = {};
  double total_ = 0, scale_ = 1;
};

class Buffer {
 public:
  explicit Buffer(const Options& options);
  // payload must be kFrameSamples codec bytes; arrival_ms on the caller's clock.
  PushResult Push(uint16_t seq, uint32_t timestamp, const uint8_t* payload, double arrival_ms, bool has_ssrc,
                  uint32_t ssrc);
  // Writes kFrameSamples codec bytes into out unless kNone.
  PopResult Pop(double now_ms, uint8_t* out);
  Stats GetStats() const;
  void Reset();  // forgets stream state and statistics

 private:
  struct Slot {
    int64_t seq = -1;  // extended sequence number; -1 = empty
    int64_t ts = 0;    // extended timestamp
    uint8_t payload[kFrameSamples];
  };
  void Restart();
  int64_t ExtendSeq(uint16_t seq) const;
  int64_t ExtendTs(uint32_t ts) const;
  void ObserveDelay(double arrival_ms, int64_t ts, bool late);
  void UpdateTarget();
  double CurrentDelay(double now_ms) const;
  Slot* NextBuffered();
  PopResult PlayDue(Slot& slot, double cur, uint8_t* out);
  PopResult PlaySlot(Slot& s, uint8_t* out);
  PopResult ConcealFrame(uint8_t* out);
  PopResult SilenceFrame(uint8_t* out);
  bool Quiet(const uint8_t* payload) const;
  void Decode(const uint8_t* in, int16_t* out) const;
  void Encode(const int16_t* in, uint8_t* out, int n) const;

  Options opt_;
  Stats stats_;
  Slot slots_[kSlots];
  int64_t seen_[1024];  // recently received extended seqs: duplicate and late-arrival bookkeeping
  Concealer plc_;

  bool started_ = false;  // a packet has been received since the last restart
  bool playing_ = false;  // playout has begun
  bool resumed_ = false;  // restarted mid-call: silence, not null, while rebuilding
  bool has_ssrc_ = false;
  uint32_t ssrc_ = 0;
  int64_t max_seq_ = 0, max_ts_ = 0;  // highest extended seq / its timestamp
  int64_t base_ts_ = 0;               // timestamp origin for the delay axis
  int64_t play_ = 0;                  // timestamp of the next frame to output
  int64_t last_played_seq_ = -1;
  int held_ = 0;                      // frames output while play_ was held (underrun)
  int since_voiced_drop_ = 0;
  bool last_quiet_ = true;
  // Waiting for a missing packet on a path that reorders (see Pop).
  static constexpr double kDisorderMemoryMs = 10000;
  double last_disorder_ms_ = 0;  // arrival time of the last reordered or late packet
  bool disorder_seen_ = false;
  int64_t waited_seq_ = -1;      // the missing packet last waited for (once each)
  int debt_ = 0;                 // frames of waiting not yet won back

  // Relative delay reference: min of (arrival - ts/8) over two 5 s blocks.
  double dmin_prev_ = 0, dmin_cur_ = 0, dmin_block_start_ = 0;
  static constexpr double kMarginMs = 5;
  static constexpr double kLateWeight = 5;
  static constexpr int64_t kRestartJump = 1000;  // packets (20 s): a new stream
  // 99.8th percentile, forgetting 0.995 per packet: a 4 s time constant. (A
  // second, 40 s memory as in Speex was tried: on the bench traces it only
  // held the delay up for 40 s after a route change; waiting for missing
  // packets is what fixed the late loss on reordering paths.)
  DelayHistogram delays_{0.995, 0.998};
  double target_ms_ = 0;
};

}  // namespace aybiza::jitter
