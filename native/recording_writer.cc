// The node's recording files, written by one native thread per writer (per
// isolate: each media worker has its own). The JS side (src/recordings/file.ts)
// fills a slot of an arena this writer allocated with a second of audio and
// the WAV header in front, and hands the slot's number over; the thread
// appends the data and rewrites the header with pwrite, then frees the slot.
// Nothing crosses isolates and nothing is serialised: a handover is one mutex
// round trip. The thread wakes at most every kBatchMs while files are open
// (an open or a close wakes it at once), so a call's second of audio costs
// two system calls and a share of a wake-up.
//
// Hostile callers (the fuzzer) get TypeError/RangeError: slots are tracked
// (only an allocated slot can be written or released), files are created only
// as `<name>.wav` in an absolute directory, ids are checked, and a file's ops
// after its close are refused. Arena memory lives until both the writer and
// every JS view of it are gone.
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "args.h"

namespace aybiza::recording {
namespace {

constexpr int kBatchMs = 100;
constexpr int kMaxArenas = 64;
constexpr size_t kMaxArenaBytes = size_t(64) << 20;
constexpr size_t kMaxLiveFiles = 1 << 16;
constexpr double kMaxFileBytes = 4294967295.0;  // a WAV's sizes are 32-bit

struct Arena {
  std::unique_ptr<uint8_t[]> bytes;
  explicit Arena(size_t n) : bytes(new uint8_t[n]()) {}
};

struct Op {
  enum Kind : uint8_t { kOpen, kData, kCopy, kClose };
  explicit Op(Kind k) : kind(k) {}
  Kind kind;
  uint32_t id = 0;
  int slot = -1;
  uint32_t len = 0;
  uint64_t at = 0, size = 0;
  std::vector<uint8_t> data, header;  // kCopy: the chunk and its header; kOpen: the header
  std::string dir, name;
};

// What JS sees of a file; guarded by Shared::mu.
struct FileState {
  uint64_t written = 0;  // data bytes on disk with a header counting them
  std::string error;
  bool closing = false, closed = false;
};

struct Shared {
  // Layout, fixed at construction.
  size_t header_at = 0, header_bytes = 0, slot_data = 0, slot_bytes = 0, arena_slots = 0;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Op> queue;
  bool urgent = false, stopping = false, hold = false;
  std::unordered_map<uint32_t, FileState> files;
  size_t open_files = 0;  // opened and not yet closed by the thread
  std::vector<std::shared_ptr<Arena>> arenas;
  std::vector<int> free_slots;
  std::vector<uint8_t> slot_state;  // 0 free, 1 held by JS, 2 queued for the thread

  uint8_t* SlotBase(int slot) const {
    return arenas[size_t(slot) / arena_slots]->bytes.get() + (size_t(slot) % arena_slots) * slot_bytes;
  }
};

bool WriteAll(int fd, const uint8_t* p, size_t n, uint64_t at, std::string* err) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off_t(at));
    if (w < 0) {
      if (errno == EINTR) continue;
      *err = std::string("write failed: ") + strerror(errno);
      return false;
    }
    p += w, n -= size_t(w), at += uint64_t(w);
  }
  return true;
}

// mkdir -p of an absolute path (mode 0750 for what it creates).
bool MakeDirs(const std::string& dir, std::string* err) {
  std::string cur;
  size_t i = 1;
  while (i <= dir.size()) {
    size_t j = dir.find('/', i);
    if (j == std::string::npos) j = dir.size();
    cur = dir.substr(0, j);
    if (j > i && mkdir(cur.c_str(), 0750) != 0 && errno != EEXIST) {
      *err = "cannot create " + cur + ": " + strerror(errno);
      return false;
    }
    i = j + 1;
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *err = "not a directory: " + dir;
    return false;
  }
  return true;
}

struct Result {
  uint32_t id;
  uint64_t written;
  bool has_written, closed;
  std::string error;
};

