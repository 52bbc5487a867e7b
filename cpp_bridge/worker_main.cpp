// faceplate-worker: serves render requests from the OpenFX plugin over the Faceplate IPC
// (include/faceplate/ipc.h), running the Python core in an embedded, isolated interpreter.
//
//   faceplate-worker --socket PATH [--paths FILE] [--enable-test-requests]
//
// FILE (default: faceplate-worker.paths beside the executable, written by CMake) holds lines
// `home=<python prefix>`, `site=<site-packages dir>` and `path=<dir on sys.path>`: the venv and
// python_core go on sys.path explicitly, never through PYTHONPATH (the interpreter is isolated).
//
// GIL: taken once per request, inside one scope; socket I/O and waiting happen without it.
#include <pybind11/embed.h>
#include <pybind11/numpy.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faceplate/ipc.h"

namespace py = pybind11;
using namespace faceplate::ipc;

namespace {

struct Paths {
  std::string home;
  std::vector<std::string> site;
  std::vector<std::string> path;
};

std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string s(buf, static_cast<std::size_t>(n));
  return s.substr(0, s.rfind('/'));
}

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
  }
  if (p.home.empty()) {
    err = "paths file " + file + " has no home= line";
    return false;
  }
  return true;
}

// Python objects the worker keeps; created and destroyed with the GIL held.
struct PyState {
  py::object json_loads, json_dumps, render_into, perf_counter;
  std::string import_error;
  std::string version;
};

std::string describe_python_error(py::error_already_set& e) {
  std::string type = e.type() ? py::str(e.type().attr("__name__")).cast<std::string>() : "Error";
  return type + ": " + py::str(e.value()).cast<std::string>();
}

// The reply frame: one memfd reused while the frame size stays the same.
struct OutBuffer {
  UniqueFd fd;
  Mapping map;
  std::uint64_t bytes = 0;
};

struct Reply {
  MsgType type = MsgType::kError;
  std::string payload;
  int fd = -1;
};

Reply error_reply(const std::string& what) {
  return Reply{MsgType::kError, "{\"error\": " + json_quote(what) + "}", -1};
}

Reply handle_render(PyState& st, const Message& msg, OutBuffer& out) {
  if (msg.fd < 0) return error_reply("render request without a frame descriptor");
  py::gil_scoped_acquire gil;  // the one GIL scope of this request
  if (!st.render_into) return error_reply("Python core unavailable: " + st.import_error);
  try {
    py::dict req = st.json_loads(py::bytes(msg.payload));
    long long w = req["width"].cast<long long>(), h = req["height"].cast<long long>();
    std::string effect = req["effect"].cast<std::string>();
    py::object params = req.contains("params") ? py::object(req["params"]) : py::dict();
    double time = req.contains("time") ? req["time"].cast<double>() : 0.0;
    std::string action = req.contains("action") ? req["action"].cast<std::string>() : "render";
    if (w < 1 || h < 1 || w > 65536 || h > 65536)
      return error_reply("frame size " + std::to_string(w) + "x" + std::to_string(h) +
                         " is out of range");
    std::uint64_t bytes = static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h) * 16u;
    if (bytes > kMaxFrameBytes) return error_reply("frame too large");
    std::string err;
    Mapping in = map_frame(msg.fd, bytes, false, err);
    if (!in.data()) return error_reply(err);
    if (out.bytes != bytes) {
      out.map = Mapping();
      out.fd = make_frame_memfd(bytes, err);
      if (!out.fd) return error_reply(err);
      out.map = map_frame(out.fd.get(), bytes, true, err);
      if (!out.map.data()) {
        out.fd.reset();
        return error_reply(err);
      }
      out.bytes = bytes;
    }
    std::vector<py::ssize_t> shape{h, w, 4};
    std::vector<py::ssize_t> strides{w * 16, 16, 4};
    // Zero-copy views: a base object is required or pybind11 copies the data. The input's
    // capsule owns its mapping (unmapped when NumPy drops the last view); the output buffer
    // lives in `out`, so its capsule owns nothing.
    auto* owned = new Mapping(std::move(in));
    float* src = static_cast<float*>(owned->data());
    py::capsule in_base(owned, [](void* p) { delete static_cast<Mapping*>(p); });
    py::array_t<float> src_arr(shape, strides, src, in_base);
    src_arr.attr("setflags")(py::arg("write") = false);
    py::capsule out_base(out.map.data(), [](void*) {});
    py::array_t<float> dst_arr(shape, strides, static_cast<float*>(out.map.data()), out_base);
    double t0 = st.perf_counter().cast<double>();
    py::tuple res = st.render_into(effect, src_arr, params, dst_arr, time, action);
    double t1 = st.perf_counter().cast<double>();
    py::dict rep;
    rep["status"] = res[0];
    rep["faces"] = res[1];
    rep["python_ms"] = (t1 - t0) * 1000.0;
    std::string payload = st.json_dumps(rep).cast<std::string>();
    return Reply{MsgType::kRenderOk, payload, out.fd.get()};
  } catch (py::error_already_set& e) {
    return error_reply(describe_python_error(e));
  } catch (const std::exception& e) {
    return error_reply(std::string("bad render request: ") + e.what());
  }
}

