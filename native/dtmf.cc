// DTMF detector (see dtmf.h) and its JavaScript class, DtmfDetector.
#include "dtmf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "args.h"
#include "g711.h"

namespace aybiza::dtmf {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRate = 8000.0;
constexpr double kFreq[8] = {697, 770, 852, 941, 1209, 1336, 1477, 1633};
constexpr char kDigits[16] = {'1', '2', '3', 'A', '4', '5', '6', 'B', '7', '8', '9', 'C', '*', '0', '#', 'D'};

// Another tone of the same group within 8 dB of the strongest one means the
// signal is not a clean row/column pair (Asterisk and Q.24 practice).
const float kRelativePeak = float(std::pow(10.0, 0.8));
// A clean pair puts (N/2)·E into its two bins (E = window energy). Requiring
// 75 % of that rejects speech (voiced windows that pass every other check
// reach 66-76 %, even clipped), still passes a tone 1.5 % off frequency
// (worst case 1633 Hz with +4 dB twist: about 77 %), and with kHitsToStart
// overlapping windows makes the shortest tone that can start a digit
// kHop·3 + (2·0.75 - 1)·kWindow = 204 samples, 25.5 ms.
constexpr float kToTotal = 0.75f;
constexpr double kTwistMarginDb = 1.0;
// Speech is harmonic: a voiced sound with energy at a column frequency nearly
// always has it at twice that frequency too; a real column tone's second
// harmonic is over 25 dB down even after μ-law. 18 dB is Asterisk's value.
// Rows are not checked: their harmonics (1394-1882 Hz) fall within one bin
// of the column tones, where a real digit with twist would fail the check.
const float kColHarmonic = float(std::pow(10.0, 1.8));
// 16-bit linear level of a 0 dBm0 sine peak in G.711 (3.17 dBm0 is full load).
constexpr double kDbm0Peak = 32767.0 * 0.69419;  // 10^(-3.17/20)

// Goertzel coefficient and the phase factors that turn the two final states
// into the DFT value referred to the start of a half window.
struct Tables {
  float coef[8];
  float aRe[8], aIm[8];  // e^{-jw(H-1)}
  float bRe[8], bIm[8];  // e^{-jwH}
  Tables() {
    for (int k = 0; k < 8; k++) {
      double w = 2 * kPi * kFreq[k] / kRate;
      coef[k] = float(2 * std::cos(w));
      aRe[k] = float(std::cos(w * (Detector::kHop - 1)));
      aIm[k] = float(-std::sin(w * (Detector::kHop - 1)));
      bRe[k] = float(std::cos(w * Detector::kHop));
      bIm[k] = float(-std::sin(w * Detector::kHop));
    }
  }
};
const Tables kT;

float DbToEnergyRatio(double db) { return float(std::pow(10.0, db / 10.0)); }

}  // namespace

Detector::Detector(const Options& o) {
  // A receiver must accept the stated twist, and the measured twist of one
  // window is off by up to about 1 dB (sidelobe beating, μ-law noise, the
  // rectangular window's droop 1.5 % off frequency), so the limit carries it.
  normalTwist_ = DbToEnergyRatio(o.normalTwistDb + kTwistMarginDb);
  reverseTwist_ = DbToEnergyRatio(o.reverseTwistDb + kTwistMarginDb);
  // A full-window sine of peak A gives |X|^2 = (N·A/2)^2.
  double a = kDbm0Peak * std::pow(10.0, o.minLevelDbm0 / 20.0);
  minToneEnergy_ = float((kWindow * a / 2) * (kWindow * a / 2));
  Reset();
}

void Detector::Reset() {
  std::memset(s1_, 0, sizeof s1_);
  std::memset(s2_, 0, sizeof s2_);
  std::memset(raw_, 0, sizeof raw_);
  energy_ = 0;
  fill_ = 0;
  havePrev_ = false;
  candidate_ = -1;
  run_ = 0;
  bridged_ = false;
  current_ = -1;
  misses_ = 0;
}

int Detector::Process(const int16_t* pcm, size_t n, char* out, int maxDigits) {
  int found = 0;
  size_t i = 0;
  while (i < n) {
    size_t take = std::min(n - i, size_t(kHop - fill_));
    int16_t* raw = raw_ + kHop + fill_;
    // Eight independent recurrences per sample: the inner loop over tones
    // keeps them in flight together instead of one long dependency chain.
    for (size_t j = 0; j < take; j++) {
      float x = pcm[i + j];
      raw[j] = pcm[i + j];
      energy_ += x * x;
      for (int k = 0; k < 8; k++) {
        float s0 = x + kT.coef[k] * s1_[k] - s2_[k];
        s2_[k] = s1_[k];
        s1_[k] = s0;
      }
    }
    i += take;
    fill_ += int(take);
    if (fill_ < kHop) break;
    int reported = EndHalf();
    if (reported >= 0) {
      if (found < maxDigits) {
        out[found++] = kDigits[reported];
      } else {
        dropped_++;
      }
    }
  }
  return found;
}

