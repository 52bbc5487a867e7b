// Faceplate IPC implementation (see include/faceplate/ipc.h for the protocol).
#include "faceplate/ipc.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace faceplate::ipc {
namespace {

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline, int timeout_ms) {
  if (timeout_ms < 0) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// 1: ready, 0: timeout, -1: error
int wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r == 0 ? 0 : 1;
  }
}

bool fill_addr(const std::string& path, sockaddr_un& addr, std::string& err) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() + 1 > sizeof addr.sun_path) {
    err = "socket path too long: " + path;
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

}  // namespace

const char* to_string(RecvStatus s) {
  switch (s) {
    case RecvStatus::kOk: return "ok";
    case RecvStatus::kClosed: return "connection closed";
    case RecvStatus::kTimeout: return "timed out";
    case RecvStatus::kBadHeader: return "bad header";
    case RecvStatus::kTooLarge: return "payload too large";
    case RecvStatus::kTruncated: return "truncated message";
    case RecvStatus::kIoError: return "I/O error";
  }
  return "unknown";
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (ptr_) ::munmap(ptr_, size_);
    ptr_ = o.ptr_;
    size_ = o.size_;
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Mapping::~Mapping() {
  if (ptr_) ::munmap(ptr_, size_);
}

bool make_private_dir(std::string& dir, std::string& err) {
  const char* base = std::getenv("XDG_RUNTIME_DIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/faceplate-XXXXXX";
  if (tmpl.size() > 80) tmpl = "/tmp/faceplate-XXXXXX";  // keep room for the socket name
  if (!::mkdtemp(tmpl.data())) {
    err = sys_error("mkdtemp " + tmpl);
    return false;
  }
  if (::chmod(tmpl.c_str(), 0700) != 0) {  // mkdtemp already uses 0700; make it explicit
    err = sys_error("chmod " + tmpl);
    return false;
  }
  dir = tmpl;
  return true;
}

UniqueFd listen_unix(const std::string& path, std::string& err) {
  sockaddr_un addr{};
  if (!fill_addr(path, addr, err)) return UniqueFd();
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) {
    err = sys_error("socket");
    return UniqueFd();
  }
  ::unlink(path.c_str());
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    err = sys_error("bind " + path);
    return UniqueFd();
  }
  ::chmod(path.c_str(), 0600);
  if (::listen(s.get(), 4) != 0) {
    err = sys_error("listen " + path);
    return UniqueFd();
  }
  return s;
}

UniqueFd connect_unix(const std::string& path, int timeout_ms, std::string& err) {
  sockaddr_un addr{};
  if (!fill_addr(path, addr, err)) return UniqueFd();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) {
      err = sys_error("socket");
      return UniqueFd();
    }
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return s;
    if (errno != ENOENT && errno != ECONNREFUSED && errno != EINTR) {
      err = sys_error("connect " + path);
      return UniqueFd();
    }
    if (Clock::now() >= deadline) {
      err = sys_error("connect " + path + " (gave up after " + std::to_string(timeout_ms) +
                      " ms)");
      return UniqueFd();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

UniqueFd accept_unix(int listen_fd, int timeout_ms, std::string& err) {
  int r = wait_fd(listen_fd, POLLIN, timeout_ms);
  if (r <= 0) {
    if (r < 0) err = sys_error("poll");
    return UniqueFd();
  }
  int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) err = sys_error("accept");
  return UniqueFd(c);
}

bool peer_is_same_user(int fd, int* pid, std::string& err) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    err = sys_error("getsockopt(SO_PEERCRED)");
    return false;
  }
  if (pid) *pid = cred.pid;
  if (cred.uid != ::geteuid()) {
    err = "peer uid " + std::to_string(cred.uid) + " is not ours (" +
          std::to_string(::geteuid()) + ")";
    return false;
  }
  return true;
}

