// Lets a worker thread that is ended from outside (Worker.terminate(), a
// resource limit) end without taking the process with it. Such a thread runs
// no more JavaScript, so uWebSockets.js's sockets (libuv poll handles) are
// still open when Node closes the thread's loop, and Node aborts the whole
// process ("uv_loop_close() while having open handles"). An environment
// cleanup hook closes the poll handles left on the loop and their sockets
// (uv_close leaves a poll's fd open: the kernel would keep handing the
// listening socket connections nobody accepts). Node's own handles (TCP, UDP,
// timers) are not polls and are closed by Node itself. Their uWS structures
// are leaked with the dead thread: nothing will use them again.
#include <node_api.h>
#include <uv.h>
#include <unistd.h>

namespace {

void ClosePoll(uv_handle_t* handle, void*) {
  if (handle->type != UV_POLL || uv_is_closing(handle)) return;
  uv_os_fd_t fd;
  const bool hasFd = uv_fileno(handle, &fd) == 0;
  uv_close(handle, nullptr);
  if (hasFd) close(fd);
}

void Cleanup(void* loop) { uv_walk(static_cast<uv_loop_t*>(loop), ClosePoll, nullptr); }

napi_value Arm(napi_env env, napi_callback_info) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    napi_throw_error(env, "ERR_AYBIZA_THREAD_EXIT", "no event loop");
    return nullptr;
  }
  if (napi_add_env_cleanup_hook(env, Cleanup, loop) != napi_ok) napi_throw_error(env, "ERR_AYBIZA_THREAD_EXIT", "cleanup hook not added");
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "closeSocketsAtThreadExit", NAPI_AUTO_LENGTH, Arm, nullptr, &fn);
  napi_set_named_property(env, exports, "closeSocketsAtThreadExit", fn);
  return exports;
}
