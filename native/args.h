// Argument validation shared by every native entry point.
// The addon is built with C++ exceptions: a Napi::Error thrown here becomes a
// JS TypeError/RangeError at the call site, so bad input can never abort the
// process. Every exported function validates all of its arguments through
// these helpers before touching memory.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace aybiza {

// Upper bound on the samples one call may process (about 2.3 h of 8 kHz
// audio). Larger inputs are programming errors, not audio.
constexpr size_t kMaxSamples = size_t(1) << 25;

struct ByteSpan {
  uint8_t* data;
  size_t length;
};

// PCM16 either as an Int16Array (native order) or as little-endian bytes in a
// Uint8Array/Buffer (what arrives from sockets and files).
struct Pcm16Span {
  int16_t* samples;  // set for Int16Array
  uint8_t* bytes;    // set for little-endian byte views
  size_t length;     // in samples
  inline int16_t get(size_t i) const {
    if (samples) return samples[i];
    return int16_t(uint16_t(bytes[2 * i]) | (uint16_t(bytes[2 * i + 1]) << 8));
  }
  inline void set(size_t i, int16_t v) const {
    if (samples) {
      samples[i] = v;
    } else {
      bytes[2 * i] = uint8_t(uint16_t(v) & 0xFF);
      bytes[2 * i + 1] = uint8_t(uint16_t(v) >> 8);
    }
  }
};

inline std::string ArgName(size_t index, const char* name) {
  return "argument " + std::to_string(index) + " (" + name + ")";
}

inline Napi::TypedArray RequireTypedArray(const Napi::CallbackInfo& info, size_t index,
                                          const char* name, const char* expected) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsTypedArray()) {
    throw Napi::TypeError::New(env, ArgName(index, name) + " must be " + expected);
  }
  Napi::TypedArray ta = info[index].As<Napi::TypedArray>();
  Napi::Value buf = ta.Get("buffer");
  if (buf.IsArrayBuffer()) {
    if (buf.As<Napi::ArrayBuffer>().IsDetached()) {
      throw Napi::TypeError::New(env, ArgName(index, name) + " is backed by a detached ArrayBuffer");
    }
  } else {
    // SharedArrayBuffer: another thread could change samples mid-DSP.
    throw Napi::TypeError::New(env, ArgName(index, name) + " must not be backed by a SharedArrayBuffer");
  }
  if (ta.ElementLength() > kMaxSamples * 2) {
    throw Napi::RangeError::New(env, ArgName(index, name) + " is too large (limit " +
                                         std::to_string(kMaxSamples) + " samples)");
  }
  return ta;
}

inline ByteSpan RequireBytes(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::TypedArray ta = RequireTypedArray(info, index, name, "a Uint8Array or Buffer");
  if (ta.TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), ArgName(index, name) + " must be a Uint8Array or Buffer");
  }
  Napi::Uint8Array u8 = ta.As<Napi::Uint8Array>();
  if (u8.ElementLength() > kMaxSamples) {
    throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " is too large");
  }
  return ByteSpan{u8.Data(), u8.ElementLength()};
}

inline Pcm16Span RequirePcm16(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::TypedArray ta = RequireTypedArray(info, index, name,
                                          "an Int16Array or a Uint8Array of little-endian PCM16");
  if (ta.TypedArrayType() == napi_int16_array) {
    Napi::Int16Array i16 = ta.As<Napi::Int16Array>();
    return Pcm16Span{i16.Data(), nullptr, i16.ElementLength()};
  }
  if (ta.TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array u8 = ta.As<Napi::Uint8Array>();
    if (u8.ElementLength() % 2 != 0) {
      throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " has an odd byte count (" +
                                                  std::to_string(u8.ElementLength()) +
                                                  "); PCM16 needs 2 bytes per sample");
    }
    return Pcm16Span{nullptr, u8.Data(), u8.ElementLength() / 2};
  }
  throw Napi::TypeError::New(info.Env(), ArgName(index, name) +
                                             " must be an Int16Array or a Uint8Array of little-endian PCM16");
}

inline void RequireRoom(const Napi::CallbackInfo& info, size_t needed, size_t have, const char* name) {
  if (have < needed) {
    throw Napi::RangeError::New(info.Env(), std::string("destination (") + name + ") holds " +
                                                std::to_string(have) + " samples but " +
                                                std::to_string(needed) + " are needed");
  }
}

inline double RequireNumber(const Napi::CallbackInfo& info, size_t index, const char* name,
                            double min, double max) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), ArgName(index, name) + " must be a number");
  }
  double v = info[index].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max)) {  // also rejects NaN
    throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " must be between " +
                                                std::to_string(min) + " and " + std::to_string(max));
  }
  return v;
}

}  // namespace aybiza
