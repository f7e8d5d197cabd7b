// TCP helpers with deadlines and an abort fd; every wait goes through poll() so that no call can
// block longer than the operation's timeout.
#include "socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace flagstone::comm {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {
[[noreturn]] void sys_fail(const std::string& what, const char* call) {
  fail(fsSystemError, what, ": ", call, " failed: ", std::strerror(errno));
}
}  // namespace

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) sys_fail("socket", "fcntl");
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

Fd listen_tcp(uint16_t port, uint16_t* bound_port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) sys_fail("listener", "socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    sys_fail("listener on port " + std::to_string(port), "bind");
  if (::listen(fd.get(), 512) < 0) sys_fail("listener", "listen");
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  if (bound_port) *bound_port = ntohs(addr.sin_port);
  set_nonblocking(fd.get());
  return fd;
}

void wait_fd(int fd, short events, const Deadline& deadline, int abort_fd,
             const std::string& what) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {abort_fd, POLLIN, 0}};
    int n = ::poll(fds, abort_fd >= 0 ? 2 : 1, deadline.remaining_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      sys_fail(what, "poll");
    }
    if (abort_fd >= 0 && (fds[1].revents & POLLIN)) fail(fsAborted, what, ": communicator aborted");
    if (n > 0 && fds[0].revents) return;  // errors surface in the following send/recv
    if (deadline.expired()) fail(fsTimeout, what, ": timed out after ", deadline.timeout_ms, " ms");
  }
}

Fd connect_tcp(const std::string& host, uint16_t port, const Deadline& deadline, int abort_fd,
               const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
  if (rc != 0 || !result)
    fail(fsSystemError, what, ": cannot resolve '", host, "': ", ::gai_strerror(rc));
  sockaddr_in addr;
  std::memcpy(&addr, result->ai_addr, sizeof(addr));
  ::freeaddrinfo(result);
  for (int attempt = 0;; ++attempt) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) sys_fail(what, "socket");
    set_nonblocking(fd.get());
    int r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    int err = r == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      wait_fd(fd.get(), POLLOUT, deadline, abort_fd, what);
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0) {
      set_nodelay(fd.get());
      return fd;
    }
    if (err != ECONNREFUSED && err != ETIMEDOUT && err != ECONNRESET && err != EAGAIN) {
      errno = err;
      sys_fail(what + " (" + host + ":" + std::to_string(port) + ")", "connect");
    }
    if (deadline.expired())
      fail(fsTimeout, what, ": nobody listens at ", host, ":", port, " after ", deadline.timeout_ms,
           " ms");
    // The listener may not be up yet: back off a little, capped so startup stays quick.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 * (attempt + 1), 100)));
  }
}

Fd accept_tcp(int listen_fd, const Deadline& deadline, int abort_fd, std::string* peer_ip,
              const std::string& what) {
  for (;;) {
    wait_fd(listen_fd, POLLIN, deadline, abort_fd, what);
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      sys_fail(what, "accept");
    }
    Fd out(fd);
    set_nonblocking(fd);
    set_nodelay(fd);
    if (peer_ip) {
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
      *peer_ip = text;
    }
    return out;
  }
}

void send_all(int fd, const void* data, size_t bytes, const Deadline& deadline, int abort_fd,
              const std::string& what) {
  auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      wait_fd(fd, POLLOUT, deadline, abort_fd, what);
      continue;
    }
    fail(fsRemoteError, what, ": connection lost while sending (", std::strerror(errno),
         "): the peer died or aborted");
  }
}

void recv_all(int fd, void* data, size_t bytes, const Deadline& deadline, int abort_fd,
              const std::string& what) {
  auto* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = ::recv(fd, p, bytes, MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) fail(fsRemoteError, what, ": connection closed: the peer died or aborted");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      wait_fd(fd, POLLIN, deadline, abort_fd, what);
      continue;
    }
    fail(fsRemoteError, what, ": connection lost while receiving (", std::strerror(errno), ")");
  }
}

std::string local_address() {
  std::string forced = env_string("FLAGSTONE_COMM_IFADDR", "");
  if (!forced.empty()) return forced;
  ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* it = list; it; it = it->ifa_next) {
      if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET) continue;
      if ((it->ifa_flags & IFF_LOOPBACK) || !(it->ifa_flags & IFF_UP)) continue;
      char text[INET_ADDRSTRLEN] = {};
      auto* in = reinterpret_cast<sockaddr_in*>(it->ifa_addr);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      found = text;
      break;
    }
    ::freeifaddrs(list);
  }
  return found;
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace flagstone::comm