std::string pong_payload(const PyState& st) {
  return "{\"pid\": " + std::to_string(::getpid()) + ", \"python\": " + json_quote(st.version) +
         ", \"ready\": " + (st.render_into ? "true" : "false") +
         ", \"error\": " + json_quote(st.import_error) + "}";
}

// Serves one connection until it closes or sends something malformed. Returns false on
// a shutdown request.
bool serve(int conn, PyState& st, OutBuffer& out, bool test_requests) {
  for (;;) {
    Message msg;
    std::string err;
    RecvStatus rs = recv_message(conn, msg, 3600 * 1000, err);
    UniqueFd in_fd(msg.fd);
    msg.fd = in_fd.get();
    if (rs != RecvStatus::kOk) {
      if (rs == RecvStatus::kBadHeader || rs == RecvStatus::kTooLarge)
        send_message(conn, MsgType::kError, msg.header.request_id,
                     "{\"error\": " + json_quote(std::string("rejected: ") + err) + "}", -1,
                     1000, err);
      return true;  // drop the connection; the stream is out of step
    }
    Reply reply;
    switch (msg.type()) {
      case MsgType::kPing: {
        py::gil_scoped_acquire gil;
        reply = Reply{MsgType::kPong, pong_payload(st), -1};
        break;
      }
      case MsgType::kRender:
        reply = handle_render(st, msg, out);
        break;
      case MsgType::kSleep: {
        if (!test_requests) {
          reply = error_reply("test requests are disabled");
          break;
        }
        long long ms = 0;
        json_get_int(msg.payload, "ms", ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        reply = Reply{MsgType::kPong, "{}", -1};
        break;
      }
      case MsgType::kShutdown:
        send_message(conn, MsgType::kPong, msg.header.request_id, "{}", -1, 1000, err);
        return false;
      default:
        reply = error_reply("unexpected message type " + std::to_string(msg.header.type));
    }
    if (!send_message(conn, reply.type, msg.header.request_id, reply.payload, reply.fd, 10000,
                      err))
      return true;
  }
}

int run(const std::string& socket_path, const Paths& paths, bool test_requests) {
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.install_signal_handlers = 0;
  config.site_import = 0;  // our site dirs are added explicitly below
  std::wstring home(paths.home.begin(), paths.home.end());
  PyStatus status = PyConfig_SetString(&config, &config.home, home.c_str());
  if (PyStatus_Exception(status)) {
    std::fprintf(stderr, "faceplate-worker: bad Python home %s\n", paths.home.c_str());
    return 2;
  }
  const char* py_argv[] = {"faceplate-worker"};
  py::scoped_interpreter guard(&config, 1, py_argv, false);
  auto st = std::make_unique<PyState>();
  {
    py::module_ sys = py::module_::import("sys");
    std::string version = py::str(sys.attr("version")).cast<std::string>();
    st->version = version.substr(0, version.find(' '));
    py::module_ site = py::module_::import("site");
    for (const auto& s : paths.site) site.attr("addsitedir")(s);
    py::list sys_path = sys.attr("path");
    for (auto it = paths.path.rbegin(); it != paths.path.rend(); ++it) sys_path.insert(0, *it);
    py::module_ json = py::module_::import("json");
    st->json_loads = json.attr("loads");
    st->json_dumps = json.attr("dumps");
    st->perf_counter = py::module_::import("time").attr("perf_counter");
    try {
      st->render_into = py::module_::import("faceplate.ofx.render").attr("render_into");
    } catch (py::error_already_set& e) {
      st->import_error = describe_python_error(e);
      std::fprintf(stderr, "faceplate-worker: %s\n", st->import_error.c_str());
    }
  }
  std::string err;
  UniqueFd listener = listen_unix(socket_path, err);
  if (!listener) {
    std::fprintf(stderr, "faceplate-worker: %s\n", err.c_str());
    py::gil_scoped_acquire gil;
    st.reset();
    return 2;
  }
  {
    py::gil_scoped_release nogil;  // held again only inside each request's scope
    OutBuffer out;
    bool running = true;
    while (running) {
      UniqueFd conn = accept_unix(listener.get(), -1, err);
      if (!conn) continue;
      int pid = 0;
      if (!peer_is_same_user(conn.get(), &pid, err)) {
        std::fprintf(stderr, "faceplate-worker: refused a connection: %s\n", err.c_str());
        continue;
      }
      running = serve(conn.get(), *st, out, test_requests);
    }
  }
  st.reset();  // py::object destructors with the GIL held
  ::unlink(socket_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path, paths_file = exe_dir() + "/faceplate-worker.paths";
  bool test_requests = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) socket_path = argv[++i];
    else if (a == "--paths" && i + 1 < argc) paths_file = argv[++i];
    else if (a == "--enable-test-requests") test_requests = true;
    else {
      std::fprintf(stderr, "usage: faceplate-worker --socket PATH [--paths FILE] "
                           "[--enable-test-requests]\n");
      return 2;
    }
  }
  if (socket_path.empty()) {
    std::fprintf(stderr, "faceplate-worker: --socket PATH is required\n");
    return 2;
  }
  Paths paths;
  std::string err;
  if (!read_paths(paths_file, paths, err)) {
    std::fprintf(stderr, "faceplate-worker: %s\n", err.c_str());
    return 2;
  }
  return run(socket_path, paths, test_requests);
}
