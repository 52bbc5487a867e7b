// Faceplate IPC: the wire protocol between the OpenFX plugin (client) and faceplate-worker.
//
// Transport: a UNIX-domain stream socket bound inside a private directory (mkdtemp, mode 0700).
// Both ends check the peer's credentials (SO_PEERCRED: same effective uid).
//
// Message = fixed 24-byte header + payload (at most kMaxPayload bytes), host byte order:
//   uint32 magic 'FPLT' | uint16 version | uint16 type | uint64 request_id | uint32 payload_len
//   | uint32 flags (kFlagFd: one file descriptor travels with the header via SCM_RIGHTS)
// Payloads are UTF-8 JSON. Frames never travel in the stream: a frame is an H x W x 4 float32
// top-down RGBA image in a sealed memfd (memfd_create + ftruncate + F_SEAL_SHRINK|F_SEAL_GROW)
// whose descriptor is passed with the message.
//
// Every read waits with poll() and a timeout. A header with a bad magic, version or type, an
// oversize length, or a truncated message is rejected: the receiver answers kError when it can
// and drops the connection (the stream is out of step), it never crashes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace faceplate::ipc {

constexpr std::uint32_t kMagic = 0x544C5046u;  // "FPLT" in little-endian memory order
constexpr std::uint16_t kVersion = 1;
constexpr std::uint32_t kMaxPayload = 1u << 20;  // 1 MiB of JSON is far beyond any param set
constexpr std::uint32_t kFlagFd = 1u;
constexpr std::uint64_t kMaxFrameBytes = 1ull << 32;  // 4 GiB: 16k x 16k float RGBA

enum class MsgType : std::uint16_t {
  kPing = 1,      // -> kPong; payload ignored
  kPong = 2,      // payload {"pid": N, "python": "3.11.7", "ready": true|false, "error": "..."}
  kRender = 3,    // payload {"effect", "width", "height", "params": {...}}, fd = input frame
  kRenderOk = 4,  // payload {"status": "...", "faces": N}, fd = output frame (same size)
  kError = 5,     // payload {"error": "..."}
  kSleep = 6,     // test-only (worker --enable-test-requests): {"seconds": x} -> kPong after it
  kShutdown = 7,  // worker exits after replying kPong
  kDrop = 8,      // test-only: replies kPong, then closes this connection (the worker runs on)
};

#pragma pack(push, 1)
struct Header {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t type;
  std::uint64_t request_id;
  std::uint32_t payload_len;
  std::uint32_t flags;
};
#pragma pack(pop)
static_assert(sizeof(Header) == 24, "the wire header is 24 bytes");

// A received message. `fd` is -1 when none came; the receiver owns (and must close) it.
struct Message {
  Header header{};
  std::string payload;
  int fd = -1;
  MsgType type() const { return static_cast<MsgType>(header.type); }
};

// Result of a receive: kOk, or why it failed (kClosed = orderly EOF before any byte).
enum class RecvStatus { kOk, kClosed, kTimeout, kBadHeader, kTooLarge, kTruncated, kIoError };
const char* to_string(RecvStatus s);

// Closes a descriptor on scope exit.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }
 private:
  int fd_ = -1;
};

// A shared mapping of a memfd (munmap on destruction).
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* p, std::size_t n) : ptr_(p), size_(n) {}
  Mapping(Mapping&& o) noexcept : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr; o.size_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();
  void* data() const { return ptr_; }
  std::size_t size() const { return size_; }
 private:
  void* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// All functions below report failure through `err` (a sentence) and a false / invalid return.

// mkdtemp("<base>/faceplate-XXXXXX") with mode 0700; base = $XDG_RUNTIME_DIR or /tmp.
bool make_private_dir(std::string& dir, std::string& err);
// Bind + listen on `path` (unlinked first); the socket file gets mode 0600.
UniqueFd listen_unix(const std::string& path, std::string& err);
// Connect to `path`; retries until `timeout_ms` passes (the worker may still be starting).
UniqueFd connect_unix(const std::string& path, int timeout_ms, std::string& err);
// Accept one connection, waiting at most timeout_ms (-1: forever). Invalid fd on timeout.
UniqueFd accept_unix(int listen_fd, int timeout_ms, std::string& err);
// SO_PEERCRED: true when the peer runs with our effective uid (its pid goes to *pid).
bool peer_is_same_user(int fd, int* pid, std::string& err);

// Sends header + payload in one sendmsg, with `fd` attached when fd >= 0.
bool send_message(int sock, MsgType type, std::uint64_t request_id, const std::string& payload,
                  int fd, int timeout_ms, std::string& err);
// Receives one message: waits at most timeout_ms (-1: forever) for its first byte, then at most
// body_timeout_ms for the rest of it.
RecvStatus recv_message(int sock, Message& msg, int timeout_ms, std::string& err,
                        int body_timeout_ms = 5000);

// memfd of exactly `bytes` bytes, sealed against shrinking and growing.
UniqueFd make_frame_memfd(std::uint64_t bytes, std::string& err);
// Maps `fd` shared (read-write when writable). Checks the size equals `bytes` and that it is
// sealed against shrinking (so the peer cannot make our mapping fault with SIGBUS).
Mapping map_frame(int fd, std::uint64_t bytes, bool writable, std::string& err);

// Minimal JSON helpers for the small status payloads.
std::string json_quote(const std::string& s);
// A finite double as a JSON number ("%.17g", '.' decimal point whatever the locale); 0 if not
// finite.
std::string json_number(double v);
// The string value of top-level `"key": "..."` (escapes decoded); false when absent.
bool json_get_string(const std::string& json, const std::string& key, std::string& out);
// The integer value of `"key": N`; false when absent or not a number.
bool json_get_int(const std::string& json, const std::string& key, long long& out);
// The number value of `"key": X` (C locale); false when absent or not a number.
bool json_get_number(const std::string& json, const std::string& key, double& out);

}  // namespace faceplate::ipc
