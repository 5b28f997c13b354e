// Argument validation shared by every native entry point.
// The addon is built with C++ exceptions: a Napi::Error thrown here becomes a
// JS TypeError/RangeError at the call site, so bad input can never abort the
// process. Every exported function validates all of its arguments through
// these helpers before touching memory.
#pragma once

#include <napi.h>

#include <cmath>
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

// One napi_get_typedarray_info call per argument: this runs on the per-frame
// hot path, where each extra N-API call is a measurable share of the cost.
struct TypedArrayView {
  napi_typedarray_type type;
  void* data;
  size_t length;  // in elements
};

inline TypedArrayView RequireTypedArrayView(const Napi::CallbackInfo& info, size_t index, const char* name,
                                            const char* expected) {
  napi_env env = info.Env();
  napi_value v = info.Length() > index ? static_cast<napi_value>(info[index]) : nullptr;
  TypedArrayView view{};
  napi_value buffer;
  size_t offset;
  // napi_invalid_arg (no pending exception) when v is not a TypedArray.
  if (v == nullptr || napi_get_typedarray_info(env, v, &view.type, &view.length, &view.data, &buffer, &offset) != napi_ok) {
    throw Napi::TypeError::New(env, ArgName(index, name) + " must be " + expected);
  }
  bool is_ab = false;
  napi_is_arraybuffer(env, buffer, &is_ab);
  if (!is_ab) {
    // SharedArrayBuffer: another thread could change samples mid-DSP.
    throw Napi::TypeError::New(env, ArgName(index, name) + " must not be backed by a SharedArrayBuffer");
  }
  if (view.length == 0) {
    bool detached = false;
    napi_is_detached_arraybuffer(env, buffer, &detached);
    if (detached) throw Napi::TypeError::New(env, ArgName(index, name) + " is backed by a detached ArrayBuffer");
  }
  if (view.length > kMaxSamples * 2) {
    throw Napi::RangeError::New(env, ArgName(index, name) + " is too large (limit " + std::to_string(kMaxSamples) +
                                         " samples)");
  }
  return view;
}

inline ByteSpan RequireBytes(const Napi::CallbackInfo& info, size_t index, const char* name) {
  TypedArrayView v = RequireTypedArrayView(info, index, name, "a Uint8Array or Buffer");
  if (v.type != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), ArgName(index, name) + " must be a Uint8Array or Buffer");
  }
  if (v.length > kMaxSamples) throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " is too large");
  return ByteSpan{static_cast<uint8_t*>(v.data), v.length};
}

inline Pcm16Span RequirePcm16(const Napi::CallbackInfo& info, size_t index, const char* name) {
  TypedArrayView v =
      RequireTypedArrayView(info, index, name, "an Int16Array or a Uint8Array of little-endian PCM16");
  if (v.type == napi_int16_array) return Pcm16Span{static_cast<int16_t*>(v.data), nullptr, v.length};
  if (v.type == napi_uint8_array) {
    if (v.length % 2 != 0) {
      throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " has an odd byte count (" +
                                                  std::to_string(v.length) + "); PCM16 needs 2 bytes per sample");
    }
    return Pcm16Span{nullptr, static_cast<uint8_t*>(v.data), v.length / 2};
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

// A whole number in [min, max] (counts, ids, sequence numbers, offsets).
inline double RequireInteger(const Napi::CallbackInfo& info, size_t index, const char* name, double min, double max) {
  double v = RequireNumber(info, index, name, min, max);
  if (v != std::floor(v)) throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " must be an integer");
  return v;
}

// Any use of a native object after close(): a TypeError, like any use of a
// released handle in Node, with a code that tells it from a bad argument.
[[noreturn]] inline void ThrowClosed(Napi::Env env, const char* what) {
  Napi::Error err = Napi::TypeError::New(env, std::string(what) + " is closed");
  err.Set("code", Napi::String::New(env, "ERR_AYBIZA_CLOSED"));
  throw err;
}

}  // namespace aybiza
