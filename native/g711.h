// ITU-T G.711 μ-law and A-law, table driven.
// Encoders follow the ITU-T G.191 STL reference (g711.c): a negative sample's
// magnitude is formed with one's complement (~x), which is the convention the
// tests state. Decoders are exact for all 256 codes. μ-law<->A-law use the
// conversion tables of G.711 itself (not "decode then re-encode").
#pragma once

#include <cstddef>
#include <cstdint>

namespace aybiza::g711 {

// Built once at load; 64 K-entry encoders indexed by the 16-bit sample so the
// hot loop is one load per sample.
void InitTables();

extern int16_t kUlawToLinear[256];
extern int16_t kAlawToLinear[256];
extern uint8_t kLinearToUlaw[65536];
extern uint8_t kLinearToAlaw[65536];
extern uint8_t kUlawToAlaw[256];
extern uint8_t kAlawToUlaw[256];

inline uint8_t EncodeUlaw(int16_t x) { return kLinearToUlaw[uint16_t(x)]; }
inline uint8_t EncodeAlaw(int16_t x) { return kLinearToAlaw[uint16_t(x)]; }
inline int16_t DecodeUlaw(uint8_t c) { return kUlawToLinear[c]; }
inline int16_t DecodeAlaw(uint8_t c) { return kAlawToLinear[c]; }

inline void DecodeUlawBlock(const uint8_t* src, int16_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = kUlawToLinear[src[i]];
}

}  // namespace aybiza::g711
