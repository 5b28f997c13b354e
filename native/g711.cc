// G.711 tables and the JS bindings for the codec entry points.
#include "g711.h"

#include <mutex>

#include "args.h"

namespace aybiza::g711 {

int16_t kUlawToLinear[256];
int16_t kAlawToLinear[256];
uint8_t kLinearToUlaw[65536];
uint8_t kLinearToAlaw[65536];
uint8_t kUlawToAlaw[256];
uint8_t kAlawToUlaw[256];

namespace {

// G.191 ulaw_compress for one 16-bit sample.
uint8_t UlawCompress(int16_t x) {
  int absno = x < 0 ? ((~x) >> 2) + 33 : (x >> 2) + 33;
  if (absno > 0x1FFF) absno = 0x1FFF;
  int i = absno >> 6;
  int segno = 1;
  while (i != 0) {
    segno++;
    i >>= 1;
  }
  int high = 0x8 - segno;
  int low = 0xF - ((absno >> segno) & 0xF);
  int code = (high << 4) | low;
  if (x >= 0) code |= 0x80;
  return uint8_t(code);
}

// G.191 ulaw_expand for one code.
int16_t UlawExpand(uint8_t code) {
  int sign = code < 0x80 ? -1 : 1;
  int mantissa = ~code;
  int exponent = (mantissa >> 4) & 0x7;
  int segment = exponent + 1;
  mantissa &= 0xF;
  int step = 4 << segment;
  return int16_t(sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33));
}

// G.191 alaw_compress for one 16-bit sample.
uint8_t AlawCompress(int16_t x) {
  int ix = x < 0 ? (~x) >> 4 : x >> 4;
  if (ix > 15) {
    int iexp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      iexp++;
    }
    ix -= 16;
    ix += iexp << 4;
  }
  if (x >= 0) ix |= 0x80;
  return uint8_t(ix ^ 0x55);
}

// G.191 alaw_expand for one code.
int16_t AlawExpand(uint8_t code) {
  int ix = (code ^ 0x55) & 0x7F;
  int iexp = ix >> 4;
  int mant = ix & 0xF;
  if (iexp > 0) mant += 16;
  mant = (mant << 4) + 0x8;
  if (iexp > 1) mant <<= (iexp - 1);
  return int16_t(code > 127 ? mant : -mant);
}

// Conversion tables as printed in G.711 (Tables 3 and 4), indexed by the
// magnitude part of the code, values 1-based.
const uint8_t kU2A[128] = {
    1,   1,   2,   2,   3,   3,   4,   4,   5,   5,   6,   6,   7,   7,   8,   8,   9,   10,  11,
    12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  27,  29,  31,  33,  34,
    35,  36,  37,  38,  39,  40,  41,  42,  43,  44,  46,  48,  49,  50,  51,  52,  53,  54,  55,
    56,  57,  58,  59,  60,  61,  62,  64,  65,  66,  67,  68,  69,  70,  71,  72,  73,  74,  75,
    76,  77,  78,  79,  81,  82,  83,  84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,
    96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114,
    115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128};
const uint8_t kA2U[128] = {
    1,   3,   5,   7,   9,   11,  13,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,
    27,  28,  29,  30,  31,  32,  32,  33,  33,  34,  34,  35,  35,  36,  37,  38,  39,  40,  41,
    42,  43,  44,  45,  46,  47,  48,  48,  49,  49,  50,  51,  52,  53,  54,  55,  56,  57,  58,
    59,  60,  61,  62,  63,  64,  64,  65,  66,  67,  68,  69,  70,  71,  72,  73,  74,  75,  76,
    77,  78,  79,  79,  80,  81,  82,  83,  84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,
    95,  96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127};

}  // namespace

void InitTables() {
  for (int c = 0; c < 256; c++) {
    kUlawToLinear[c] = UlawExpand(uint8_t(c));
    kAlawToLinear[c] = AlawExpand(uint8_t(c));
    uint8_t u = uint8_t(c);
    kUlawToAlaw[c] = (u & 0x80) ? uint8_t(0xD5 ^ (kU2A[0xFF ^ u] - 1)) : uint8_t(0x55 ^ (kU2A[0x7F ^ u] - 1));
    uint8_t a = uint8_t(c);
    kAlawToUlaw[c] = (a & 0x80) ? uint8_t(0xFF ^ kA2U[a ^ 0xD5]) : uint8_t(0x7F ^ kA2U[a ^ 0x55]);
  }
  for (int v = 0; v < 65536; v++) {
    kLinearToUlaw[v] = UlawCompress(int16_t(uint16_t(v)));
    kLinearToAlaw[v] = AlawCompress(int16_t(uint16_t(v)));
  }
}

namespace {

using aybiza::ByteSpan;
using aybiza::Pcm16Span;

template <const uint8_t* Table>
Napi::Value EncodeInto(const Napi::CallbackInfo& info) {
  Pcm16Span src = RequirePcm16(info, 0, "src");
  ByteSpan dst = RequireBytes(info, 1, "dst");
  RequireRoom(info, src.length, dst.length, "dst");
  if (src.samples) {
    for (size_t i = 0; i < src.length; i++) dst.data[i] = Table[uint16_t(src.samples[i])];
  } else {
    for (size_t i = 0; i < src.length; i++) dst.data[i] = Table[uint16_t(src.get(i))];
  }
  return Napi::Number::New(info.Env(), double(src.length));
}

template <const int16_t* Table>
Napi::Value DecodeInto(const Napi::CallbackInfo& info) {
  ByteSpan src = RequireBytes(info, 0, "src");
  Pcm16Span dst = RequirePcm16(info, 1, "dst");
  RequireRoom(info, src.length, dst.length, "dst");
  if (dst.samples) {
    for (size_t i = 0; i < src.length; i++) dst.samples[i] = Table[src.data[i]];
  } else {
    for (size_t i = 0; i < src.length; i++) dst.set(i, Table[src.data[i]]);
  }
  return Napi::Number::New(info.Env(), double(src.length));
}

template <const uint8_t* Table>
Napi::Value TranscodeInto(const Napi::CallbackInfo& info) {
  ByteSpan src = RequireBytes(info, 0, "src");
  ByteSpan dst = RequireBytes(info, 1, "dst");
  RequireRoom(info, src.length, dst.length, "dst");
  for (size_t i = 0; i < src.length; i++) dst.data[i] = Table[src.data[i]];
  return Napi::Number::New(info.Env(), double(src.length));
}

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  // The addon is loaded once per thread (WORKERS): the tables are process-wide
  // and read without a lock, so they are written exactly once, before any reader.
  static std::once_flag tables_once;
  std::call_once(tables_once, InitTables);
  exports.Set("ulawEncodeInto", Napi::Function::New(env, EncodeInto<kLinearToUlaw>, "ulawEncodeInto"));
  exports.Set("alawEncodeInto", Napi::Function::New(env, EncodeInto<kLinearToAlaw>, "alawEncodeInto"));
  exports.Set("ulawDecodeInto", Napi::Function::New(env, DecodeInto<kUlawToLinear>, "ulawDecodeInto"));
  exports.Set("alawDecodeInto", Napi::Function::New(env, DecodeInto<kAlawToLinear>, "alawDecodeInto"));
  exports.Set("ulawToAlawInto", Napi::Function::New(env, TranscodeInto<kUlawToAlaw>, "ulawToAlawInto"));
  exports.Set("alawToUlawInto", Napi::Function::New(env, TranscodeInto<kAlawToUlaw>, "alawToUlawInto"));
}

}  // namespace aybiza::g711
