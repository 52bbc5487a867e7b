// faceplate-worker: serves render requests from the OpenFX plugin over the Faceplate IPC
// (include/faceplate/ipc.h), running the Python core in an embedded, isolated interpreter.
//
//   faceplate-worker --socket PATH [--lifeline FD] [--paths FILE] [--enable-test-requests]
//
// --lifeline FD: the read end of a pipe whose write end only the host process holds; when it
// reads end-of-file (the host process is gone, whichever of its threads started us) the worker
// exits. Before anything else the worker closes every descriptor it inherited except 0, 1, 2
// and FD, so none of the host's files or sockets lives on in it.
//
// FILE (default: $FACEPLATE_OFX_PATHS, else paths derived from the checkout $FACEPLATE_ROOT,
// else faceplate-worker.paths beside the executable, written by CMake) holds lines
// `home=<python prefix>`, `site=<site-packages dir>` and `path=<dir on sys.path>`: the venv and
// python_core go on sys.path explicitly, never through PYTHONPATH (the interpreter is isolated).
//
// `libpython=<path>` names the shared libpython (the in-process placement loads it).
//
// GIL: taken once per request, inside one scope (pycore.h); socket I/O and waiting happen
// without it.
#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faceplate/ipc.h"
#include "faceplate/pycore.h"

using namespace faceplate::ipc;
using faceplate::pycore::Core;
using faceplate::pycore::Paths;

namespace {

std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string s(buf, static_cast<std::size_t>(n));
  return s.substr(0, s.rfind('/'));
}

// The reply frame: one memfd reused while the frame size stays the same. The client also
// reuses its input memfd: its mapping is kept while the inode and size stay the same (no
// fresh mmap and page faults per frame).
struct OutBuffer {
  UniqueFd fd;
  Mapping map;
  std::uint64_t bytes = 0;
  Mapping in_map;
  unsigned long in_ino = 0;
};

struct Reply {
  MsgType type = MsgType::kError;
  std::string payload;
  int fd = -1;
};

// Closes every descriptor above 2 except `keep` (-1: none).
void close_inherited(int keep) {
  std::vector<int> fds;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long fd = std::strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0' && fd > 2 && fd != keep && fd != own)
        fds.push_back(static_cast<int>(fd));
    }
    ::closedir(d);
  } else {
    const long max = ::sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 4096); ++fd)
      if (fd != keep) fds.push_back(static_cast<int>(fd));
  }
  for (int fd : fds) ::close(fd);
}

// Exits the process when the lifeline reads end-of-file (the host process has gone).
void watch_lifeline(int fd, std::string socket_path) {
  std::thread([fd, socket_path] {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      char b;
      if (r > 0 && (p.revents & POLLIN) && ::read(fd, &b, 1) > 0) continue;  // not EOF
      ::unlink(socket_path.c_str());
      ::_exit(0);
    }
  }).detach();
}

Reply error_reply(const std::string& what) {
  return Reply{MsgType::kError, "{\"error\": " + json_quote(what) + "}", -1};
}

Reply handle_render(Core& core, const Message& msg, OutBuffer& out) {
  if (msg.fd < 0) return error_reply("render request without a frame descriptor");
  auto buffers = [&](int w, int h, const float*& src, float*& dst, std::string& err) {
    std::uint64_t bytes = static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h) * 16u;
    if (bytes > kMaxFrameBytes) {
      err = "frame too large";
      return false;
    }
    struct stat st{};
    if (::fstat(msg.fd, &st) != 0) {
      err = std::string("fstat request frame: ") + std::strerror(errno);
      return false;
    }
    if (!out.in_map.data() || out.in_ino != st.st_ino || out.in_map.size() != bytes) {
      out.in_map = Mapping();  // map_frame checks the size and the seals of the new one
      out.in_map = map_frame(msg.fd, bytes, false, err);
      out.in_ino = out.in_map.data() ? st.st_ino : 0;
      if (!out.in_map.data()) return false;
    }
    const Mapping& in = out.in_map;
    if (out.bytes != bytes) {
      out.map = Mapping();
      out.fd = make_frame_memfd(bytes, err);
      if (!out.fd) return false;
      out.map = map_frame(out.fd.get(), bytes, true, err);
      if (!out.map.data()) {
        out.fd.reset();
        out.bytes = 0;
        return false;
      }
      out.bytes = bytes;
    }
    src = static_cast<const float*>(in.data());
    dst = static_cast<float*>(out.map.data());
    return true;
  };
  std::string reply, err;
  if (!core.call(msg.payload, buffers, reply, err)) return error_reply(err);
  return Reply{MsgType::kRenderOk, reply, out.fd.get()};
}