bool send_message(int sock, MsgType type, std::uint64_t request_id, const std::string& payload,
                  int fd, int timeout_ms, std::string& err) {
  if (payload.size() > kMaxPayload) {
    err = "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit";
    return false;
  }
  Header h{kMagic, kVersion, static_cast<std::uint16_t>(type), request_id,
           static_cast<std::uint32_t>(payload.size()), fd >= 0 ? kFlagFd : 0u};
  std::string buf(reinterpret_cast<const char*>(&h), sizeof h);
  buf += payload;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::size_t sent = 0;
  bool fd_pending = fd >= 0;
  while (sent < buf.size()) {
    int r = wait_fd(sock, POLLOUT, remaining_ms(deadline, timeout_ms));
    if (r <= 0) {
      err = r == 0 ? "send timed out" : sys_error("poll");
      return false;
    }
    iovec iov{buf.data() + sent, buf.size() - sent};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
    if (fd_pending) {
      std::memset(ctrl, 0, sizeof ctrl);
      mh.msg_control = ctrl;
      mh.msg_controllen = sizeof ctrl;
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n = ::sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      err = sys_error("sendmsg");
      return false;
    }
    fd_pending = false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

RecvStatus recv_message(int sock, Message& msg, int timeout_ms, std::string& err,
                        int body_timeout_ms) {
  msg = Message();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  UniqueFd got_fd;
  char hbuf[sizeof(Header)];
  std::size_t have = 0;
  while (have < sizeof hbuf) {
    int r = wait_fd(sock, POLLIN, remaining_ms(deadline, timeout_ms));
    if (r < 0) {
      err = sys_error("poll");
      return RecvStatus::kIoError;
    }
    if (r == 0) {
      err = "timed out waiting for a message header";
      return have ? RecvStatus::kTruncated : RecvStatus::kTimeout;
    }
    iovec iov{hbuf + have, sizeof hbuf - have};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 4)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    ssize_t n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      err = sys_error("recvmsg");
      return RecvStatus::kIoError;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      std::size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < nfd; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        if (!got_fd) got_fd.reset(f);
        else ::close(f);  // at most one descriptor per message: close extras
      }
    }
    if (mh.msg_flags & MSG_CTRUNC) {
      err = "control data truncated (too many descriptors)";
      return RecvStatus::kBadHeader;
    }
    if (n == 0) {
      if (have == 0) {
        err = "peer closed the connection";
        return RecvStatus::kClosed;
      }
      err = "connection closed inside a message header";
      return RecvStatus::kTruncated;
    }
    if (have == 0) {  // the message has started: the rest must follow promptly
      timeout_ms = body_timeout_ms;
      deadline = Clock::now() + std::chrono::milliseconds(body_timeout_ms);
    }
    have += static_cast<std::size_t>(n);
  }
  std::memcpy(&msg.header, hbuf, sizeof hbuf);
  const Header& h = msg.header;
  if (h.magic != kMagic || h.version != kVersion) {
    err = "bad magic or version";
    return RecvStatus::kBadHeader;
  }
  if (h.type < static_cast<std::uint16_t>(MsgType::kPing) ||
      h.type > static_cast<std::uint16_t>(MsgType::kDrop) || (h.flags & ~kFlagFd) != 0) {
    err = "unknown message type or flags";
    return RecvStatus::kBadHeader;
  }
  if (h.payload_len > kMaxPayload) {
    err = "payload length " + std::to_string(h.payload_len) + " exceeds the limit";
    return RecvStatus::kTooLarge;
  }
  if (((h.flags & kFlagFd) != 0) != static_cast<bool>(got_fd)) {
    err = "descriptor flag does not match the descriptors received";
    return RecvStatus::kBadHeader;
  }
  msg.payload.resize(h.payload_len);
  std::size_t got = 0;
  while (got < h.payload_len) {
    int r = wait_fd(sock, POLLIN, remaining_ms(deadline, timeout_ms));
    if (r <= 0) {
      err = r == 0 ? "timed out inside a message payload" : sys_error("poll");
      return r == 0 ? RecvStatus::kTruncated : RecvStatus::kIoError;
    }
    ssize_t n = ::recv(sock, msg.payload.data() + got, h.payload_len - got, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      err = sys_error("recv");
      return RecvStatus::kIoError;
    }
    if (n == 0) {
      err = "connection closed inside a message payload";
      return RecvStatus::kTruncated;
    }
    got += static_cast<std::size_t>(n);
  }
  msg.fd = got_fd.release();
  return RecvStatus::kOk;
}

