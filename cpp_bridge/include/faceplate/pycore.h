// The embedded Python core, shared by faceplate-worker (out of process) and libfaceplate_inproc
// (the in-process placement): reading the paths file, starting an isolated interpreter, importing
// faceplate.ofx.render, and one render call over NumPy views of caller-owned float32 frames.
//
// GIL: start() returns with the GIL released; call() must be entered WITHOUT the GIL and takes it
// for exactly the duration of the Python call.
#pragma once

#include <pybind11/embed.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace faceplate::pycore {

// faceplate-worker.paths (written by CMake beside the worker): `home=<python prefix>`,
// `site=<site-packages>` (repeatable), `path=<dir put first on sys.path>` (repeatable),
// `libpython=<absolute path of the shared libpython>`.
struct Paths {
  std::string home;
  std::vector<std::string> site;
  std::vector<std::string> path;
  std::string libpython;
};
bool read_paths(const std::string& file, Paths& p, std::string& err);

// Environment overrides of the paths file beside the worker (which holds the absolute paths of
// the checkout the bundle was built in):
//   FACEPLATE_OFX_PATHS=<file>  read this paths file instead;
//   FACEPLATE_ROOT=<checkout>   derive the paths from a Faceplate checkout with its .venv
//                               (home from .venv/pyvenv.cfg, site = .venv/lib/python3.X/
//                               site-packages, path = python_core).
constexpr const char* kPathsEnv = "FACEPLATE_OFX_PATHS";
constexpr const char* kRootEnv = "FACEPLATE_ROOT";
// The paths the worker in `exe_dir` uses (the overrides above, else exe_dir's paths file).
bool resolve_paths(const std::string& exe_dir, Paths& p, std::string& err);

// Gives the frames of one request: called with the GIL held once the request's size is known;
// sets src (read, H×W×4 float32 top-down RGBA) and dst (written; may not alias src) or returns
// false with err.
using BufferFn = std::function<bool(int width, int height, const float*& src, float*& dst,
                                    std::string& err)>;

class Core {
 public:
  Core();
  ~Core();  // releases the Python objects (the interpreter itself is left to its owner)
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Starts the interpreter when none runs (isolated config, no signal handlers) and imports the
  // core. Returns false with err when the interpreter cannot start; an import failure is kept in
  // import_error() and reported by every call(). Returns with the GIL released.
  bool start(const Paths& paths, const char* argv0, std::string& err);
  bool ready() const { return ready_; }
  const std::string& import_error() const { return import_error_; }
  const std::string& version() const { return version_; }

  // Runs one request — the JSON the WorkerClient sends: {"effect", "width", "height", "time",
  // "action", "params"} — through faceplate.ofx.render.render_into on the frames `buffers`
  // gives (src wrapped read-only without a copy, dst written in place). reply_json gets
  // {"status", "faces", "python_ms"}. Enter without the GIL.
  bool call(const std::string& request_json, const BufferFn& buffers, std::string& reply_json,
            std::string& err);

 private:
  struct State;
  std::unique_ptr<State> st_;
  bool ready_ = false;
  bool owns_interpreter_ = false;
  bool attached_ = false;  // started inside an interpreter someone else initialised
  std::string import_error_, version_;
};

}  // namespace faceplate::pycore