void Run(std::shared_ptr<Shared> s) {
  pthread_setname_np(pthread_self(), "aybiza-rec");
  std::unordered_map<uint32_t, int> fds;  // the thread's own: id -> fd (-1 once failed)
  std::vector<Op> ops;
  std::vector<Result> results;
  std::vector<int> done_slots;
  std::unique_lock<std::mutex> lk(s->mu);
  for (;;) {
    if (s->open_files == 0 && s->queue.empty()) {
      s->cv.wait(lk, [&] { return s->stopping || !s->queue.empty(); });
    } else {
      s->cv.wait_for(lk, std::chrono::milliseconds(kBatchMs), [&] { return s->stopping || s->urgent; });
    }
    if (s->stopping) break;
    s->urgent = false;
    if (s->hold || s->queue.empty()) continue;
    ops.swap(s->queue);
    lk.unlock();
    results.clear();
    done_slots.clear();
    for (Op& op : ops) {
      Result r{op.id, 0, false, false, {}};
      auto it = fds.find(op.id);
      int fd = it == fds.end() ? -1 : it->second;
      switch (op.kind) {
        case Op::kOpen: {
          std::string err;
          fd = -1;
          if (MakeDirs(op.dir, &err)) {
            std::string file = op.dir + "/" + op.name;
            fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
            if (fd < 0) err = "cannot open " + file + ": " + strerror(errno);
            else if (!WriteAll(fd, op.header.data(), op.header.size(), 0, &err)) close(fd), fd = -1;
          }
          fds[op.id] = fd;
          if (fd < 0) r.error = err;
          break;
        }
        case Op::kData:
        case Op::kCopy: {
          if (op.kind == Op::kData) done_slots.push_back(op.slot);
          if (fd < 0) continue;
          const uint8_t* data = op.kind == Op::kData ? s->SlotBase(op.slot) + s->header_at + s->header_bytes : op.data.data();
          const uint8_t* header = op.kind == Op::kData ? s->SlotBase(op.slot) + s->header_at : op.header.data();
          std::string err;
          // The sizes move only once the data they count is in the file.
          if (WriteAll(fd, data, op.len, op.at, &err) && WriteAll(fd, header, s->header_bytes, 0, &err)) {
            r.written = op.size, r.has_written = true;
          } else {
            close(fd);
            fds[op.id] = -1;
            r.error = err;
          }
          break;
        }
        case Op::kClose:
          if (fd >= 0) close(fd);
          fds.erase(op.id);
          r.closed = true;
          break;
      }
      results.push_back(std::move(r));
    }
    ops.clear();
    lk.lock();
    for (Result& r : results) {
      auto it = s->files.find(r.id);
      if (it == s->files.end()) continue;
      FileState& f = it->second;
      if (r.has_written && r.written > f.written) f.written = r.written;
      if (!r.error.empty() && f.error.empty()) f.error = std::move(r.error);
      if (r.closed && !f.closed) f.closed = true, s->open_files--;
    }
    for (int slot : done_slots) {
      s->slot_state[size_t(slot)] = 0;
      s->free_slots.push_back(slot);
    }
  }
  // Stopped: what is still queued is dropped (its slots freed), open files closed and failed.
  for (Op& op : s->queue) {
    if (op.kind == Op::kData) s->slot_state[size_t(op.slot)] = 0, s->free_slots.push_back(op.slot);
  }
  s->queue.clear();
  for (auto& [id, f] : s->files) {
    if (f.closed) continue;
    if (f.error.empty()) f.error = "recording writer stopped";
    f.closed = true;
  }
  s->open_files = 0;
  lk.unlock();
  for (auto& [id, fd] : fds) {
    if (fd >= 0) close(fd);
  }
}

size_t RequireSize(const Napi::CallbackInfo& info, size_t index, const char* name, double min, double max) {
  return size_t(RequireInteger(info, index, name, min, max));
}

