// The progress engine of the host transport: non-blocking sockets, poll() only when no socket can
// move, and one deadline for the whole operation.
#include "transport.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace flagstone::comm {

Transport::Transport(int rank, std::vector<Fd> fds, int abort_fd)
    : rank_(rank), abort_fd_(abort_fd), peers_(fds.size()) {
  for (size_t i = 0; i < fds.size(); ++i) peers_[i].fd = std::move(fds[i]);
}

void Transport::check_peer(int peer, const char* what) const {
  if (peer < 0 || peer >= nranks() || peer == rank_ || !peers_[peer].fd.valid())
    fail(fsInternalError, "transport ", what, " to invalid peer ", peer, " from rank ", rank_);
}

void Transport::send(int peer, const void* data, size_t bytes, Callback done) {
  check_peer(peer, "send");
  peers_[peer].sends.push_back(
      {static_cast<char*>(const_cast<void*>(data)), bytes, 0, std::move(done)});
}

void Transport::recv(int peer, void* data, size_t bytes, Callback done) {
  check_peer(peer, "recv");
  peers_[peer].recvs.push_back({static_cast<char*>(data), bytes, 0, std::move(done)});
}

bool Transport::progress_send(int peer, const std::string& op) {
  Peer& p = peers_[peer];
  bool moved = false;
  while (!p.sends.empty()) {
    Pending& item = p.sends.front();
    while (item.done < item.bytes) {
      ssize_t n = ::send(p.fd.get(), item.data + item.done, item.bytes - item.done,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        item.done += static_cast<size_t>(n);
        moved = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return moved;
      fail(fsRemoteError, op, ": rank ", rank_, " lost its connection to rank ", peer,
           " while sending (", std::strerror(errno), "): that rank died or aborted");
    }
    Callback callback = std::move(item.callback);
    p.sends.pop_front();
    moved = true;
    if (callback) callback();
  }
  return moved;
}

bool Transport::progress_recv(int peer, const std::string& op) {
  Peer& p = peers_[peer];
  bool moved = false;
  while (!p.recvs.empty()) {
    Pending& item = p.recvs.front();
    while (item.done < item.bytes) {
      ssize_t n = ::recv(p.fd.get(), item.data + item.done, item.bytes - item.done, MSG_DONTWAIT);
      if (n > 0) {
        item.done += static_cast<size_t>(n);
        moved = true;
        continue;
      }
      if (n == 0)
        fail(fsRemoteError, op, ": rank ", rank_, " lost its connection to rank ", peer,
             ": that rank died, aborted or failed");
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return moved;
      fail(fsRemoteError, op, ": rank ", rank_, " lost its connection to rank ", peer,
           " while receiving (", std::strerror(errno), ")");
    }
    Callback callback = std::move(item.callback);
    p.recvs.pop_front();
    moved = true;
    if (callback) callback();
  }
  return moved;
}

void Transport::wait(const Deadline& deadline, const std::string& op) {
  if (broken_)
    fail(fsInvalidUsage, op, ": rank ", rank_,
         " cannot communicate: an earlier error broke this communicator");
  std::vector<pollfd> fds;
  std::vector<int> owners;
  try {
    for (;;) {
      bool pending = false;
      bool moved = false;
      for (int peer = 0; peer < nranks(); ++peer) {
        if (peer == rank_) continue;
        if (!peers_[peer].sends.empty()) moved |= progress_send(peer, op);
        if (!peers_[peer].recvs.empty()) moved |= progress_recv(peer, op);
        pending |= !peers_[peer].sends.empty() || !peers_[peer].recvs.empty();
      }
      if (!pending) {
        // Callbacks of the last pass may have queued more work.
        bool more = false;
        for (const Peer& p : peers_) more |= !p.sends.empty() || !p.recvs.empty();
        if (!more) return;
        continue;
      }
      if (moved) continue;
      fds.clear();
      owners.clear();
      for (int peer = 0; peer < nranks(); ++peer) {
        if (peer == rank_) continue;
        short events = 0;
        if (!peers_[peer].sends.empty()) events |= POLLOUT;
        if (!peers_[peer].recvs.empty()) events |= POLLIN;
        if (events) {
          fds.push_back({peers_[peer].fd.get(), events, 0});
          owners.push_back(peer);
        }
      }
      fds.push_back({abort_fd_, POLLIN, 0});
      int n = ::poll(fds.data(), fds.size(), deadline.remaining_ms());
      if (n < 0 && errno != EINTR) fail(fsSystemError, op, ": poll failed: ", std::strerror(errno));
      if (fds.back().revents & POLLIN)
        fail(fsAborted, op, ": rank ", rank_, ": the communicator was aborted");
      if (n == 0 && deadline.expired()) {
        std::string waiting;
        for (int owner : owners) waiting += (waiting.empty() ? "" : ", ") + std::to_string(owner);
        fail(fsTimeout, op, ": rank ", rank_, " timed out after ", deadline.timeout_ms,
             " ms waiting for rank(s) ", waiting,
             " (a peer is hung, dead, or did not call the same operation)");
      }
    }
  } catch (...) {
    broken_ = true;
    for (Peer& p : peers_) {
      p.sends.clear();
      p.recvs.clear();
    }
    shutdown_all();
    throw;
  }
}

void Transport::shutdown_all() noexcept {
  for (Peer& p : peers_)
    if (p.fd.valid()) ::shutdown(p.fd.get(), SHUT_RDWR);
}

}  // namespace flagstone::comm
