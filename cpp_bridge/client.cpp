// WorkerClient implementation (see include/faceplate/client.h).
#include "faceplate/client.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace faceplate {

using namespace ipc;

namespace {
// The descriptor number the worker finds its end of the lifeline on (`--lifeline 3`).
constexpr int kLifelineFd = 3;
constexpr std::size_t kLogTailBytes = 1500;

// The host's environment for the worker, less what would make it load the host's own libraries
// instead of its Python's (Natron's releases ship an older libstdc++ under their install prefix):
// LD_PRELOAD, and the LD_LIBRARY_PATH entries under the host executable's own install prefix
// (the folder above its bin/; never a shared prefix such as /usr).
std::vector<std::string> worker_environment() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string prefix = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  for (int up = 0; up < 2 && !prefix.empty(); ++up) prefix = prefix.substr(0, prefix.rfind('/'));
  if (prefix == "/usr" || prefix == "/usr/local" || prefix == "/opt") prefix.clear();  // shared
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("LD_PRELOAD=", 0) == 0) continue;
    if (kv.rfind("LD_LIBRARY_PATH=", 0) == 0 && prefix.size() > 1) {
      std::stringstream ss(kv.substr(16));
      std::string dir, kept;
      while (std::getline(ss, dir, ':'))
        if (!dir.empty() && dir.rfind(prefix + "/", 0) != 0 && dir != prefix)
          kept += (kept.empty() ? "" : ":") + dir;
      if (kept.empty()) continue;
      kv = "LD_LIBRARY_PATH=" + kept;
    }
    env.push_back(kv);
  }
  return env;
}
}  // namespace

WorkerClient::WorkerClient(WorkerOptions opts) : opts_(std::move(opts)) {}

WorkerClient::~WorkerClient() {
  std::lock_guard<std::timed_mutex> lock(mu_);
  stop(true);
  if (!dir_.empty()) {
    ::unlink((dir_ + "/worker.log").c_str());
    ::rmdir(dir_.c_str());
  }
}

std::string WorkerClient::log_path() const {
  if (const char* env = std::getenv("FACEPLATE_OFX_WORKER_LOG"); env && *env) return env;
  return dir_.empty() ? std::string() : dir_ + "/worker.log";
}

std::string WorkerClient::log_tail() const {
  std::ifstream in(log_path(), std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > kLogTailBytes) s = "..." + s.substr(s.size() - kLogTailBytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

bool WorkerClient::spawn(std::string& err) {
  if (dir_.empty()) {
    if (!make_private_dir(dir_, err)) return false;
    sock_path_ = dir_ + "/worker.sock";
  }
  ::unlink(sock_path_.c_str());
  ++spawns_;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    err = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  UniqueFd life_r(pipefd[0]), life_w(pipefd[1]);
  // Move the read end above the descriptors the file actions below write (0-3), so that none
  // of them clobbers it and its dup2 to 3 really makes a new, inheritable descriptor.
  life_r = UniqueFd(::fcntl(life_r.get(), F_DUPFD_CLOEXEC, 10));
  if (!life_r) {
    err = std::string("fcntl: ") + std::strerror(errno);
    return false;
  }
  std::vector<std::string> args{opts_.worker_exe, "--socket", sock_path_, "--lifeline",
                                std::to_string(kLifelineFd)};
  args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child: stdin from /dev/null, stdout and stderr to the log, the lifeline's read end as
  // descriptor 3 (dup2 clears close-on-exec). Every other descriptor the host left open is
  // closed by the worker itself before anything else runs. No signal is blocked or ignored.
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  const std::string log = log_path();
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  const bool own_log = log.rfind(dir_ + "/", 0) == 0;
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(),
                                   O_WRONLY | O_CREAT | (own_log ? O_TRUNC : O_APPEND), 0600);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  posix_spawn_file_actions_adddup2(&fa, life_r.get(), kLifelineFd);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> env = worker_environment();
  std::vector<char*> envp;
  for (auto& kv : env) envp.push_back(kv.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    err = "cannot start " + opts_.worker_exe + " (" + std::strerror(rc) + ")";
    return false;
  }
  life_r.reset();  // only the worker holds the read end
  lifeline_ = std::move(life_w);
  pid_ = pid;
  ++starts_;
  return connect_to_worker(err);
}

// Connects to the (starting) worker, watching for an early exit (bad paths file, missing
// libpython...), and checks it answers a ping.
bool WorkerClient::connect_to_worker(std::string& err) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.start_timeout_ms);
  for (;;) {
    std::string cerr_;
    UniqueFd c = connect_unix(sock_path_, 50, cerr_);
    if (c) {
      int peer = 0;
      if (!peer_is_same_user(c.get(), &peer, err) || peer != pid_) {
        if (err.empty()) err = "socket peer is not the worker we started";
        stop(false);
        return false;
      }
      conn_ = std::move(c);
      break;
    }
    int wst = 0;
    if (::waitpid(pid_, &wst, WNOHANG) == pid_) {
      pid_ = -1;
      const std::string tail = log_tail();
      err = "faceplate-worker exited during start-up (" +
            std::string(WIFEXITED(wst) ? "status " + std::to_string(WEXITSTATUS(wst))
                                       : "signal " + std::to_string(WTERMSIG(wst))) +
            (tail.empty() ? std::string(")") : "): " + tail);
      stop(false);
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      const std::string tail = log_tail();
      err = "faceplate-worker did not open its socket within " +
            std::to_string(opts_.start_timeout_ms) + " ms" + (tail.empty() ? "" : ": " + tail);
      stop(false);
      return false;
    }
  }
  Message pong;
  if (exchange(MsgType::kPing, "{}", -1, pong, err) != Outcome::kOk) {
    stop(false);
    return false;
  }
  start_info_ = pong.payload;
  return true;
}

