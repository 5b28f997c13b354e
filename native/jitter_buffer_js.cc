// JS binding: class JitterBuffer over one aybiza::jitter::Buffer. Positional
// arguments (the TS wrapper unpacks the packet object) keep the per-frame path
// to a few N-API calls.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "args.h"
#include "jitter_buffer.h"

namespace aybiza::jitter {
namespace {

double OptionNumber(Napi::Object opts, const char* name, double fallback, double min, double max) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(opts.Env(), std::string("options.") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max)) {
    throw Napi::RangeError::New(opts.Env(), std::string("options.") + name + " must be between " +
                                                std::to_string(int(min)) + " and " + std::to_string(int(max)));
  }
  return d;
}

class JitterBufferWrap : public Napi::ObjectWrap<JitterBufferWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "JitterBuffer",
                       {InstanceMethod<&JitterBufferWrap::PushJs>("push"), InstanceMethod<&JitterBufferWrap::PopJs>("pop"),
                        InstanceMethod<&JitterBufferWrap::SkipJs>("skip"),
                        InstanceMethod<&JitterBufferWrap::StatsJs>("stats"),
                        InstanceMethod<&JitterBufferWrap::ResetJs>("reset"),
                        InstanceMethod<&JitterBufferWrap::CloseJs>("close")});
  }

  explicit JitterBufferWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JitterBufferWrap>(info) {
    Napi::Env env = info.Env();
    Options o;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsObject()) throw Napi::TypeError::New(env, "argument 0 (options) must be an object");
      Napi::Object opts = info[0].As<Napi::Object>();
      Napi::Value codec = opts.Get("codec");
      if (!codec.IsUndefined()) {
        if (!codec.IsString()) throw Napi::TypeError::New(env, "options.codec must be 'pcmu' or 'pcma'");
        std::string c = codec.As<Napi::String>().Utf8Value();
        if (c != "pcmu" && c != "pcma") throw Napi::RangeError::New(env, "options.codec must be 'pcmu' or 'pcma'");
        o.codec = c == "pcmu" ? Codec::kPcmu : Codec::kPcma;
      }
      o.min_delay_ms = OptionNumber(opts, "minDelayMs", o.min_delay_ms, 0, 1000);
      o.max_delay_ms = OptionNumber(opts, "maxDelayMs", std::max(o.max_delay_ms, o.min_delay_ms), 20, 1000);
      Napi::Value budget = opts.Get("lateLossBudget");
      if (!budget.IsUndefined()) {
        if (!budget.IsNumber()) throw Napi::TypeError::New(env, "options.lateLossBudget must be a number");
        double b = budget.As<Napi::Number>().DoubleValue();
        if (!(b >= 0 && b <= 0.2)) throw Napi::RangeError::New(env, "options.lateLossBudget must be between 0 and 0.2");
        o.late_loss_budget = b;
      }
      if (o.max_delay_ms < o.min_delay_ms) {
        throw Napi::RangeError::New(env, "options.maxDelayMs must not be below options.minDelayMs");
      }
    }
    buffer_ = std::make_unique<Buffer>(o);
  }

 private:
  Buffer& Open(const Napi::CallbackInfo& info) {
    if (!buffer_) ThrowClosed(info.Env(), "JitterBuffer");
    return *buffer_;
  }

  // push(seq, timestamp, payload, arrivalMs, ssrc?) -> PushResult as a number
  Napi::Value PushJs(const Napi::CallbackInfo& info) {
    Buffer& b = Open(info);
    auto seq = uint16_t(RequireInteger(info, 0, "seq", 0, 65535));
    auto ts = uint32_t(RequireInteger(info, 1, "timestamp", 0, 4294967295.0));
    ByteSpan payload = RequireBytes(info, 2, "payload");
    if (payload.length != kFrameSamples) {
      throw Napi::RangeError::New(info.Env(), "argument 2 (payload) must be 160 bytes (one 20 ms G.711 frame), got " +
                                                  std::to_string(payload.length));
    }
    double arrival = RequireNumber(info, 3, "arrivalMs", -9e15, 9e15);
    bool has_ssrc = info.Length() > 4 && !info[4].IsUndefined();
    uint32_t ssrc = has_ssrc ? uint32_t(RequireInteger(info, 4, "ssrc", 0, 4294967295.0)) : 0;
    return Napi::Number::New(info.Env(), double(b.Push(seq, ts, payload.data, arrival, has_ssrc, ssrc)));
  }

  // skip(seq): a sequence number that carried no audio.
  Napi::Value SkipJs(const Napi::CallbackInfo& info) {
    Buffer& b = Open(info);
    b.Skip(uint16_t(RequireInteger(info, 0, "seq", 0, 65535)));
    return info.Env().Undefined();
  }

  // pop(nowMs, dst) -> PopResult as a number; dst receives the frame.
  Napi::Value PopJs(const Napi::CallbackInfo& info) {
    Buffer& b = Open(info);
    double now = RequireNumber(info, 0, "nowMs", -9e15, 9e15);
    ByteSpan dst = RequireBytes(info, 1, "dst");
    RequireRoom(info, kFrameSamples, dst.length, "dst");
    return Napi::Number::New(info.Env(), double(b.Pop(now, dst.data)));
  }

  Napi::Value StatsJs(const Napi::CallbackInfo& info) {
    Stats s = Open(info).GetStats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("received", double(s.received));
    o.Set("played", double(s.played));
    o.Set("late", double(s.late));
    o.Set("lost", double(s.lost));
    o.Set("concealed", double(s.concealed));
    o.Set("duplicate", double(s.duplicate));
    o.Set("reordered", double(s.reordered));
    o.Set("currentDelayMs", s.current_delay_ms);
    o.Set("targetDelayMs", s.target_delay_ms);
    o.Set("meanDelayMs", s.mean_delay_ms);
    o.Set("p95DelayMs", s.p95_delay_ms);
    o.Set("stretched", double(s.stretched));
    o.Set("compressed", double(s.compressed));
    o.Set("stretchedMs", s.stretched_ms);
    o.Set("compressedMs", s.compressed_ms);
    o.Set("driftPpm", s.drift_ppm);
    o.Set("heavyTail", s.heavy_tail);
    return o;
  }

  Napi::Value ResetJs(const Napi::CallbackInfo& info) {
    Open(info).Reset();
    return info.Env().Undefined();
  }

  // Idempotent (a second close is a no-op, not ERR_AYBIZA_CLOSED): the owner
  // may close from several teardown paths.
  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    buffer_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Buffer> buffer_;
};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) { exports.Set("JitterBuffer", JitterBufferWrap::Define(env)); }

}  // namespace aybiza::jitter