int Detector::EndHalf() {
  Half h;
  for (int k = 0; k < 8; k++) {
    h.re[k] = kT.aRe[k] * s1_[k] - kT.bRe[k] * s2_[k];
    h.im[k] = kT.aIm[k] * s1_[k] - kT.bIm[k] * s2_[k];
    s1_[k] = s2_[k] = 0;
  }
  h.energy = energy_;
  energy_ = 0;
  fill_ = 0;
  int hit = -1;
  if (havePrev_) {
    cur_ = h;
    hit = Classify();
  }
  prev_ = h;
  havePrev_ = true;
  std::memcpy(raw_, raw_ + kHop, kHop * sizeof(int16_t));

  // One failed window inside a run is bridged rather than restarting it: a
  // window's level estimates wander by about 1 dB as the other tone's
  // sidelobe beats against the bin, enough to fail a check at the limits.
  // Bridging only lengthens the shortest tone that can start a digit.
  if (hit == candidate_) {
    run_++;
  } else if (hit < 0 && candidate_ >= 0 && !bridged_) {
    bridged_ = true;
  } else {
    candidate_ = hit;
    run_ = 1;
    bridged_ = false;
  }
  if (current_ >= 0 && hit != current_ && ++misses_ >= kMissesToEnd) current_ = -1;
  if (current_ >= 0 && hit == current_) misses_ = 0;
  // A new digit starts exactly when its run reaches kHitsToStart, so one key
  // press reports once however long it lasts.
  if (candidate_ >= 0 && run_ == kHitsToStart && candidate_ != current_) {
    current_ = candidate_;
    misses_ = 0;
    return current_;
  }
  return -1;
}

