// WorkerClient: the plugin side of the bridge. Spawns faceplate-worker in a private socket
// directory, sends frames, waits with a timeout, and restarts the worker after a crash or a hang.
// Errors come back as sentences for the host's message suite. Calls are serialized (one mutex):
// the worker serves one request at a time.
#pragma once

#include <cstdint>
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
};

struct RenderReply {
  std::string status;  // "" or a one-line note for the host ("no face found", ...)
  long long faces = 0;
  double python_ms = 0.0;  // time spent inside the Python render call in the worker
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
  // none runs. On a crash or timeout the worker is killed, this call fails with the reason, and
  // the next call starts a fresh worker.
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
    // width × height × 4 float32, top-down RGBA: write the frame here before render().
    float* input() const;
    // Renders the frame in input(); on success output() holds the result until the lease ends.
    bool render(const std::string& effect, const std::string& params_json, RenderReply& reply,
                std::string& err, double time = 0.0, const std::string& action = "render");
    const float* output() const;

   private:
    friend class WorkerClient;
    std::unique_lock<std::mutex> lock_;
    WorkerClient* c_ = nullptr;
    int w_ = 0, h_ = 0;
  };
  // A lease for one width × height frame (an empty Lease, with err, on a bad size or when the
  // input buffer cannot be made). The worker is started on render().
  Lease lease(int width, int height, std::string& err);

  // Starts the worker now (render does it lazily); info = the worker's pong JSON.
  bool start(std::string& info, std::string& err);
  // Test-only: asks the worker to sleep (needs --enable-test-requests in extra_args).
  bool sleep_for_test(int ms, std::string& err);

  int worker_pid() const { return pid_; }
  int restarts() const { return starts_ > 0 ? starts_ - 1 : 0; }
  const std::string& socket_dir() const { return dir_; }
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
  void stop(bool graceful);
  // Sends one request and waits for its reply; on any failure kills the worker.
  bool roundtrip(ipc::MsgType type, const std::string& payload, int fd, ipc::Message& reply,
                 std::string& err);
  std::string death_reason();

  WorkerOptions opts_;
  std::mutex mu_;
  std::string dir_, sock_path_;
  ipc::UniqueFd conn_;
  int pid_ = -1;
  int starts_ = 0;
  std::uint64_t next_id_ = 1;
  std::string start_info_;
  // Input frame buffer, reused while the size stays the same.
  ipc::UniqueFd in_fd_;
  ipc::Mapping in_map_;
  std::uint64_t in_bytes_ = 0;
  // Mapping of the worker's reply memfd (identified by inode), reused across requests.
  ipc::Mapping out_map_;
  unsigned long out_ino_ = 0;
};

}  // namespace faceplate