void WorkerClient::stop(bool graceful) {
  if (pid_ > 0 && graceful && conn_) {
    std::string e;
    if (send_message(conn_.get(), MsgType::kShutdown, next_id_++, "{}", -1, 500, e)) {
      Message m;
      recv_message(conn_.get(), m, 2000, e);
      if (m.fd >= 0) ::close(m.fd);
    }
  }
  conn_.reset();
  out_map_ = Mapping();  // the next worker's reply buffer is a new memfd
  out_ino_ = 0;
  if (pid_ > 0) {
    int wst = 0;
    bool gone = false;
    for (int i = 0; graceful && i < 100 && !gone; ++i) {  // up to 1 s to exit cleanly
      gone = ::waitpid(pid_, &wst, WNOHANG) == pid_;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wst, 0);
    }
    pid_ = -1;
  }
  lifeline_.reset();
  if (!sock_path_.empty()) ::unlink(sock_path_.c_str());
}

std::string WorkerClient::death_reason() {
  if (pid_ <= 0) return "no worker";
  int wst = 0;
  pid_t r = ::waitpid(pid_, &wst, WNOHANG);
  for (int i = 0; r == 0 && i < 20; ++i) {  // a dying worker may take a moment to be reaped
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    r = ::waitpid(pid_, &wst, WNOHANG);
  }
  if (r != pid_) return "worker still running";
  pid_ = -1;
  std::string why = WIFSIGNALED(wst) ? "worker killed by signal " + std::to_string(WTERMSIG(wst))
                                     : "worker exited with status " +
                                           std::to_string(WEXITSTATUS(wst));
  const std::string tail = log_tail();
  return tail.empty() ? why : why + "; its log: " + tail;
}

// One request and its reply on the current connection. kReconnect: the connection was found
// closed (or refused the request) while the worker process still runs, so the request was never
// served. kDied: the worker died or broke the protocol while serving it (it has been stopped).
// kTimeout: no reply in time (the worker has been stopped).
WorkerClient::Outcome WorkerClient::exchange(MsgType type, const std::string& payload, int fd,
                                             Message& reply, std::string& err) {
  std::uint64_t id = next_id_++;
  std::string e;
  if (!send_message(conn_.get(), type, id, payload, fd, 10000, e)) {
    std::string why = death_reason();
    if (why == "worker still running") {
      err = "faceplate-worker: the connection was closed (" + e + ")";
      return Outcome::kReconnect;
    }
    err = "faceplate-worker: sending the request failed (" + e + "; " + why + ")";
    stop(false);
    return Outcome::kDied;
  }
  RecvStatus rs = recv_message(conn_.get(), reply, opts_.request_timeout_ms, e, 10000);
  if (rs == RecvStatus::kOk && reply.header.request_id != id) {
    rs = RecvStatus::kBadHeader;
    e = "reply id " + std::to_string(reply.header.request_id) + " for request " +
        std::to_string(id);
  }
  if (rs == RecvStatus::kOk) return Outcome::kOk;
  if (reply.fd >= 0) ::close(reply.fd);
  reply.fd = -1;
  if (rs == RecvStatus::kTimeout) {
    err = "faceplate-worker: no reply within " + std::to_string(opts_.request_timeout_ms) +
          " ms; the worker was stopped and restarts on the next frame";
    stop(false);
    return Outcome::kTimeout;
  }
  std::string why = death_reason();
  // Closed (EOF, or reset because our request reached a socket the worker had already closed)
  // while the worker runs on: the request was never served.
  if ((rs == RecvStatus::kClosed || rs == RecvStatus::kIoError) &&
      why == "worker still running") {
    err = "faceplate-worker: the connection was closed before a reply";
    return Outcome::kReconnect;
  }
  err = std::string("faceplate-worker: ") + to_string(rs) + " (" + e + "; " + why + ")";
  stop(false);
  return Outcome::kDied;
}

