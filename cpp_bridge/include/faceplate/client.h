// WorkerClient: the plugin side of the bridge. Spawns faceplate-worker in a private socket
// directory, sends frames, waits with a timeout, and restarts the worker after a crash or a hang.
// Errors come back as sentences for the host's message suite. Calls are serialized (one mutex):
// the worker serves one request at a time.
//
// Lifetime: the worker lives as long as the host *process*, not the thread that started it
// (hosts such as Natron end their render threads after every render). It is started with
// posix_spawn and holds the read end of a lifeline pipe whose write end only this process keeps
// (close-on-exec): when the host process ends, for any reason, the worker sees end-of-file and
// exits. The worker closes every other descriptor it inherits before it does anything else, and
// its stdout/stderr go to a log file (`worker.log` in the private directory, or the file named by
// FACEPLATE_OFX_WORKER_LOG), whose tail is quoted when it fails to start or dies. A worker that cannot start is not respawned for every frame:
// further attempts wait for a back-off (2 s, doubling to 60 s) and fail at once with the reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "faceplate/ipc.h"

namespace faceplate {

struct WorkerOptions {
  std::string worker_exe;               // path of faceplate-worker
  std::vector<std::string> extra_args;  // e.g. --paths FILE, --enable-test-requests
  int start_timeout_ms = 60000;         // spawn -> connected and Python imported
  int request_timeout_ms = 120000;      // one render (the first one loads the models)
  int backoff_first_ms = 2000;          // after a failed start: no new attempt before this
  int backoff_max_ms = 60000;           // the back-off doubles up to this
};

struct RenderReply {
  std::string status;  // "" or a one-line note for the host ("no face found", ...)
  long long faces = 0;
  double python_ms = 0.0;  // time spent inside the Python render call in the worker
  // Set when the worker died (serving this frame, or since the last one) and a new worker
  // rendered it: what happened.
  std::string recovered;
};

// The JSON of one render request (what faceplate-worker and libfaceplate_inproc parse):
// {"effect", "width", "height", "time", "action", "params"}; params_json is a JSON object.
std::string render_request_json(const std::string& effect, int width, int height,
                                const std::string& params_json, double time,
                                const std::string& action);

class WorkerClient {
 public:
  explicit WorkerClient(WorkerOptions opts);
  ~WorkerClient();  // asks the worker to exit, kills it if it does not, removes the directory
  WorkerClient(const WorkerClient&) = delete;
  WorkerClient& operator=(const WorkerClient&) = delete;

  // Renders one H x W x 4 float32 top-down RGBA frame. Copies src into a memfd (the one copy
  // in) and the reply into dst (the one copy out); dst may alias src. Starts the worker when
  // none runs. A worker that dies serving the frame is replaced and the frame sent once more
  // (reply.recovered says so); a second death or a timeout fails the call with the reason and
  // the next call starts a fresh worker. A connection found closed while the worker still runs
  // is reopened and the request sent once more.
  // `time` is the host frame the image belongs to (the alignments store is keyed by it);
  // `action` is "render", or one of the analysis steps "analyze" (store this frame's faces),
  // "analyze_end" (smooth the stored tracks) and "clear" (see faceplate.ofx.render).
  bool render(const std::string& effect, const float* src, int width, int height,
              const std::string& params_json, float* dst, RenderReply& reply, std::string& err,
              double time = 0.0, const std::string& action = "render");

  // Zero-copy rendering: holds the client (other calls wait) while the caller writes the frame
  // straight into the shared input buffer and reads the reply frame where the worker wrote it.
  class Lease {
   public:
    Lease() = default;
    explicit operator bool() const { return c_ != nullptr; }
    // The width × height × 4 float32 top-down RGBA input buffer: write the frame here before
    // render(). nullptr (with err) on a bad size or when the buffer cannot be made.
    float* input(int width, int height, std::string& err);
    // Renders the frame in input(); on success output() holds the result until the lease ends.
    bool render(const std::string& effect, const std::string& params_json, RenderReply& reply,
                std::string& err, double time = 0.0, const std::string& action = "render");
    const float* output() const;

