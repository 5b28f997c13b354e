// Steers new TCP connections between the media workers' listening sockets
// (WORKERS > 1). Every worker's uWebSockets.js app listens on the same port
// with SO_REUSEPORT, and the kernel picks one socket of that group per new
// connection by a hash of its addresses: fair on average, but a run of 200
// calls lands outside ±10 % about one time in six. A classic BPF program
// attached to the group (SO_ATTACH_REUSEPORT_CBPF, no privilege needed)
// draws a random number per connection and picks a socket with the
// probabilities the main thread gives it (weighted towards the less loaded
// workers); it is replaced whenever the workers' loads change. A number past
// the group's end makes the kernel fall back to its hash.
//
// The sockets are the process's own: they are found in /proc/self/fd by
// what they are (a listening TCP socket with SO_REUSEPORT on the port), and
// every fd is checked again before a program is attached to it.
#include <node_api.h>
#include <dirent.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

namespace {

/** Sockets a program can choose between (the program is 2 instructions per socket). */
constexpr uint32_t kMaxSockets = 256;

bool IntOption(int fd, int level, int name, int* out) {
  socklen_t len = sizeof(*out);
  return getsockopt(fd, level, name, out, &len) == 0 && len == sizeof(*out);
}

/** fd is a listening TCP socket with SO_REUSEPORT, bound to `port` (IPv4 or IPv6). */
bool IsListenerOn(int fd, int port) {
  int v = 0;
  if (!IntOption(fd, SOL_SOCKET, SO_TYPE, &v) || v != SOCK_STREAM) return false;
  if (!IntOption(fd, SOL_SOCKET, SO_ACCEPTCONN, &v) || v != 1) return false;
  if (!IntOption(fd, SOL_SOCKET, SO_REUSEPORT, &v) || v != 1) return false;
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port) == port;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port) == port;
  return false;
}

bool Throw(napi_env env, const char* code, const char* msg, bool range = false) {
  if (range) napi_throw_range_error(env, code, msg);
  else napi_throw_type_error(env, code, msg);
  return false;
}

/** args[i] as an integer in [lo, hi]; throws (TypeError / RangeError) and returns false otherwise. */
bool IntArg(napi_env env, napi_value* args, size_t argc, size_t i, int64_t lo, int64_t hi, const char* what, int* out) {
  napi_valuetype t = napi_undefined;
  if (i >= argc || napi_typeof(env, args[i], &t) != napi_ok || t != napi_number) return Throw(env, "ERR_INVALID_ARG_TYPE", what);
  double d = 0;
  napi_get_value_double(env, args[i], &d);
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    return Throw(env, "ERR_OUT_OF_RANGE", what, true);
  *out = static_cast<int>(d);
  return true;
}

napi_value Bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

/** Reads up to `n` arguments; the first two must be an fd and a port. false (thrown) otherwise. */
bool FdAndPort(napi_env env, napi_callback_info info, napi_value* args, size_t n, size_t* argc, int* fd, int* port) {
  *argc = n;
  napi_get_cb_info(env, info, argc, args, nullptr, nullptr);
  return IntArg(env, args, *argc, 0, 0, INT_MAX, "fd must be a non-negative integer", fd) &&
         IntArg(env, args, *argc, 1, 1, 65535, "port must be an integer 1-65535", port);
}

/** listenSockets(port): the fds of this process's listening TCP sockets with SO_REUSEPORT on port, ascending. */
napi_value ListenSockets(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  int port = 0;
  if (!IntArg(env, args, argc, 0, 1, 65535, "port must be an integer 1-65535", &port)) return nullptr;
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    const int own = dirfd(dir);
    while (dirent* e = readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd < 0 || fd > INT_MAX || fd == own) continue;
      if (IsListenerOn(static_cast<int>(fd), port)) fds.push_back(static_cast<int>(fd));
    }
    closedir(dir);
  }
  std::sort(fds.begin(), fds.end());
  napi_value out;
  napi_create_array_with_length(env, fds.size(), &out);
  for (size_t i = 0; i < fds.size(); i++) {
    napi_value v;
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, out, static_cast<uint32_t>(i), v);
  }
  return out;
}