UniqueFd make_frame_memfd(std::uint64_t bytes, std::string& err) {
  if (bytes == 0 || bytes > kMaxFrameBytes) {
    err = "frame size " + std::to_string(bytes) + " bytes is out of range";
    return UniqueFd();
  }
  UniqueFd fd(::memfd_create("faceplate-frame", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) {
    err = sys_error("memfd_create");
    return UniqueFd();
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    err = sys_error("ftruncate memfd");
    return UniqueFd();
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    err = sys_error("seal memfd");
    return UniqueFd();
  }
  return fd;
}

Mapping map_frame(int fd, std::uint64_t bytes, bool writable, std::string& err) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    err = sys_error("fstat frame descriptor");
    return Mapping();
  }
  if (bytes == 0 || static_cast<std::uint64_t>(st.st_size) != bytes) {
    err = "frame descriptor holds " + std::to_string(st.st_size) + " bytes, expected " +
          std::to_string(bytes);
    return Mapping();
  }
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
    err = "frame descriptor is not a memfd sealed against shrinking";
    return Mapping();
  }
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = ::mmap(nullptr, bytes, prot, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    err = sys_error("mmap frame");
    return Mapping();
  }
  return Mapping(p, bytes);
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "0";
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  std::string o = b;
  std::replace(o.begin(), o.end(), ',', '.');  // a host locale with a decimal comma
  return o;
}

std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

namespace {
// Position just after `"key"` + optional spaces + ':' + optional spaces, or npos.
std::size_t find_value(const std::string& j, const std::string& key) {
  std::string k = "\"" + key + "\"";
  std::size_t p = j.find(k);
  while (p != std::string::npos) {
    std::size_t q = p + k.size();
    while (q < j.size() && (j[q] == ' ' || j[q] == '\n' || j[q] == '\t')) ++q;
    if (q < j.size() && j[q] == ':') {
      ++q;
      while (q < j.size() && (j[q] == ' ' || j[q] == '\n' || j[q] == '\t')) ++q;
      return q;
    }
    p = j.find(k, p + 1);
  }
  return std::string::npos;
}
}  // namespace

bool json_get_string(const std::string& j, const std::string& key, std::string& out) {
  std::size_t q = find_value(j, key);
  if (q == std::string::npos || q >= j.size() || j[q] != '"') return false;
  out.clear();
  for (++q; q < j.size(); ++q) {
    char c = j[q];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++q >= j.size()) return false;
    switch (j[q]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (q + 4 >= j.size()) return false;
        unsigned cp = static_cast<unsigned>(std::strtoul(j.substr(q + 1, 4).c_str(), nullptr, 16));
        q += 4;
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += j[q];
    }
  }
  return false;
}

bool json_get_int(const std::string& j, const std::string& key, long long& out) {
  std::size_t q = find_value(j, key);
  if (q == std::string::npos || q >= j.size()) return false;
  const char* s = j.c_str() + q;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || errno != 0) return false;
  out = v;
  return true;
}

bool json_get_number(const std::string& j, const std::string& key, double& out) {
  std::size_t q = find_value(j, key);
  if (q == std::string::npos || q >= j.size()) return false;
  const char* s = j.c_str() + q;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (end == s || errno != 0) return false;
  out = v;
  return true;
}

}  // namespace faceplate::ipc