bool WorkerClient::roundtrip(MsgType type, const std::string& payload, int fd, Message& reply,
                             std::string& err) {
  const Outcome first = exchange(type, payload, fd, reply, err);
  if (first == Outcome::kOk) return true;
  if (first == Outcome::kTimeout) return false;  // a hang would hang again: the frame fails
  std::string why = err, e;
  if (first == Outcome::kReconnect) {
    // The worker runs but our connection is gone: reconnect to it and send once more.
    conn_.reset();
    if (!connect_to_worker(e)) {
      err = why + "; reconnecting failed: " + e;
      return false;
    }
  } else if (!ensure_started(e)) {  // the worker died serving it: once more on a new worker
    err = why + "; restarting it failed: " + e;
    return false;
  }
  const Outcome again = exchange(type, payload, fd, reply, err);
  if (again == Outcome::kOk) {
    if (first == Outcome::kDied) recovered_ = why + "; the request was sent again to a new worker";
    return true;
  }
  if (again == Outcome::kReconnect) stop(false);
  err = why + "; sent again, it failed again: " + err + "; the worker restarts on the next frame";
  return false;
}

bool WorkerClient::ensure_started(std::string& err) {
  std::string stopped;  // why a worker that was running is gone
  if (pid_ > 0 && conn_) {
    int wst = 0;
    if (::waitpid(pid_, &wst, WNOHANG) == 0) return true;
    pid_ = -1;  // died between requests
    conn_.reset();
    stopped = WIFSIGNALED(wst) ? "killed by signal " + std::to_string(WTERMSIG(wst))
                               : "exited with status " + std::to_string(WEXITSTATUS(wst));
  }
  stop(false);
  const auto now = std::chrono::steady_clock::now();
  if (!start_error_.empty() && now < retry_at_) {
    const long left = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - now).count());
    err = start_error_ + " (next attempt in " + std::to_string((left + 999) / 1000) + " s)";
    return false;
  }
  if (spawn(err)) {
    start_error_.clear();
    backoff_ms_ = 0;
    if (!stopped.empty())
      recovered_ = "faceplate-worker had stopped between frames (" + stopped +
                   "); a new worker was started";
    return true;
  }
  backoff_ms_ = backoff_ms_ == 0 ? opts_.backoff_first_ms
                                 : std::min(backoff_ms_ * 2, opts_.backoff_max_ms);
  start_error_ = err;
  retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms_);
  return false;
}

bool WorkerClient::start(std::string& info, std::string& err) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (!ensure_started(err)) return false;
  info = start_info_;
  return true;
}

bool WorkerClient::sleep_for_test(int ms, std::string& err) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  recovered_.clear();
  if (!ensure_started(err)) return false;
  Message reply;
  if (!roundtrip(MsgType::kSleep, "{\"ms\": " + std::to_string(ms) + "}", -1, reply, err))
    return false;
  if (reply.type() == MsgType::kError) {
    json_get_string(reply.payload, "error", err);
    return false;
  }
  return true;
}

bool WorkerClient::drop_for_test(std::string& err) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (!ensure_started(err)) return false;
  Message reply;
  if (exchange(MsgType::kDrop, "{}", -1, reply, err) != Outcome::kOk) return false;
  if (reply.type() == MsgType::kError) {
    json_get_string(reply.payload, "error", err);
    return false;
  }
  return true;
}