std::string pong_payload(const Core& core) {
  return "{\"pid\": " + std::to_string(::getpid()) + ", \"python\": " +
         json_quote(core.version()) + ", \"ready\": " + (core.ready() ? "true" : "false") +
         ", \"error\": " + json_quote(core.import_error()) + "}";
}

// Serves one connection until it closes or sends something malformed. Returns false on
// a shutdown request.
bool serve(int conn, Core& core, OutBuffer& out, bool test_requests) {
  for (;;) {
    Message msg;
    std::string err;
    RecvStatus rs = recv_message(conn, msg, -1, err);  // idle for as long as the host likes
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
      case MsgType::kPing:
        reply = Reply{MsgType::kPong, pong_payload(core), -1};
        break;
      case MsgType::kRender:
        reply = handle_render(core, msg, out);
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
      case MsgType::kDrop:
        if (!test_requests) {
          reply = error_reply("test requests are disabled");
          break;
        }
        send_message(conn, MsgType::kPong, msg.header.request_id, "{}", -1, 1000, err);
        return true;  // this connection ends; the worker waits for the next one
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
  Core core;
  std::string err;
  if (!core.start(paths, "faceplate-worker", err)) {  // returns with the GIL released
    std::fprintf(stderr, "faceplate-worker: %s\n", err.c_str());
    return 2;
  }
  if (!core.ready()) std::fprintf(stderr, "faceplate-worker: %s\n", core.import_error().c_str());
  std::fprintf(stderr, "faceplate-worker: pid %d ready (Python %s)\n", static_cast<int>(::getpid()),
               core.version().c_str());
  std::fflush(stderr);
  UniqueFd listener = listen_unix(socket_path, err);
  if (!listener) {
    std::fprintf(stderr, "faceplate-worker: %s\n", err.c_str());
    return 2;
  }
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
    running = serve(conn.get(), core, out, test_requests);
  }
  ::unlink(socket_path.c_str());
  // The interpreter is not finalised: the process ends here (finalising could wait on threads
  // that libraries such as torch started).
  std::fflush(nullptr);
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path, paths_file;
  bool test_requests = false;
  int lifeline = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) socket_path = argv[++i];
    else if (a == "--paths" && i + 1 < argc) paths_file = argv[++i];
    else if (a == "--lifeline" && i + 1 < argc) lifeline = std::atoi(argv[++i]);
    else if (a == "--enable-test-requests") test_requests = true;
    else {
      std::fprintf(stderr, "usage: faceplate-worker --socket PATH [--lifeline FD] [--paths FILE] "
                           "[--enable-test-requests]\n");
      return 2;
    }
  }
  close_inherited(lifeline);
  if (socket_path.empty()) {
    std::fprintf(stderr, "faceplate-worker: --socket PATH is required\n");
    return 2;
  }
  if (lifeline >= 0) watch_lifeline(lifeline, socket_path);
  Paths paths;
  std::string err;
  if (!(paths_file.empty() ? faceplate::pycore::resolve_paths(exe_dir(), paths, err)
                           : faceplate::pycore::read_paths(paths_file, paths, err))) {
    std::fprintf(stderr, "faceplate-worker: %s\n", err.c_str());
    return 2;
  }
  return run(socket_path, paths, test_requests);
}
