// MediaChannel: the inbound per-frame path of one call in a single N-API
// crossing. One call of process(frame) decodes the G.711 frame, runs the VAD
// and, when enabled, the DTMF and beep (answering-machine) detectors on the
// decoded samples, all into state allocated once per call. An N-API crossing costs about as much as decoding
// the frame, so three separate calls would triple the fixed cost.
#include <napi.h>

#include <cstring>
#include <string>

#include "args.h"
#include "beep.h"
#include "dtmf.h"
#include "g711.h"
#include "vad.h"

namespace aybiza::channel {
namespace {

constexpr int kMaxFrame = 240;  // 30 ms
constexpr int kDigitsPending = 64;
constexpr double kDigitsFlag = 32;  // added to the VAD's packed result
// Beep flags, above the digits flag: 64 a beep is sounding, 128 it qualified
// (250 ms) in this frame, 256 it ended in this frame. Multiples of 32, so the
// VAD's part is still code % 32.
constexpr int kBeepShift = 6;

class MediaChannel : public Napi::ObjectWrap<MediaChannel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MediaChannel",
                       {InstanceMethod<&MediaChannel::Process>("process"),
                        InstanceMethod<&MediaChannel::TakeDigits>("takeDigits"),
                        InstanceMethod<&MediaChannel::DetectBeep>("detectBeep"),
                        InstanceMethod<&MediaChannel::LastBeep>("lastBeep"),
                        InstanceMethod<&MediaChannel::Reset>("reset"), InstanceMethod<&MediaChannel::Close>("close")});
  }

  // new MediaChannel(encoding 0 μ-law | 1 A-law, dtmf, threshold,
  // hangoverFrames, minSpeechMs, minSilenceMs); -1 means the model's value.
  explicit MediaChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MediaChannel>(info) {
    alaw_ = RequireNumber(info, 0, "encoding", 0, 1) == 1;
    if (info.Length() <= 1 || !info[1].IsBoolean()) {
      throw Napi::TypeError::New(info.Env(), "argument 1 (dtmf) must be a boolean");
    }
    bool dtmf = info[1].As<Napi::Boolean>().Value();
    vad::Options o;
    o.threshold = float(RequireNumber(info, 2, "threshold", -1, 1));
    o.hangoverFrames = int(RequireNumber(info, 3, "hangoverFrames", -1, 50));
    o.minSpeechMs = int(RequireNumber(info, 4, "minSpeechMs", 0, 10000));
    o.minSilenceMs = int(RequireNumber(info, 5, "minSilenceMs", 0, 60000));
    vad_ = new vad::Detector(o);
    if (dtmf) dtmf_ = new dtmf::Detector();
  }
  ~MediaChannel() override { Free(); }

 private:
  void Free() {
    delete vad_;
    delete dtmf_;
    delete beep_;
    vad_ = nullptr;
    dtmf_ = nullptr;
    beep_ = nullptr;
  }

  void Live(const Napi::CallbackInfo& info) const {
    if (!vad_) ThrowClosed(info.Env(), "MediaChannel");
  }

  // process(frame: Uint8Array of 80/160/240 codes) → the VAD's packed
  // result (vad.h Encode), plus 32 when DTMF digits wait in takeDigits(),
  // plus the beep flags (kBeepShift) while beep detection is on.
  Napi::Value Process(const Napi::CallbackInfo& info) {
    Live(info);
    ByteSpan frame = RequireBytes(info, 0, "frame");
    size_t n = frame.length;
    if (n != 80 && n != 160 && n != 240) {
      throw Napi::RangeError::New(info.Env(), "argument 0 (frame) must hold 80, 160 or 240 bytes (10/20/30 ms at 8 kHz), not " + std::to_string(n));
    }
    const int16_t* table = alaw_ ? g711::kAlawToLinear : g711::kUlawToLinear;
    for (size_t i = 0; i < n; i++) pcm_[i] = table[frame.data[i]];
    double code = vad::Encode(vad_->Process(pcm_, int(n)));
    if (dtmf_) {
      char found[kMaxFrame / dtmf::Detector::kHop + 2];
      int k = dtmf_->Process(pcm_, n, found, int(sizeof found));
      for (int i = 0; i < k && pending_ < kDigitsPending; i++) digits_[pending_++] = found[i];
    }
    if (pending_ > 0) code += kDigitsFlag;
    if (beep_) code += double(beep_->Process(pcm_, int(n)) << kBeepShift);
    return Napi::Number::New(info.Env(), code);
  }

  Napi::Value TakeDigits(const Napi::CallbackInfo& info) {
    Live(info);
    std::string out(digits_, size_t(pending_));
    pending_ = 0;
    return Napi::String::New(info.Env(), out);
  }

  // detectBeep(on): starts (from a clean state) or stops beep detection; off
  // by default, since only calls screened for an answering machine need it.
  void DetectBeep(const Napi::CallbackInfo& info) {
    Live(info);
    if (info.Length() < 1 || !info[0].IsBoolean()) {
      throw Napi::TypeError::New(info.Env(), "argument 0 (on) must be a boolean");
    }
    delete beep_;
    beep_ = info[0].As<Napi::Boolean>().Value() ? new beep::Detector() : nullptr;
  }

  // lastBeep() → [hz, startMs, durationMs] of the current or last beep on the
  // detector's audio clock, or null (none yet, or detection off).
  Napi::Value LastBeep(const Napi::CallbackInfo& info) {
    Live(info);
    if (!beep_ || beep_->Last().durationMs == 0) return info.Env().Null();
    const beep::Beep& b = beep_->Last();
    Napi::Array out = Napi::Array::New(info.Env(), 3);
    out.Set(uint32_t(0), Napi::Number::New(info.Env(), b.hz));
    out.Set(uint32_t(1), Napi::Number::New(info.Env(), double(b.startMs)));
    out.Set(uint32_t(2), Napi::Number::New(info.Env(), double(b.durationMs)));
    return out;
  }

  void Reset(const Napi::CallbackInfo& info) {
    Live(info);
    vad_->Reset();
    if (dtmf_) dtmf_->Reset();
    if (beep_) beep_->Reset();
    pending_ = 0;
  }

  void Close(const Napi::CallbackInfo&) { Free(); }

  bool alaw_ = false;
  vad::Detector* vad_ = nullptr;
  dtmf::Detector* dtmf_ = nullptr;
  beep::Detector* beep_ = nullptr;
  int16_t pcm_[kMaxFrame];
  char digits_[kDigitsPending];
  int pending_ = 0;
};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) { exports.Set("MediaChannel", MediaChannel::Define(env)); }

}  // namespace aybiza::channel
