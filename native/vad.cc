// The VAD's signal path (see vad.h) and its JS class `Vad`.
#include "vad.h"

#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "args.h"
#include "g711.h"
#include "vad_model.h"

namespace aybiza::vad {
namespace {

// The model reads the first kIn features (a newer extractor may append more).
static_assert(model::kIn <= kFeatures, "vad_model.h was trained for another feature set");

// log2 to about 0.01: the features are levels in bits (≈ 3 dB), and a libm
// log per band would cost more than the whole rest of the frame.
inline float FastExp2(float x) {
  x = std::clamp(x, -120.f, 120.f);
  float fi = std::floor(x), fr = x - fi;
  // 2^fr on [0,1) by a quadratic, exact at both ends.
  float m = 1.f + fr * (0.6565f + 0.3435f * fr);
  int32_t bits = (int32_t(fi) + 127) << 23;
  float e;
  std::memcpy(&e, &bits, 4);
  return e * m;
}

inline float FastLog2(float x) {
  uint32_t i;
  std::memcpy(&i, &x, 4);
  float e = float(int((i >> 23) & 255) - 127);
  i = (i & 0x007FFFFF) | 0x3F800000;
  float m;
  std::memcpy(&m, &i, 4);
  return e + (-0.34484843f * m + 2.02466578f) * m - 0.67487759f;
}

// x^(1/4) to a few percent from the float's bits (a quarter of the exponent).
inline float FastRoot4(float x) {
  uint32_t i;
  std::memcpy(&i, &x, 4);
  i = (i >> 2) + 0x2FA00000u;
  float r;
  std::memcpy(&r, &i, 4);
  return r;
}

constexpr int kHalf = kSpectrum / 2;  // complex FFT size for the real transform
constexpr int kStages = 6;          // log2(kHalf)
constexpr float kEps = 1e-7f;
// Band edges in bins of 62.5 Hz: 125–250, 250–500, 500–750, 750–1000,
// 1000–1500, 1500–2000, 2000–3000, 3000–3800 Hz (WebRTC's bands, split finer
// where speech formants sit).
constexpr int kEdges[kBands + 1] = {2, 4, 8, 12, 16, 24, 32, 48, 61};

struct Tables {
  float window[kSpectrum];
  float cosT[kHalf / 2], sinT[kHalf / 2];  // twiddles of the 128-point FFT
  float cosR[kHalf + 1], sinR[kHalf + 1];  // real-FFT split twiddles
  uint8_t bitrev[kHalf];
  Tables() {
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < kSpectrum; i++) window[i] = float((0.5 - 0.5 * std::cos(2 * pi * (i + 0.5) / kSpectrum)) / 32768.0);
    for (int i = 0; i < kHalf / 2; i++) {
      cosT[i] = float(std::cos(2 * pi * i / kHalf));
      sinT[i] = float(-std::sin(2 * pi * i / kHalf));
    }
    for (int k = 0; k <= kHalf; k++) {
      cosR[k] = float(std::cos(2 * pi * k / kSpectrum));
      sinR[k] = float(-std::sin(2 * pi * k / kSpectrum));
    }
    for (int i = 0; i < kHalf; i++) {
      int r = 0;
      for (int b = 0; b < kStages; b++) r |= ((i >> b) & 1) << (kStages - 1 - b);
      bitrev[i] = uint8_t(r);
    }
  }
};
const Tables kT;

// Bins 0..64 of the DFT of 128 real samples, through a 64-point complex FFT
// of the even/odd interleave.
void RealFft(const float* x, float* outRe, float* outIm) {
  float re[kHalf], im[kHalf];
  for (int n = 0; n < kHalf; n++) {
    int r = kT.bitrev[n];
    re[r] = x[2 * n];
    im[r] = x[2 * n + 1];
  }
  // Sizes 2 and 4 have the twiddles 1 and −i: butterflies without products.
  for (int a = 0; a < kHalf; a += 4) {
    float r0 = re[a] + re[a + 1], i0 = im[a] + im[a + 1], r1 = re[a] - re[a + 1], i1 = im[a] - im[a + 1];
    float r2 = re[a + 2] + re[a + 3], i2 = im[a + 2] + im[a + 3], r3 = re[a + 2] - re[a + 3], i3 = im[a + 2] - im[a + 3];
    re[a] = r0 + r2, im[a] = i0 + i2, re[a + 2] = r0 - r2, im[a + 2] = i0 - i2;
    re[a + 1] = r1 + i3, im[a + 1] = i1 - r3, re[a + 3] = r1 - i3, im[a + 3] = i1 + r3;
  }
  for (int size = 8; size <= kHalf; size <<= 1) {
    int half = size >> 1, step = kHalf / size;
    for (int start = 0; start < kHalf; start += size) {
      for (int j = 0; j < half; j++) {
        float wr = kT.cosT[j * step], wi = kT.sinT[j * step];
        int a = start + j, b = a + half;
        float tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
  for (int k = 0; k <= kHalf; k++) {
    int k1 = k & (kHalf - 1), k2 = (kHalf - k) & (kHalf - 1);
    float er = 0.5f * (re[k1] + re[k2]), ei = 0.5f * (im[k1] - im[k2]);
    float orr = 0.5f * (im[k1] + im[k2]), oi = -0.5f * (re[k1] - re[k2]);
    outRe[k] = er + orr * kT.cosR[k] - oi * kT.sinR[k];
    outIm[k] = ei + orr * kT.sinR[k] + oi * kT.cosR[k];
  }
}

// Power spectrum (bins 0..64) of the Hann-windowed 128 samples.
void PowerSpectrum(const int16_t* x, float* power) {
  float w[kSpectrum], re[kHalf + 1], im[kHalf + 1];
  for (int n = 0; n < kSpectrum; n++) w[n] = x[n] * kT.window[n];
  RealFft(w, re, im);
  for (int k = 0; k <= kHalf; k++) power[k] = re[k] * re[k] + im[k] * im[k];
}

// Pitch strength: the peak of the (circular) autocorrelation of the
// compressed magnitude spectrum above 300 Hz, over lags of 2–8 ms, relative
// to lag 0. Voiced speech has harmonics spaced by its pitch throughout the
// band; mains hum sits mostly below 300 Hz, and broadband noise has no
// spacing (a steady tone is periodic too: the model sees it beside the band
// SNRs, which the noise floor takes it out of). The transform of the
// symmetric spectrum is the autocorrelation.
float PitchStrength(const float* power) {
  constexpr int kLowBin = 5;  // 312 Hz
  float y[kSpectrum] = {};
  for (int k = kLowBin; k <= 60; k++) {
    float m = FastRoot4(power[k]);  // |X|^0.5: flattens formants, keeps harmonics
    y[k] = m;
    y[kSpectrum - k] = m;
  }
  float re[kHalf + 1], im[kHalf + 1];
  RealFft(y, re, im);
  float best = 0;
  for (int lag = 16; lag <= kHalf; lag++) best = std::max(best, re[lag]);
  return re[0] > kEps ? best / re[0] : 0.f;
}

}  // namespace

Detector::Detector(const Options& options) : opt_(options) { Reset(); }

void Detector::Reset() {
  std::memset(history_, 0, sizeof history_);
  std::fill(noise_, noise_ + kBands, 0.f);
  std::fill(smooth_, smooth_ + kBands, 0.f);
  std::fill(subMin_, subMin_ + kBands, 1e9f);
  for (auto& row : ring_) std::fill(row, row + kBands, 1e9f);
  subFrames_ = ringAt_ = 0;
  std::fill(context_, context_ + kBands, 0.f);
  slowSnr_ = lastSnr_ = 0;
  pitchSmooth_ = pitch_ = 0;
  pitchAge_ = 320;  // the first frame computes it
  snrPeak_ = 0;
  modFast_ = modSlow_ = 0;
  primed_ = false;
  frames_ = 0;
  hangLeft_ = 0;
  speechRunMs_ = silenceRunMs_ = 0;
  active_ = false;
  threshold_ = opt_.threshold >= 0 ? opt_.threshold : model::kThreshold;
  // The release threshold keeps the model's distance below the start one
  // (hysteresis, as Silero VAD's neg_threshold), also under a caller's threshold.
  release_ = std::max(0.f, threshold_ - (model::kThreshold - model::kRelease));
  raw_ = false;
  hangover_ = opt_.hangoverFrames >= 0 ? opt_.hangoverFrames : model::kHangoverFrames;
}

void Detector::Analyse(int n, float* f, bool extended) {
  float power[kHalf + 1];
  PowerSpectrum(history_ + kWindow - kSpectrum, power);
  // Time constants are per 20 ms; scale them to this frame size.
  if (n != lastN_) {
    const float scale = float(n) / 160.f;
    ctxKeep_ = std::pow(0.65f, scale);
    slowKeep_ = std::pow(0.9f, scale);
    lastN_ = n;
  }
  const float ctxKeep = ctxKeep_, slowKeep = slowKeep_;
  float total = 0, totalNoise = 0, low = 0, high = 0, flux = 0, shortNoise = 0, shortNoiseHigh = 0, totalHigh = 0;
  float change = 0;  // level change above 500 Hz, either way
  const float* lastSub = ring_[(ringAt_ + kSubwindows - 1) % kSubwindows];
  for (int b = 0; b < kBands; b++) {
    float e = kEps;
    for (int k = kEdges[b]; k < kEdges[b + 1]; k++) e += power[k];
    total += e;
    (b < 4 ? low : high) += e;
    float x = FastLog2(e);
    // Onsets raise band levels; flux relative to each band's last level is
    // level-free.
    if (primed_) flux += std::max(0.f, x - smooth_[b]);
    if (primed_ && b >= 2) change += std::fabs(x - smooth_[b]);
    smooth_[b] = primed_ ? 0.5f * (smooth_[b] + x) : x;
    subMin_[b] = std::min(subMin_[b], smooth_[b]);
    float floor = subMin_[b];
    for (int w = 0; w < kSubwindows; w++) floor = std::min(floor, ring_[w][b]);
    // Falls with the minimum at once; rises when an old minimum leaves the
    // window (a step up in steady noise is learned within the window).
    noise_[b] = floor;
    // A second floor over only the last 0.3–0.6 s: a noise that swells over
    // seconds (traffic passing, gusts) stands above the long floor but not
    // above this one, while speech keeps dipping between words.
    float recent = FastExp2(std::min(subMin_[b], lastSub[b]));
    shortNoise += recent;
    if (b >= 2) shortNoiseHigh += recent, totalHigh += e;
    float snr = std::clamp(x - noise_[b], -4.f, 20.f);
    context_[b] = ctxKeep * context_[b] + (1 - ctxKeep) * snr;
    f[b] = snr;
    f[kBands + b] = context_[b];
    totalNoise += FastExp2(noise_[b]);
  }
  primed_ = true;
  if (++subFrames_ * n >= kSubwindowFrames * 160) {
    std::copy(subMin_, subMin_ + kBands, ring_[ringAt_]);
    ringAt_ = (ringAt_ + 1) % kSubwindows;
    std::fill(subMin_, subMin_ + kBands, 1e9f);
    subFrames_ = 0;
  }
  float snr = std::clamp(FastLog2(total) - FastLog2(totalNoise), -4.f, 20.f);
  slowSnr_ = slowKeep * slowSnr_ + (1 - slowKeep) * snr;
  f[16] = snr;
  f[17] = slowSnr_;
  f[18] = snr - lastSnr_;
  lastSnr_ = snr;
  f[19] = 0;  // set below from the whole frame
  f[20] = FastLog2(totalNoise);
  // Flatness over groups of 3 bins: noise is flat, voiced speech is peaky.
  float sumLog = 0, sum = 0;
  constexpr int kGroups = 20;
  for (int g = 0; g < kGroups; g++) {
    const float* p = power + 2 + 3 * g;
    float e = p[0] + p[1] + p[2] + kEps;
    sumLog += FastLog2(e);
    sum += e;
  }
  f[21] = sumLog / kGroups - FastLog2(sum / kGroups);
  // The spectrum sees the latest 16 ms; level and zero crossings the whole frame.
  int crossings = 0;
  int64_t energy = 0;
  const int16_t* cur = history_ + kWindow - n;
  for (int i = 0; i < n; i++) {
    energy += int32_t(cur[i]) * cur[i];
    crossings += (cur[i - 1] ^ cur[i]) < 0;
  }
  f[19] = FastLog2(float(energy) / float(n) + 1.f) - 20.f;
  f[22] = float(crossings) / float(n);
  f[23] = FastLog2(low) - FastLog2(high);
  // The extended features cost a second transform: skipped when nobody
  // reads them (a model of kBaseFeatures inputs, no features() call).
  if (!extended) return;
  f[24] = std::min(flux / kBands, 8.f);
  // Pitch strength costs a second transform: refresh it every 40 ms (a
  // syllable lasts longer), hold it between.
  pitchAge_ += n;
  if (pitchAge_ >= 320) pitch_ = PitchStrength(power), pitchAge_ = 0;
  const float pitch = pitch_;
  pitchSmooth_ = ctxKeep * pitchSmooth_ + (1 - ctxKeep) * pitch;
  f[25] = pitch;
  f[26] = pitchSmooth_;
  // The recent SNR peak, decaying 0.5 bit per 20 ms: a learned hangover.
  snrPeak_ = std::max(snr, snrPeak_ - 0.5f * float(n) / 160.f);
  f[27] = snrPeak_;
  f[28] = std::clamp(FastLog2(total) - FastLog2(shortNoise + kEps), -4.f, 20.f);
  f[29] = std::clamp(FastLog2(totalHigh) - FastLog2(shortNoiseHigh + kEps), -4.f, 20.f);
  // Modulation above 500 Hz over about 60 and 200 ms: speech changes level
  // syllable by syllable (2–8 Hz); hum, HVAC, traffic passes and gusts swell
  // and fade over seconds, whatever their level against the floor.
  const float change1 = std::min(change / (kBands - 2), 8.f);
  modFast_ = ctxKeep * modFast_ + (1 - ctxKeep) * change1;
  modSlow_ = slowKeep * modSlow_ + (1 - slowKeep) * change1;
  f[30] = modFast_;
  f[31] = modSlow_;
}

float Detector::Model(const float* f) const {
  float h1[model::kH1], h2[model::kH2];
  for (int j = 0; j < model::kH1; j++) {
    float s = model::kB1[j];
    for (int i = 0; i < model::kIn; i++) s += model::kW1[j][i] * f[i];
    h1[j] = s > 0 ? s : 0;
  }
  for (int j = 0; j < model::kH2; j++) {
    float s = model::kB2[j];
    for (int i = 0; i < model::kH1; i++) s += model::kW2[j][i] * h1[i];
    h2[j] = s > 0 ? s : 0;
  }
  float s = model::kB3;
  for (int i = 0; i < model::kH2; i++) s += model::kW3[i] * h2[i];
  return 1.f / (1.f + std::exp(-s));
}

Result Detector::Process(const int16_t* pcm, int n, float* features) {
  std::memmove(history_, history_ + n, sizeof(int16_t) * (kWindow - n));
  std::memcpy(history_ + kWindow - n, pcm, sizeof(int16_t) * n);
  float local[kFeatures];
  float* f = features ? features : local;
  Analyse(n, f, features != nullptr || model::kIn > kBaseFeatures);
  frames_++;
  Result r{};
  r.probability = Model(f);
  // Speech starts above the threshold and lasts while above the release one.
  bool raw = r.probability > (raw_ ? release_ : threshold_);
  raw_ = raw;
  // The hangover is tuned in 20 ms frames; count it in this frame size.
  if (raw) hangLeft_ = (hangover_ * 160 + n - 1) / n;
  else if (hangLeft_ > 0) hangLeft_--;
  r.speech = raw || hangLeft_ > 0;
  const int ms = n / 8;
  r.event = kNone;
  if (raw) {
    speechRunMs_ += ms;
    silenceRunMs_ = 0;
    if (!active_ && speechRunMs_ >= opt_.minSpeechMs) active_ = true, r.event = kStart;
  } else {
    silenceRunMs_ += ms;
    speechRunMs_ = 0;
    if (active_ && silenceRunMs_ >= opt_.minSilenceMs) active_ = false, r.event = kEnd;
  }
  r.active = active_;
  return r;
}

}  // namespace aybiza::vad

// ---- JS class `Vad` -------------------------------------------------------
namespace aybiza::vad {
namespace {

enum Encoding { kUlaw = 0, kAlaw = 1, kPcm16 = 2 };

class VadWrap : public Napi::ObjectWrap<VadWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Vad",
                       {InstanceMethod<&VadWrap::Process>("process"), InstanceMethod<&VadWrap::Features>("features"),
                        InstanceMethod<&VadWrap::Reset>("reset"), InstanceMethod<&VadWrap::Close>("close")});
  }

  // new Vad(encoding, threshold, hangoverFrames, minSpeechMs, minSilenceMs):
  // the TypeScript wrapper resolves defaults; -1 means "the model's value".
  explicit VadWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VadWrap>(info) {
    encoding_ = int(RequireNumber(info, 0, "encoding", 0, 2));
    Options o;
    o.threshold = float(RequireNumber(info, 1, "threshold", -1, 1));
    o.hangoverFrames = int(RequireNumber(info, 2, "hangoverFrames", -1, 50));
    o.minSpeechMs = int(RequireNumber(info, 3, "minSpeechMs", 0, 10000));
    o.minSilenceMs = int(RequireNumber(info, 4, "minSilenceMs", 0, 60000));
    detector_ = new Detector(o);
  }
  ~VadWrap() override { delete detector_; }

 private:
  Detector* Live(const Napi::CallbackInfo& info) {
    if (!detector_) ThrowClosed(info.Env(), "Vad");
    return detector_;
  }

  // Decodes the frame into pcm_ and returns its sample count. An Int16Array
  // is PCM16 whatever the encoding; a Uint8Array holds `encoding`.
  int Load(const Napi::CallbackInfo& info) {
    TypedArrayView v = RequireTypedArrayView(info, 0, "frame", "a Uint8Array or an Int16Array");
    if (v.type != napi_int16_array && v.type != napi_uint8_array) {
      throw Napi::TypeError::New(info.Env(), "argument 0 (frame) must be a Uint8Array or an Int16Array");
    }
    bool pcm = v.type == napi_int16_array || encoding_ == kPcm16;
    if (pcm && v.type == napi_uint8_array && v.length % 2 != 0) {
      throw Napi::RangeError::New(info.Env(), "argument 0 (frame) has an odd byte count for PCM16");
    }
    size_t n = pcm && v.type == napi_uint8_array ? v.length / 2 : v.length;
    if (n != 80 && n != 160 && n != 240) {
      throw Napi::RangeError::New(info.Env(), "argument 0 (frame) must hold 80, 160 or 240 samples (10/20/30 ms at 8 kHz), not " + std::to_string(n));
    }
    const uint8_t* bytes = static_cast<const uint8_t*>(v.data);
    if (v.type == napi_int16_array) {
      std::memcpy(pcm_, v.data, n * 2);
    } else if (pcm) {
      for (size_t i = 0; i < n; i++) pcm_[i] = int16_t(uint16_t(bytes[2 * i]) | (uint16_t(bytes[2 * i + 1]) << 8));
    } else {
      const int16_t* table = encoding_ == kUlaw ? g711::kUlawToLinear : g711::kAlawToLinear;
      for (size_t i = 0; i < n; i++) pcm_[i] = table[bytes[i]];
    }
    return int(n);
  }

  Napi::Value Process(const Napi::CallbackInfo& info) {
    Detector* d = Live(info);
    int n = Load(info);
    return Napi::Number::New(info.Env(), Encode(d->Process(pcm_, n)));
  }

  Napi::Value Features(const Napi::CallbackInfo& info) {
    Detector* d = Live(info);
    TypedArrayView out = RequireTypedArrayView(info, 1, "out", "a Float32Array");
    if (out.type != napi_float32_array || out.length < size_t(kFeatures)) {
      throw Napi::TypeError::New(info.Env(), "argument 1 (out) must be a Float32Array of at least " +
                                                 std::to_string(kFeatures) + " elements");
    }
    int n = Load(info);
    return Napi::Number::New(info.Env(), Encode(d->Process(pcm_, n, static_cast<float*>(out.data))));
  }

  void Reset(const Napi::CallbackInfo& info) { Live(info)->Reset(); }
  void Close(const Napi::CallbackInfo&) {
    delete detector_;
    detector_ = nullptr;
  }

  int encoding_;
  Detector* detector_ = nullptr;
  int16_t pcm_[240];
};

}  // namespace

// One number per frame, so the native side allocates nothing: the integer
// part carries the flags (2 speech, 4 active, 8 start, 16 end) and the
// fraction the probability (capped below 1).
double Encode(const Result& r) {
  int flags = (r.speech ? 2 : 0) | (r.active ? 4 : 0) | (r.event == kStart ? 8 : 0) | (r.event == kEnd ? 16 : 0);
  return flags + std::min(double(r.probability), 0.999999);
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("Vad", VadWrap::Define(env));
  // The committed model's decision parameters, for inspection and tests.
  Napi::Object m = Napi::Object::New(env);
  m.Set("inputs", model::kIn);
  m.Set("threshold", model::kThreshold);
  m.Set("release", model::kRelease);
  m.Set("hangoverFrames", model::kHangoverFrames);
  exports.Set("vadModel", m);
}

}  // namespace aybiza::vad
