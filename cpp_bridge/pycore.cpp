#include "faceplate/pycore.h"

#include <pybind11/numpy.h>

#include <cstdlib>
#include <fstream>

namespace py = pybind11;

namespace faceplate::pycore {

bool read_paths(const std::string& file, Paths& p, std::string& err) {
  std::ifstream in(file);
  if (!in) {
    err = "cannot read the paths file " + file;
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "home") p.home = v;
    else if (k == "site") p.site.push_back(v);
    else if (k == "path") p.path.push_back(v);
    else if (k == "libpython") p.libpython = v;
  }
  if (p.home.empty()) {
    err = "paths file " + file + " has no home= line";
    return false;
  }
  return true;
}

bool resolve_paths(const std::string& exe_dir, Paths& p, std::string& err) {
  if (const char* file = std::getenv(kPathsEnv); file && *file) return read_paths(file, p, err);
  const char* root = std::getenv(kRootEnv);
  if (!root || !*root) return read_paths(exe_dir + "/faceplate-worker.paths", p, err);
  const std::string venv = std::string(root) + "/.venv";
  std::ifstream cfg(venv + "/pyvenv.cfg");
  if (!cfg) {
    err = std::string(kRootEnv) + "=" + root + ": no .venv/pyvenv.cfg there (run `make setup`)";
    return false;
  }
  std::string line, home, version;
  auto value = [](const std::string& l) {
    std::string v = l.substr(l.find('=') + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r") + 1);
    return v;
  };
  while (std::getline(cfg, line)) {
    if (line.rfind("home", 0) == 0 && line.find('=') != std::string::npos) home = value(line);
    if (line.rfind("version", 0) == 0 && line.find('=') != std::string::npos)
      version = value(line);
  }
  const size_t dot2 = version.find('.', version.find('.') + 1);
  if (home.empty() || version.empty()) {
    err = venv + "/pyvenv.cfg names no home or version";
    return false;
  }
  p.home = home.substr(0, home.find_last_of('/'));  // <prefix>/bin -> <prefix>
  p.site = {venv + "/lib/python" + version.substr(0, dot2) + "/site-packages"};
  p.path = {std::string(root) + "/python_core"};
  return true;
}

namespace {
std::string describe_python_error(py::error_already_set& e) {
  std::string type = e.type() ? py::str(e.type().attr("__name__")).cast<std::string>() : "Error";
  return type + ": " + py::str(e.value()).cast<std::string>();
}
}  // namespace

// Python objects, created and destroyed with the GIL held.
struct Core::State {
  py::object json_loads, json_dumps, render_into, perf_counter;
};

Core::Core() = default;

Core::~Core() {
  if (st_ && Py_IsInitialized()) {
    py::gil_scoped_acquire gil;
    st_.reset();
  }
}

bool Core::start(const Paths& paths, const char* argv0, std::string& err) {
  PyGILState_STATE attached = PyGILState_UNLOCKED;
  if (!Py_IsInitialized()) {
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.site_import = 0;  // our site dirs are added explicitly below
    std::wstring home(paths.home.begin(), paths.home.end());
    PyStatus status = PyConfig_SetString(&config, &config.home, home.c_str());
    if (PyStatus_Exception(status)) {
      PyConfig_Clear(&config);
      err = "bad Python home " + paths.home;
      return false;
    }
    const char* py_argv[] = {argv0};
    try {
      py::initialize_interpreter(&config, 1, py_argv, false);
    } catch (const std::exception& e) {
      err = std::string("cannot start Python: ") + e.what();
      return false;
    }
    owns_interpreter_ = true;
  } else {
    attached = PyGILState_Ensure();  // someone else's interpreter: released as taken, below
    attached_ = true;
  }
  st_ = std::make_unique<State>();
  try {
    py::module_ sys = py::module_::import("sys");
    std::string version = py::str(sys.attr("version")).cast<std::string>();
    version_ = version.substr(0, version.find(' '));
    py::module_ site = py::module_::import("site");
    for (const auto& s : paths.site) site.attr("addsitedir")(s);
    py::list sys_path = sys.attr("path");
    for (auto it = paths.path.rbegin(); it != paths.path.rend(); ++it) sys_path.insert(0, *it);
    py::module_ json = py::module_::import("json");
    st_->json_loads = json.attr("loads");
    st_->json_dumps = json.attr("dumps");
    st_->perf_counter = py::module_::import("time").attr("perf_counter");
    st_->render_into = py::module_::import("faceplate.ofx.render").attr("render_into");
    ready_ = true;
  } catch (py::error_already_set& e) {
    import_error_ = describe_python_error(e);
  }
  // From here on the GIL is taken per call: an interpreter we started is released from the
  // main thread state it left us holding; an attached one goes back as PyGILState_Ensure found it.
  if (attached_) PyGILState_Release(attached);
  else PyEval_SaveThread();
  return true;
}

bool Core::call(const std::string& request_json, const BufferFn& buffers,
                std::string& reply_json, std::string& err) {
  if (!st_) {
    err = "Python core not started";
    return false;
  }
  py::gil_scoped_acquire gil;  // the one GIL scope of this call
  if (!ready_) {
    err = "Python core unavailable: " + import_error_;
    return false;
  }
  try {
    py::dict req = st_->json_loads(py::bytes(request_json));
    long long w = req["width"].cast<long long>(), h = req["height"].cast<long long>();
    std::string effect = req["effect"].cast<std::string>();
    py::object params = req.contains("params") ? py::object(req["params"]) : py::dict();
    double time = req.contains("time") ? req["time"].cast<double>() : 0.0;
    std::string action = req.contains("action") ? req["action"].cast<std::string>() : "render";
    if (w < 1 || h < 1 || w > 65536 || h > 65536) {
      err = "frame size " + std::to_string(w) + "x" + std::to_string(h) + " is out of range";
      return false;
    }
    const float* src = nullptr;
    float* dst = nullptr;
    if (!buffers(static_cast<int>(w), static_cast<int>(h), src, dst, err)) return false;
    std::vector<py::ssize_t> shape{h, w, 4};
    std::vector<py::ssize_t> strides{w * 16, 16, 4};
    // Views without copies: a base object is required or pybind11 copies the data; these
    // capsules own nothing (the caller keeps both buffers alive for the call).
    py::capsule src_base(static_cast<const void*>(src), [](void*) {});
    py::array_t<float> src_arr(shape, strides, const_cast<float*>(src), src_base);
    src_arr.attr("setflags")(py::arg("write") = false);
    py::capsule dst_base(static_cast<void*>(dst), [](void*) {});
    py::array_t<float> dst_arr(shape, strides, dst, dst_base);
    double t0 = st_->perf_counter().cast<double>();
    py::tuple res = st_->render_into(effect, src_arr, params, dst_arr, time, action);
    double t1 = st_->perf_counter().cast<double>();
    py::dict rep;
    rep["status"] = res[0];
    rep["faces"] = res[1];
    rep["python_ms"] = (t1 - t0) * 1000.0;
    reply_json = st_->json_dumps(rep).cast<std::string>();
    return true;
  } catch (py::error_already_set& e) {
    err = describe_python_error(e);
  } catch (const std::exception& e) {
    err = std::string("bad render request: ") + e.what();
  }
  return false;
}

}  // namespace faceplate::pycore
