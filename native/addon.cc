// The one native module. Each media concept registers its entry points here;
// the TypeScript side reaches them only through src/media/native.ts.
#include <napi.h>

namespace aybiza::g711 {
void Register(Napi::Env env, Napi::Object exports);
}
namespace aybiza::vad {
void Register(Napi::Env env, Napi::Object exports);
}

namespace aybiza::dtmf {
void Register(Napi::Env env, Napi::Object exports);
}

namespace aybiza::channel {
void Register(Napi::Env env, Napi::Object exports);
}

namespace aybiza::jitter {
void Register(Napi::Env env, Napi::Object exports);
}

namespace aybiza::recording {
void Register(Napi::Env env, Napi::Object exports);
}

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  aybiza::g711::Register(env, exports);  // first: builds the tables the others use
  aybiza::vad::Register(env, exports);
  aybiza::dtmf::Register(env, exports);
  aybiza::channel::Register(env, exports);
  aybiza::jitter::Register(env, exports);
  aybiza::recording::Register(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(aybiza_media, Init)