float Detector::HarmonicEnergy(double hz) const {
  float c = float(2 * std::cos(2 * kPi * hz / kRate));
  float s1 = 0, s2 = 0;
  for (int i = 0; i < kWindow; i++) {
    float s0 = float(raw_[i]) + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

int Detector::Classify() const {
  float e[8];
  for (int k = 0; k < 8; k++) {
    // The window's DFT is the first half's plus the second half's, shifted
    // by kHop samples of phase.
    float re = prev_.re[k] + kT.bRe[k] * cur_.re[k] - kT.bIm[k] * cur_.im[k];
    float im = prev_.im[k] + kT.bRe[k] * cur_.im[k] + kT.bIm[k] * cur_.re[k];
    e[k] = re * re + im * im;
  }
  int r = 0, c = 4;
  for (int k = 1; k < 4; k++) if (e[k] > e[r]) r = k;
  for (int k = 5; k < 8; k++) if (e[k] > e[c]) c = k;
  if (e[r] < minToneEnergy_ || e[c] < minToneEnergy_) return -1;
  if (e[r] > normalTwist_ * e[c] || e[c] > reverseTwist_ * e[r]) return -1;
  for (int k = 0; k < 4; k++) if (k != r && e[k] * kRelativePeak > e[r]) return -1;
  for (int k = 4; k < 8; k++) if (k != c && e[k] * kRelativePeak > e[c]) return -1;
  float total = prev_.energy + cur_.energy;
  if (e[r] + e[c] < kToTotal * (kWindow / 2) * total) return -1;
  if (HarmonicEnergy(2 * kFreq[c]) * kColHarmonic > e[c]) return -1;
  return r * 4 + (c - 4);
}

// ---- JavaScript class -------------------------------------------------------

namespace {

enum class Encoding { kUlaw, kAlaw, kPcm16 };

// One call carries at most 600 ms (30 frames): larger is a caller bug.
constexpr size_t kMaxFrameSamples = 4800;

double OptionNumber(Napi::Object opts, const char* key, double def, double min, double max) {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return def;
  std::string name = std::string("options.") + key;
  if (!v.IsNumber()) throw Napi::TypeError::New(opts.Env(), name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max)) {
    throw Napi::RangeError::New(opts.Env(), name + " must be between " + std::to_string(int(min)) + " and " +
                                                std::to_string(int(max)));
  }
  return d;
}

class JsDetector : public Napi::ObjectWrap<JsDetector> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DtmfDetector",
                       {InstanceMethod<&JsDetector::ProcessJs>("process"),
                        InstanceMethod<&JsDetector::ResetJs>("reset"),
                        InstanceMethod<&JsDetector::CloseJs>("close")});
  }

  explicit JsDetector(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsDetector>(info) {
    Napi::Env env = info.Env();
    Options o;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsObject() || info[0].IsArray() || info[0].IsFunction()) {
        throw Napi::TypeError::New(env, "argument 0 (options) must be an object");
      }
      Napi::Object opts = info[0].As<Napi::Object>();
      Napi::Value enc = opts.Get("encoding");
      if (!enc.IsUndefined()) {
        if (!enc.IsString()) throw Napi::TypeError::New(env, "options.encoding must be a string");
        std::string s = enc.As<Napi::String>().Utf8Value();
        if (s == "ulaw") encoding_ = Encoding::kUlaw;
        else if (s == "alaw") encoding_ = Encoding::kAlaw;
        else if (s == "pcm16") encoding_ = Encoding::kPcm16;
        else throw Napi::RangeError::New(env, "options.encoding must be 'ulaw', 'alaw' or 'pcm16'");
      }
      o.normalTwistDb = OptionNumber(opts, "normalTwistDb", o.normalTwistDb, 0, 20);
      o.reverseTwistDb = OptionNumber(opts, "reverseTwistDb", o.reverseTwistDb, 0, 20);
      o.minLevelDbm0 = OptionNumber(opts, "minLevelDbm0", o.minLevelDbm0, -70, 0);
    }
    detector_ = std::make_unique<Detector>(o);
  }

 private:
  Detector& Live(const Napi::CallbackInfo& info) {
    if (!detector_) {
      // TypeError, like any use of a released handle in Node; the code lets
      // callers tell it apart from a bad argument.
      ThrowClosed(info.Env(), "DtmfDetector");
    }
    return *detector_;
  }

  Napi::Value ProcessJs(const Napi::CallbackInfo& info) {
    Detector& d = Live(info);
    Napi::Env env = info.Env();
    TypedArrayView v = RequireTypedArrayView(info, 0, "frame", "a Uint8Array or an Int16Array");
    size_t samples;
    if (v.type == napi_int16_array) {
      samples = v.length;
    } else if (v.type == napi_uint8_array) {
      if (encoding_ == Encoding::kPcm16 && v.length % 2 != 0) {
        throw Napi::RangeError::New(env, "argument 0 (frame) has an odd byte count (" + std::to_string(v.length) +
                                             "); PCM16 needs 2 bytes per sample");
      }
      samples = encoding_ == Encoding::kPcm16 ? v.length / 2 : v.length;
    } else {
      throw Napi::TypeError::New(env, "argument 0 (frame) must be a Uint8Array or an Int16Array");
    }
    if (samples == 0 || samples > kMaxFrameSamples) {
      throw Napi::RangeError::New(env, "argument 0 (frame) must hold 1 to " + std::to_string(kMaxFrameSamples) +
                                           " samples, not " + std::to_string(samples));
    }
    char digits[64];
    int found = 0;
    if (v.type == napi_int16_array) {
      found = d.Process(static_cast<const int16_t*>(v.data), samples, digits, 64);
    } else {
      // Decode through a small stack buffer: no per-frame allocation.
      const uint8_t* src = static_cast<const uint8_t*>(v.data);
      int16_t pcm[256];
      for (size_t off = 0; off < samples; off += 256) {
        size_t m = std::min(samples - off, size_t(256));
        if (encoding_ == Encoding::kUlaw) {
          for (size_t i = 0; i < m; i++) pcm[i] = g711::kUlawToLinear[src[off + i]];
        } else if (encoding_ == Encoding::kAlaw) {
          for (size_t i = 0; i < m; i++) pcm[i] = g711::kAlawToLinear[src[off + i]];
        } else {
          const uint8_t* b = src + 2 * off;
          for (size_t i = 0; i < m; i++) pcm[i] = int16_t(uint16_t(b[2 * i]) | (uint16_t(b[2 * i + 1]) << 8));
        }
        found += d.Process(pcm, m, digits + found, 64 - found);
      }
    }
    return Napi::String::New(env, digits, size_t(found));
  }

  Napi::Value ResetJs(const Napi::CallbackInfo& info) {
    Live(info).Reset();
    return info.Env().Undefined();
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    Live(info);
    detector_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Detector> detector_;
  Encoding encoding_ = Encoding::kUlaw;
};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) { exports.Set("DtmfDetector", JsDetector::Define(env)); }

}  // namespace aybiza::dtmf