std::string render_request_json(const std::string& effect, int width, int height,
                                const std::string& params_json, double time,
                                const std::string& action) {
  return "{\"effect\": " + json_quote(effect) + ", \"width\": " + std::to_string(width) +
         ", \"height\": " + std::to_string(height) + ", \"time\": " + json_number(time) +
         ", \"action\": " + json_quote(action) + ", \"params\": " +
         (params_json.empty() ? "{}" : params_json) + "}";
}

bool WorkerClient::prepare_input(int width, int height, std::string& err) {
  if (width < 1 || height < 1 || width > 65536 || height > 65536) {
    err = "frame size " + std::to_string(width) + "x" + std::to_string(height) + " out of range";
    return false;
  }
  std::uint64_t bytes = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height) * 16u;
  if (in_bytes_ != bytes || !in_map_.data()) {
    in_map_ = Mapping();
    in_bytes_ = 0;
    in_fd_ = make_frame_memfd(bytes, err);
    if (!in_fd_) return false;
    in_map_ = map_frame(in_fd_.get(), bytes, true, err);
    if (!in_map_.data()) {
      in_fd_.reset();
      return false;
    }
    in_bytes_ = bytes;
  }
  return true;
}

bool WorkerClient::send_frame(const std::string& effect, int width, int height,
                              const std::string& params_json, double time,
                              const std::string& action, RenderReply& out, std::string& err) {
  recovered_.clear();
  if (!ensure_started(err)) return false;
  std::uint64_t bytes = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height) * 16u;
  std::string payload = render_request_json(effect, width, height, params_json, time, action);
  Message reply;
  if (!roundtrip(MsgType::kRender, payload, in_fd_.get(), reply, err)) return false;
  UniqueFd rfd(reply.fd);
  if (reply.type() == MsgType::kError) {
    if (!json_get_string(reply.payload, "error", err)) err = "worker error: " + reply.payload;
    return false;
  }
  if (reply.type() != MsgType::kRenderOk || !rfd) {
    err = "faceplate-worker: unexpected reply type " + std::to_string(reply.header.type);
    return false;
  }
  // The worker reuses its reply memfd while the size stays the same: keep our mapping of it.
  struct stat rst{};
  if (::fstat(rfd.get(), &rst) != 0) {
    err = std::string("fstat reply frame: ") + std::strerror(errno);
    return false;
  }
  if (!out_map_.data() || out_ino_ != rst.st_ino || out_map_.size() != bytes) {
    out_map_ = Mapping();
    out_map_ = map_frame(rfd.get(), bytes, false, err);
    if (!out_map_.data()) return false;
    out_ino_ = rst.st_ino;
  }
  out = RenderReply();
  out.recovered.swap(recovered_);
  json_get_string(reply.payload, "status", out.status);
  json_get_int(reply.payload, "faces", out.faces);
  json_get_number(reply.payload, "python_ms", out.python_ms);
  return true;
}

bool WorkerClient::render(const std::string& effect, const float* src, int width, int height,
                          const std::string& params_json, float* dst, RenderReply& out,
                          std::string& err, double time, const std::string& action) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (!prepare_input(width, height, err)) return false;
  std::memcpy(in_map_.data(), src, in_bytes_);  // the one copy in
  if (!send_frame(effect, width, height, params_json, time, action, out, err)) return false;
  std::memcpy(dst, out_map_.data(), in_bytes_);  // the one copy out
  return true;
}

WorkerClient::Lease WorkerClient::acquire(const std::function<bool()>& aborted) {
  Lease l;
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  while (!lock.try_lock_for(std::chrono::milliseconds(20)))
    if (aborted && aborted()) return l;
  l.lock_ = std::move(lock);
  l.c_ = this;
  return l;
}

float* WorkerClient::Lease::input(int width, int height, std::string& err) {
  if (!c_) {
    err = "no frame lease";
    return nullptr;
  }
  if (!c_->prepare_input(width, height, err)) return nullptr;
  w_ = width;
  h_ = height;
  return static_cast<float*>(c_->in_map_.data());
}

const float* WorkerClient::Lease::output() const {
  return c_ ? static_cast<const float*>(c_->out_map_.data()) : nullptr;
}

bool WorkerClient::Lease::render(const std::string& effect, const std::string& params_json,
                                 RenderReply& reply, std::string& err, double time,
                                 const std::string& action) {
  if (!c_ || w_ < 1) {
    err = "no frame lease";
    return false;
  }
  return c_->send_frame(effect, w_, h_, params_json, time, action, reply, err);
}

}  // namespace faceplate