/**
 * steer(fd, port, weights): each new connection to the group of fd goes to
 * its socket number i with probability weights[i] / sum (a random draw in
 * the kernel per connection). false if fd is not such a socket or the kernel
 * refused the program.
 */
napi_value Steer(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value args[3];
  int fd = 0, port = 0;
  if (!FdAndPort(env, info, args, 3, &argc, &fd, &port)) return nullptr;
  bool isArray = false;
  if (argc < 3 || napi_is_array(env, args[2], &isArray) != napi_ok || !isArray) {
    Throw(env, "ERR_INVALID_ARG_TYPE", "weights must be an array of numbers");
    return nullptr;
  }
  uint32_t n = 0;
  napi_get_array_length(env, args[2], &n);
  if (n < 1 || n > kMaxSockets) {
    Throw(env, "ERR_OUT_OF_RANGE", "weights must hold 1-256 entries", true);
    return nullptr;
  }
  std::vector<double> w(n);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_valuetype t = napi_undefined;
    if (napi_get_element(env, args[2], i, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
      Throw(env, "ERR_INVALID_ARG_TYPE", "weights must be an array of numbers");
      return nullptr;
    }
    napi_get_value_double(env, v, &w[i]);
    if (!(w[i] >= 0 && w[i] <= 1e9)) {
      Throw(env, "ERR_OUT_OF_RANGE", "each weight must be a number 0-1e9", true);
      return nullptr;
    }
    sum += w[i];
  }
  if (!(sum > 0)) {
    Throw(env, "ERR_OUT_OF_RANGE", "at least one weight must be above 0", true);
    return nullptr;
  }
  if (!IsListenerOn(fd, port)) return Bool(env, false);
  // A = a random 32-bit number; then for each socket but the last, "A below
  // its cumulative bound: return its number"; the last takes the rest.
  std::vector<sock_filter> code;
  code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(SKF_AD_OFF + SKF_AD_RANDOM)));
  double cumulative = 0;
  for (uint32_t i = 0; i + 1 < n; i++) {
    cumulative += w[i] / sum;
    const double bound = std::min(4294967295.0, std::floor(cumulative * 4294967296.0));
    code.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, static_cast<__u32>(bound), 1, 0));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, i));
  }
  code.push_back(BPF_STMT(BPF_RET | BPF_K, n - 1));
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  return Bool(env, setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) == 0);
}

/** unsteer(fd, port): back to the kernel's hash. false if fd is not such a socket or had no program. */
napi_value Unsteer(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value args[2];
  int fd = 0, port = 0;
  if (!FdAndPort(env, info, args, 2, &argc, &fd, &port)) return nullptr;
  if (!IsListenerOn(fd, port)) return Bool(env, false);
  int unused = 0;
  return Bool(env, setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof(unused)) == 0);
}

/**
 * backlog(fd, port): connections waiting in fd's accept queue (the kernel
 * has steered them to this socket; its thread has not accepted them yet),
 * or -1 if fd is not a listening socket of the group on port. For a
 * listening socket TCP_INFO reports the accept queue's length in
 * tcpi_unacked (Linux).
 */
napi_value Backlog(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value args[2];
  int fd = 0, port = 0;
  if (!FdAndPort(env, info, args, 2, &argc, &fd, &port)) return nullptr;
  int queued = -1;
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (IsListenerOn(fd, port) && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && len >= sizeof(ti.tcpi_unacked) + offsetof(tcp_info, tcpi_unacked))
    queued = static_cast<int>(std::min<uint32_t>(ti.tcpi_unacked, INT_MAX));
  napi_value v;
  napi_create_int32(env, queued, &v);
  return v;
}

}  // namespace

NAPI_MODULE_INIT() {
  const struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"listenSockets", ListenSockets}, {"steer", Steer}, {"unsteer", Unsteer}, {"backlog", Backlog}};
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}
