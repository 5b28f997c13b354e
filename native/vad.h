// Voice activity detection for 8 kHz telephony audio, no N-API inside: the
// JS class (vad.cc) and the fused per-frame channel (media_channel.cc) both
// drive this one class.
//
// Per call of Process() (10, 20 or 30 ms of PCM16): a 128-sample (16 ms)
// Hann-windowed spectrum of the most recent audio (a 256-point transform
// costs more than WebRTC VAD's whole frame) → eight sub-band energies
// → a noise floor per band tracked like minimum statistics (falls at once,
// rises when the old minimum leaves a 2.5 s window) → a-posteriori SNR per band, their short-term context,
// spectral flatness and zero-crossing rate, spectral flux, pitch strength
// above 300 Hz (so mains hum does not count), a decaying recent SNR peak,
// the SNR against a second, short-memory floor (whole band and above
// 500 Hz), and the level modulation above 500 Hz → a small MLP trained offline on
// a seeded corpus (bench/vad/) whose weights are committed in vad_model.h.
// Above the frame probability: a start and a lower release threshold
// (hysteresis), a hangover for the frame flag, and an
// onset/hangover state machine (minimum speech and silence durations) that
// turns the flags into stable speech-start and speech-end events.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aybiza::vad {

constexpr int kWindow = 256;   // audio history kept, samples
constexpr int kSpectrum = 128; // spectral window (16 ms, the frame's latest)
constexpr int kBands = 8;
constexpr int kFeatures = 32;  // the model (vad_model.h) reads the first model::kIn
constexpr int kBaseFeatures = 24;  // features 0–23; 24–31 (flux, pitch, recent peak, short floor, modulation) extend them

struct Options {
  float threshold = -1;     // frame decision on the probability; <0: the model's tuned value
  int hangoverFrames = -1;  // frame-flag hangover in 20 ms units; <0: the model's tuned value
  int minSpeechMs = 60;     // speech-start after this much continuous speech
  int minSilenceMs = 300;   // speech-end after this much continuous silence
};

enum Event : int { kNone = 0, kStart = 1, kEnd = 2 };

struct Result {
  float probability;
  bool speech;   // this frame, with the short hangover
  bool active;   // the smoothed state (events move it)
  Event event;
};

class Detector {
 public:
  explicit Detector(const Options& options);
  void Reset();
  // pcm: n samples, n in {80, 160, 240}. features (optional) receives the
  // kFeatures model inputs, for training and inspection.
  Result Process(const int16_t* pcm, int n, float* features = nullptr);

 private:
  void Analyse(int n, float* f, bool extended);
  float Model(const float* f) const;

  Options opt_;
  float threshold_;
  float release_;  // a speech run continues while the probability stays above this
  bool raw_;       // the last frame's decision before the hangover
  int hangover_;  // in frames of the current size
  int16_t history_[kWindow];  // most recent samples, oldest first
  float noise_[kBands];       // per-band noise floor, log2 energy
  // Minimum statistics: the floor is the least smoothed band level over the
  // last kSubwindows × kSubwindowFrames frames (about 2.5 s), so a new steady
  // noise is learned within that time and speech never is.
  static constexpr int kSubwindows = 8, kSubwindowFrames = 16;
  float smooth_[kBands];
  float subMin_[kBands];
  float ring_[kSubwindows][kBands];
  int subFrames_ = 0, ringAt_ = 0;
  float context_[kBands];     // short-term mean of band SNR
  float slowSnr_;
  float lastSnr_;
  float pitch_;        // pitch strength, refreshed every 40 ms
  int pitchAge_;       // samples since it was
  float pitchSmooth_;  // short-term mean of the pitch strength
  float snrPeak_;      // recent peak of the total SNR, decaying
  float modFast_, modSlow_;  // level change above 500 Hz, smoothed over ~60 / ~200 ms
  int lastN_ = 0;  // frame size the per-frame constants below were computed for
  float ctxKeep_ = 0, slowKeep_ = 0;
  bool primed_;
  int frames_;
  int hangLeft_;
  int speechRunMs_;
  int silenceRunMs_;
  bool active_;
};

// Packs a result into one JS number (see vad.cc).
double Encode(const Result& r);

}  // namespace aybiza::vad
