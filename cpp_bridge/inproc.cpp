// libfaceplate_inproc.so: the in-process placement of the Python core. The OFX shell dlopens it
// (after libpython, RTLD_GLOBAL) only when asked to (FACEPLATE_OFX_PLACEMENT=inprocess) and only
// when the host has no Python of its own; otherwise frames go to faceplate-worker. Same core, same
// request JSON as the worker (pycore.h), frames passed as the caller's own buffers (no copies).
// The interpreter is started on the first call and never finalised (the library is never
// unloaded); calls are serialised here and take the GIL only inside Core::call.
#include <cstring>
#include <mutex>
#include <string>

#include "faceplate/pycore.h"

namespace {
std::mutex gMu;
faceplate::pycore::Core* gCore = nullptr;  // never destroyed: Python outlives every caller

void copy_out(const std::string& s, char* buf, int len) {
  if (!buf || len <= 0) return;
  std::size_t n = std::min(s.size(), static_cast<std::size_t>(len - 1));
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}
}  // namespace

extern "C" {

// Starts Python and imports the core (idempotent). Returns 1, or 0 with err filled.
__attribute__((visibility("default"))) int faceplate_inproc_start(const char* paths_file,
                                                                  char* err, int errlen) {
  std::lock_guard<std::mutex> lock(gMu);
  if (gCore) return gCore->ready() ? 1 : (copy_out(gCore->import_error(), err, errlen), 0);
  faceplate::pycore::Paths paths;
  std::string e;
  if (!faceplate::pycore::read_paths(paths_file ? paths_file : "", paths, e)) {
    copy_out(e, err, errlen);
    return 0;
  }
  auto* core = new faceplate::pycore::Core();
  if (!core->start(paths, "Faceplate.ofx", e)) {
    delete core;
    copy_out(e, err, errlen);
    return 0;
  }
  gCore = core;
  if (!core->ready()) {
    copy_out("Python core unavailable: " + core->import_error(), err, errlen);
    return 0;
  }
  return 1;
}

// One request (the WorkerClient's JSON) on width×height×4 float32 frames. Returns 1 with the
// reply JSON, or 0 with err filled.
__attribute__((visibility("default"))) int faceplate_inproc_render(
    const char* request_json, const float* src, float* dst, int width, int height, char* reply,
    int replylen, char* err, int errlen) {
  std::lock_guard<std::mutex> lock(gMu);
  if (!gCore) {
    copy_out("in-process core not started", err, errlen);
    return 0;
  }
  auto buffers = [&](int w, int h, const float*& s, float*& d, std::string& e) {
    if (w != width || h != height) {
      e = "request size differs from the frame given";
      return false;
    }
    s = src;
    d = dst;
    return true;
  };
  std::string r, e;
  if (!gCore->call(request_json ? request_json : "", buffers, r, e)) {
    copy_out(e, err, errlen);
    return 0;
  }
  copy_out(r, reply, replylen);
  return 1;
}

}  // extern "C"