std::string RequireString(const Napi::CallbackInfo& info, size_t index, const char* name, size_t max) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), ArgName(index, name) + " must be a string");
  }
  std::string s = info[index].As<Napi::String>().Utf8Value();
  if (s.empty() || s.size() > max) throw Napi::RangeError::New(info.Env(), ArgName(index, name) + " has a bad length");
  return s;
}

class RecordingWriterWrap : public Napi::ObjectWrap<RecordingWriterWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RecordingWriter",
                       {InstanceMethod<&RecordingWriterWrap::ArenaJs>("arena"),
                        InstanceMethod<&RecordingWriterWrap::AllocJs>("alloc"),
                        InstanceMethod<&RecordingWriterWrap::ReleaseJs>("release"),
                        InstanceMethod<&RecordingWriterWrap::OpenJs>("open"),
                        InstanceMethod<&RecordingWriterWrap::WriteJs>("write"),
                        InstanceMethod<&RecordingWriterWrap::WriteCopyJs>("writeCopy"),
                        InstanceMethod<&RecordingWriterWrap::CloseJs>("close"),
                        InstanceMethod<&RecordingWriterWrap::WrittenJs>("written"),
                        InstanceMethod<&RecordingWriterWrap::ErrorJs>("error"),
                        InstanceMethod<&RecordingWriterWrap::ClosedJs>("closed"),
                        InstanceMethod<&RecordingWriterWrap::ForgetJs>("forget"),
                        InstanceMethod<&RecordingWriterWrap::HoldJs>("hold"),
                        InstanceMethod<&RecordingWriterWrap::StopJs>("stop")});
  }

  // new RecordingWriter(headerAt, headerBytes, slotData, arenaSlots)
  explicit RecordingWriterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RecordingWriterWrap>(info) {
    s_ = std::make_shared<Shared>();
    s_->header_at = RequireSize(info, 0, "headerAt", 0, 64);
    s_->header_bytes = RequireSize(info, 1, "headerBytes", 12, 256);
    s_->slot_data = RequireSize(info, 2, "slotData", 1, 1 << 20);
    s_->arena_slots = RequireSize(info, 3, "arenaSlots", 1, 4096);
    s_->slot_bytes = s_->header_at + s_->header_bytes + s_->slot_data;
    if (s_->slot_bytes * s_->arena_slots > kMaxArenaBytes) {
      throw Napi::RangeError::New(info.Env(), "an arena would exceed " + std::to_string(kMaxArenaBytes) + " bytes");
    }
  }

  ~RecordingWriterWrap() override { Stop(); }

 private:
  std::shared_ptr<Shared> s_;
  std::thread thread_;
  uint32_t next_id_ = 1;
  bool stopped_ = false;

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard<std::mutex> g(s_->mu);
      s_->stopping = true;
    }
    s_->cv.notify_one();
    if (thread_.joinable()) thread_.join();  // never started: no file was ever opened
  }

  void RequireRunning(Napi::Env env) {
    if (stopped_) ThrowClosed(env, "RecordingWriter");
  }

  // The thread starts with the first file.
  void StartThread(Napi::Env env) {
    if (thread_.joinable()) return;
    try {
      thread_ = std::thread(Run, s_);
    } catch (const std::system_error& e) {
      throw Napi::RangeError::New(env, std::string("cannot start the recording thread: ") + e.what());
    }
  }

  // A file id this writer handed out and has not forgotten; its state (caller holds mu).
  FileState& RequireFile(const Napi::CallbackInfo& info, size_t index) {
    size_t id = RequireSize(info, index, "id", 1, 4294967295.0);
    auto it = s_->files.find(uint32_t(id));
    if (it == s_->files.end()) throw Napi::RangeError::New(info.Env(), ArgName(index, "id") + " is not an open file");
    return it->second;
  }

  int RequireHeldSlot(const Napi::CallbackInfo& info, size_t index) {
    size_t slot = RequireSize(info, index, "slot", 0, 1e9);
    if (slot >= s_->slot_state.size() || s_->slot_state[slot] != 1) {
      throw Napi::RangeError::New(info.Env(), ArgName(index, "slot") + " is not an allocated slot");
    }
    return int(slot);
  }

  void Enqueue(Op&& op, bool urgent) {
    s_->queue.push_back(std::move(op));
    if (urgent) s_->urgent = true;
  }

  // A new arena of arenaSlots slots; returns its memory (a JS view keeps it alive).
  Napi::Value ArenaJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    if (s_->arenas.size() >= size_t(kMaxArenas)) {
      throw Napi::RangeError::New(info.Env(), "no more than " + std::to_string(kMaxArenas) + " arenas");
    }
    size_t bytes = s_->slot_bytes * s_->arena_slots;
    auto arena = std::make_shared<Arena>(bytes);
    auto* hold = new std::shared_ptr<Arena>(arena);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        info.Env(), arena->bytes.get(), bytes, [](Napi::Env, void*, std::shared_ptr<Arena>* h) { delete h; }, hold);
    size_t first = s_->arenas.size() * s_->arena_slots;
    s_->arenas.push_back(std::move(arena));
    s_->slot_state.resize(first + s_->arena_slots, 0);
    for (size_t k = s_->arena_slots; k-- > 0;) s_->free_slots.push_back(int(first + k));
    return ab;
  }

  Napi::Value AllocJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    if (s_->free_slots.empty()) return Napi::Number::New(info.Env(), -1);
    int slot = s_->free_slots.back();
    s_->free_slots.pop_back();
    s_->slot_state[size_t(slot)] = 1;
    return Napi::Number::New(info.Env(), slot);
  }

  void ReleaseJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    int slot = RequireHeldSlot(info, 0);
    s_->slot_state[size_t(slot)] = 0;
    s_->free_slots.push_back(slot);
  }

  // open(dir, name, header): dir absolute (no "." or ".." segments), name `[A-Za-z0-9._-]+.wav`.
  Napi::Value OpenJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::string dir = RequireString(info, 0, "dir", 4096);
    std::string name = RequireString(info, 1, "name", 255);
    ByteSpan header = RequireBytes(info, 2, "header");
    if (dir[0] != '/' || dir.find('\0') != std::string::npos || dir.find("/./") != std::string::npos ||
        dir.find("/../") != std::string::npos || (dir.size() >= 2 && dir.compare(dir.size() - 2, 2, "/.") == 0) ||
        (dir.size() >= 3 && dir.compare(dir.size() - 3, 3, "/..") == 0)) {
      throw Napi::RangeError::New(info.Env(), ArgName(0, "dir") + " must be an absolute, normalised path");
    }
    bool ok = name.size() > 4 && name.compare(name.size() - 4, 4, ".wav") == 0 && name[0] != '.';
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    if (!ok) throw Napi::RangeError::New(info.Env(), ArgName(1, "name") + " must be a plain file name ending in .wav");
    if (header.length != s_->header_bytes) {
      throw Napi::RangeError::New(info.Env(), ArgName(2, "header") + " must be " + std::to_string(s_->header_bytes) + " bytes");
    }
    StartThread(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    if (s_->files.size() >= kMaxLiveFiles) throw Napi::RangeError::New(info.Env(), "too many files open");
    uint32_t id = next_id_++;
    if (next_id_ == 0) next_id_ = 1;
    s_->files[id] = FileState{};
    s_->open_files++;
    Op op(Op::kOpen);
    op.id = id;
    op.dir = std::move(dir);
    op.name = std::move(name);
    op.header.assign(header.data, header.data + header.length);
    Enqueue(std::move(op), true);
    s_->cv.notify_one();
    return Napi::Number::New(info.Env(), id);
  }

  // write(id, slot, len, at, size): the slot's data (len bytes) to file offset `at`, then its header; `size` is what the header counts.
  void WriteJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    FileState& f = RequireFile(info, 0);
    int slot = RequireHeldSlot(info, 1);
    size_t len = RequireSize(info, 2, "len", 0, double(s_->slot_data));
    size_t at = RequireSize(info, 3, "at", double(s_->header_bytes), kMaxFileBytes);
    size_t size = RequireSize(info, 4, "size", 0, kMaxFileBytes);
    if (f.closing) throw Napi::RangeError::New(info.Env(), "the file is closing");
    s_->slot_state[size_t(slot)] = 2;
    Op op(Op::kData);
    op.id = uint32_t(info[0].As<Napi::Number>().Uint32Value());
    op.slot = slot;
    op.len = uint32_t(len);
    op.at = at;
    op.size = size;
    Enqueue(std::move(op), false);
  }

  // writeCopy(id, data, header, at, size): as write, from a copy of the caller's bytes (a chunk not in a slot).
  void WriteCopyJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    ByteSpan data = RequireBytes(info, 1, "data");
    ByteSpan header = RequireBytes(info, 2, "header");
    if (header.length != s_->header_bytes) {
      throw Napi::RangeError::New(info.Env(), ArgName(2, "header") + " must be " + std::to_string(s_->header_bytes) + " bytes");
    }
    size_t at = RequireSize(info, 3, "at", double(s_->header_bytes), kMaxFileBytes);
    size_t size = RequireSize(info, 4, "size", 0, kMaxFileBytes);
    std::lock_guard<std::mutex> g(s_->mu);
    FileState& f = RequireFile(info, 0);
    if (f.closing) throw Napi::RangeError::New(info.Env(), "the file is closing");
    Op op(Op::kCopy);
    op.id = uint32_t(info[0].As<Napi::Number>().Uint32Value());
    op.len = uint32_t(data.length);
    op.at = at;
    op.size = size;
    op.data.assign(data.data, data.data + data.length);
    op.header.assign(header.data, header.data + header.length);
    Enqueue(std::move(op), false);
  }

  void CloseJs(const Napi::CallbackInfo& info) {
    RequireRunning(info.Env());
    std::lock_guard<std::mutex> g(s_->mu);
    FileState& f = RequireFile(info, 0);
    if (f.closing) return;
    f.closing = true;
    Op op(Op::kClose);
    op.id = uint32_t(info[0].As<Napi::Number>().Uint32Value());
    Enqueue(std::move(op), true);
    s_->cv.notify_one();
  }

  Napi::Value WrittenJs(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s_->mu);
    return Napi::Number::New(info.Env(), double(RequireFile(info, 0).written));
  }

  Napi::Value ErrorJs(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s_->mu);
    FileState& f = RequireFile(info, 0);
    if (f.error.empty()) return info.Env().Undefined();
    return Napi::String::New(info.Env(), f.error);
  }

  Napi::Value ClosedJs(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s_->mu);
    return Napi::Boolean::New(info.Env(), RequireFile(info, 0).closed);
  }

  // Drops a closed file's state (its id is unknown from then on).
  void ForgetJs(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s_->mu);
    FileState& f = RequireFile(info, 0);
    if (!f.closed) throw Napi::RangeError::New(info.Env(), "the file is not closed");
    s_->files.erase(uint32_t(info[0].As<Napi::Number>().Uint32Value()));
  }

  // hold(true): the thread takes nothing from the queue until hold(false) (tests: a disk that fell behind).
  void HoldJs(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), ArgName(0, "on") + " must be a boolean");
    {
      std::lock_guard<std::mutex> g(s_->mu);
      s_->hold = info[0].As<Napi::Boolean>().Value();
      s_->urgent = true;
    }
    s_->cv.notify_one();
  }

  // Stops the thread (idempotent): queued writes are dropped, files still open are closed and failed.
  void StopJs(const Napi::CallbackInfo&) { Stop(); }
};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) { exports.Set("RecordingWriter", RecordingWriterWrap::Define(env)); }

}  // namespace aybiza::recording
