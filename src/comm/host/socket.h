// TCP sockets for bootstrap and the host transport: listen, connect with retry, and whole-buffer
// send/recv that give up at a deadline or when the communicator's abort fd becomes readable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../internal.h"

namespace flagstone::comm {

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Listens on all interfaces; port 0 picks a free port, returned in *bound_port.
Fd listen_tcp(uint16_t port, uint16_t* bound_port);
// Connects, retrying refused connections (the listener may not be up yet) until the deadline.
Fd connect_tcp(const std::string& host, uint16_t port, const Deadline& deadline, int abort_fd,
               const std::string& what);
// Accepts one connection; *peer_ip gets the peer's address as seen here.
Fd accept_tcp(int listen_fd, const Deadline& deadline, int abort_fd, std::string* peer_ip,
              const std::string& what);

void set_nonblocking(int fd);
void set_nodelay(int fd);

// Moves all bytes or throws: fsRemoteError when the peer closed, fsTimeout at the deadline,
// fsAborted when abort_fd (may be -1) is readable. `what` names the peer in messages.
void send_all(int fd, const void* data, size_t bytes, const Deadline& deadline, int abort_fd,
              const std::string& what);
void recv_all(int fd, void* data, size_t bytes, const Deadline& deadline, int abort_fd,
              const std::string& what);

// Waits until fd is ready for `events` (POLLIN/POLLOUT); the same errors as above.
void wait_fd(int fd, short events, const Deadline& deadline, int abort_fd, const std::string& what);

// A non-loopback IPv4 address of this host for other hosts to reach (FLAGSTONE_COMM_IFADDR
// overrides), or 127.0.0.1 when there is none.
std::string local_address();
std::string host_name();

}  // namespace flagstone::comm