   private:
    friend class WorkerClient;
    std::unique_lock<std::timed_mutex> lock_;
    WorkerClient* c_ = nullptr;
    int w_ = 0, h_ = 0;
  };
  // Waits for the client (another render may hold it) and returns a lease on it, asking
  // `aborted` every 20 ms while it waits: an empty Lease when it says true. Take the lease
  // before fetching the host's images, so that renders waiting for the worker hold none.
  Lease acquire(const std::function<bool()>& aborted = nullptr);

  // Starts the worker now (render does it lazily); info = the worker's pong JSON.
  bool start(std::string& info, std::string& err);
  // Test-only: asks the worker to sleep (needs --enable-test-requests in extra_args).
  bool sleep_for_test(int ms, std::string& err);
  // Test-only: asks the worker to close this connection and wait for the next one.
  bool drop_for_test(std::string& err);

  int worker_pid() const { return pid_; }
  // What the last request that a new worker had to serve again went through ("" if none).
  const std::string& last_recovery() const { return recovered_; }
  int restarts() const { return starts_ > 0 ? starts_ - 1 : 0; }
  int spawns() const { return spawns_; }  // attempts to start a worker, failed ones included
  const std::string& socket_dir() const { return dir_; }
  // The worker's stdout/stderr: $FACEPLATE_OFX_WORKER_LOG (appended to, kept), else
  // worker.log in the private folder (started afresh by each worker, removed with the folder).
  std::string log_path() const;
  void set_request_timeout_ms(int ms) { opts_.request_timeout_ms = ms; }

 private:
  bool ensure_started(std::string& err);
  // With mu_ held: the input memfd for a width × height frame (kept while the size stays).
  bool prepare_input(int width, int height, std::string& err);
  // With mu_ held: sends the frame in the input memfd, maps the reply frame into out_map_.
  bool send_frame(const std::string& effect, int width, int height,
                  const std::string& params_json, double time, const std::string& action,
                  RenderReply& out, std::string& err);
  bool spawn(std::string& err);
  bool connect_to_worker(std::string& err);
  void stop(bool graceful);
  // Sends one request and waits for its reply. A connection found closed while the worker runs
  // is reopened, and a worker that died serving the request is replaced, and the request sent
  // once more (recovered_ says so); a timeout or a second failure fails it.
  bool roundtrip(ipc::MsgType type, const std::string& payload, int fd, ipc::Message& reply,
                 std::string& err);
  enum class Outcome { kOk, kReconnect, kDied, kTimeout };
  Outcome exchange(ipc::MsgType type, const std::string& payload, int fd, ipc::Message& reply,
                   std::string& err);
  std::string death_reason();
  std::string log_tail() const;

  WorkerOptions opts_;
  std::timed_mutex mu_;
  std::string dir_, sock_path_;
  ipc::UniqueFd conn_;
  ipc::UniqueFd lifeline_;  // write end of the lifeline pipe (close-on-exec), kept while alive
  int pid_ = -1;
  int starts_ = 0;
  int spawns_ = 0;
  std::uint64_t next_id_ = 1;
  std::string start_info_;
  std::string recovered_;  // set by roundtrip when a new worker served the request
  // After a failed start: the reason, and no new attempt before retry_at_.
  std::string start_error_;
  std::chrono::steady_clock::time_point retry_at_{};
  int backoff_ms_ = 0;
  // Input frame buffer, reused while the size stays the same.
  ipc::UniqueFd in_fd_;
  ipc::Mapping in_map_;
  std::uint64_t in_bytes_ = 0;
  // Mapping of the worker's reply memfd (identified by inode), reused across requests.
  ipc::Mapping out_map_;
  unsigned long out_ino_ = 0;
};

}  // namespace faceplate
