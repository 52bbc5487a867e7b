// WorkerClient implementation (see include/faceplate/client.h).
#include "faceplate/client.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace faceplate {

using namespace ipc;

WorkerClient::WorkerClient(WorkerOptions opts) : opts_(std::move(opts)) {}

WorkerClient::~WorkerClient() {
  std::lock_guard<std::mutex> lock(mu_);
  stop(true);
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

bool WorkerClient::spawn(std::string& err) {
  if (dir_.empty()) {
    if (!make_private_dir(dir_, err)) return false;
    sock_path_ = dir_ + "/worker.sock";
  }
  ::unlink(sock_path_.c_str());
  std::vector<std::string> args{opts_.worker_exe, "--socket", sock_path_};
  args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    err = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {  // child: async-signal-safe calls only until exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the worker never outlives the host
    if (::getppid() != parent) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  ++starts_;
  // Connect, watching for an early exit (bad paths file, missing libpython...).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.start_timeout_ms);
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
      err = "faceplate-worker exited during start-up (" +
            std::string(WIFEXITED(wst) ? "status " + std::to_string(WEXITSTATUS(wst))
                                       : "signal " + std::to_string(WTERMSIG(wst))) +
            "); see its stderr";
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      err = "faceplate-worker did not open its socket within " +
            std::to_string(opts_.start_timeout_ms) + " ms";
      stop(false);
      return false;
    }
  }
  Message pong;
  if (!roundtrip(MsgType::kPing, "{}", -1, pong, err)) return false;
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
  if (WIFSIGNALED(wst)) return "worker killed by signal " + std::to_string(WTERMSIG(wst));
  return "worker exited with status " + std::to_string(WEXITSTATUS(wst));
}

bool WorkerClient::roundtrip(MsgType type, const std::string& payload, int fd, Message& reply,
                             std::string& err) {
  std::uint64_t id = next_id_++;
  std::string e;
  if (!send_message(conn_.get(), type, id, payload, fd, 10000, e)) {
    std::string why = death_reason();
    err = "faceplate-worker: sending the request failed (" + e + "; " + why +
          "); it restarts on the next frame";
    stop(false);
    return false;
  }
  RecvStatus rs = recv_message(conn_.get(), reply, opts_.request_timeout_ms, e, 10000);
  if (rs == RecvStatus::kOk && reply.header.request_id != id) {
    rs = RecvStatus::kBadHeader;
    e = "reply id " + std::to_string(reply.header.request_id) + " for request " +
        std::to_string(id);
  }
  if (rs != RecvStatus::kOk) {
    if (rs == RecvStatus::kTimeout) {
      err = "faceplate-worker: no reply within " + std::to_string(opts_.request_timeout_ms) +
            " ms; the worker was stopped and restarts on the next frame";
    } else {
      std::string why = death_reason();
      err = std::string("faceplate-worker: ") + to_string(rs) + " (" + e + "; " + why +
            "); it restarts on the next frame";
    }
    if (reply.fd >= 0) ::close(reply.fd);
    reply.fd = -1;
    stop(false);
    return false;
  }
  return true;
}

bool WorkerClient::ensure_started(std::string& err) {
  if (pid_ > 0 && conn_) {
    int wst = 0;
    if (::waitpid(pid_, &wst, WNOHANG) == 0) return true;
    pid_ = -1;  // died between requests
    conn_.reset();
  }
  stop(false);
  return spawn(err);
}

bool WorkerClient::start(std::string& info, std::string& err) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ensure_started(err)) return false;
  info = start_info_;
  return true;
}

bool WorkerClient::sleep_for_test(int ms, std::string& err) {
  std::lock_guard<std::mutex> lock(mu_);
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
  json_get_string(reply.payload, "status", out.status);
  json_get_int(reply.payload, "faces", out.faces);
  json_get_number(reply.payload, "python_ms", out.python_ms);
  return true;
}

bool WorkerClient::render(const std::string& effect, const float* src, int width, int height,
                          const std::string& params_json, float* dst, RenderReply& out,
                          std::string& err, double time, const std::string& action) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!prepare_input(width, height, err)) return false;
  std::memcpy(in_map_.data(), src, in_bytes_);  // the one copy in
  if (!send_frame(effect, width, height, params_json, time, action, out, err)) return false;
  std::memcpy(dst, out_map_.data(), in_bytes_);  // the one copy out
  return true;
}

WorkerClient::Lease WorkerClient::lease(int width, int height, std::string& err) {
  Lease l;
  std::unique_lock<std::mutex> lock(mu_);
  if (!prepare_input(width, height, err)) return l;
  l.lock_ = std::move(lock);
  l.c_ = this;
  l.w_ = width;
  l.h_ = height;
  return l;
}

float* WorkerClient::Lease::input() const {
  return c_ ? static_cast<float*>(c_->in_map_.data()) : nullptr;
}

const float* WorkerClient::Lease::output() const {
  return c_ ? static_cast<const float*>(c_->out_map_.data()) : nullptr;
}

bool WorkerClient::Lease::render(const std::string& effect, const std::string& params_json,
                                 RenderReply& reply, std::string& err, double time,
                                 const std::string& action) {
  if (!c_) {
    err = "no frame lease";
    return false;
  }
  return c_->send_frame(effect, w_, h_, params_json, time, action, reply, err);
}

}  // namespace faceplate
