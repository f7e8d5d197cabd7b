// The progress engine of the host transport: non-blocking sockets, poll() only when no socket can
// move, and one deadline for the whole operation.
#include "transport.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
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
  if (peers_[peer].tx.valid()) return shm_move(peer, true);
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
  if (peers_[peer].rx.valid()) return shm_move(peer, false);
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
  bool spinning = false;
  Clock::time_point spin_start;
  bool all_tcp = true;  // spinning only helps peers whose data arrives through shared memory
  for (int peer = 0; peer < nranks(); ++peer) all_tcp &= peer == rank_ || !peers_[peer].tx.valid();
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
      if (moved) {
        spinning = false;
        continue;
      }
      if (spin_us_ > 0 && !all_tcp) {
        Clock::time_point now = Clock::now();
        if (!spinning) {
          spinning = true;
          spin_start = now;
        }
        if (now - spin_start < std::chrono::microseconds(spin_us_)) continue;
      }
      spinning = false;
      bool ready = false;
      for (int peer = 0; peer < nranks(); ++peer) {
        if (peer == rank_ || !peers_[peer].tx.valid()) continue;
        ready |= arm_shm(peer);
        if (peers_[peer].eof && (!peers_[peer].sends.empty() || !peers_[peer].recvs.empty()) &&
            !(peers_[peer].recvs.empty() ? false : peers_[peer].rx.can_read()))
          fail(fsRemoteError, op, ": rank ", rank_, " lost its connection to rank ", peer,
               ": that rank died, aborted or failed");
      }
      if (ready) continue;
      fds.clear();
      owners.clear();
      for (int peer = 0; peer < nranks(); ++peer) {
        if (peer == rank_) continue;
        short events = 0;
        bool busy = !peers_[peer].sends.empty() || !peers_[peer].recvs.empty();
        if (peers_[peer].tx.valid()) {
          events = busy && !peers_[peer].eof ? POLLIN : 0;  // doorbells; EOF when it dies
        } else {
          if (!peers_[peer].sends.empty()) events |= POLLOUT;
          if (!peers_[peer].recvs.empty()) events |= POLLIN;
        }
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
      for (size_t i = 0; i + 1 < fds.size(); ++i)
        if (fds[i].revents && peers_[owners[i]].tx.valid()) drain_doorbells(owners[i], op);
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

bool Transport::shm_move(int peer, bool sending) {
  Peer& p = peers_[peer];
  std::deque<Pending>& queue = sending ? p.sends : p.recvs;
  bool moved = false;
  while (!queue.empty()) {
    Pending& item = queue.front();
    if (item.done < item.bytes) {
      size_t n = sending ? p.tx.write(item.data + item.done, item.bytes - item.done)
                         : p.rx.read(item.data + item.done, item.bytes - item.done);
      if (n > 0) {
        item.done += n;
        moved = true;
        // The other side may sleep until these bytes (or this space) appear: ring its bell.
        std::atomic<uint32_t>& waiting =
            sending ? p.tx.header()->consumer_waiting : p.rx.header()->producer_waiting;
        if (waiting.exchange(0)) doorbell(peer);
      }
      if (item.done < item.bytes) return moved;  // ring full / empty
    }
    Callback callback = std::move(item.callback);
    queue.pop_front();
    moved = true;
    if (callback) callback();
  }
  return moved;
}

void Transport::doorbell(int peer) {
  char byte = 1;
  // A full socket buffer already holds doorbells, so a dropped one loses nothing.
  (void)!::send(peers_[peer].fd.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool Transport::arm_shm(int peer) {
  Peer& p = peers_[peer];
  bool ready = false;
  if (!p.sends.empty()) {
    p.tx.header()->producer_waiting.store(1);
    ready |= p.tx.can_write();
  }
  if (!p.recvs.empty()) {
    p.rx.header()->consumer_waiting.store(1);
    ready |= p.rx.can_read();
  }
  return ready;
}

void Transport::drain_doorbells(int peer, const std::string& op) {
  char sink[256];
  for (;;) {
    ssize_t n = ::recv(peers_[peer].fd.get(), sink, sizeof(sink), MSG_DONTWAIT);
    if (n > 0) continue;
    // A peer that closes with our doorbells unread resets the socket instead of ending it
    // (ECONNRESET), which says no more than an orderly EOF does: it has gone, and the rings may
    // still hold its last words, so read them first.
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      peers_[peer].eof = true;
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    fail(fsRemoteError, op, ": rank ", rank_, " lost its connection to rank ", peer, " (",
         std::strerror(errno), ")");
  }
}

bool Transport::peer_gone(int peer) {
  if (peers_[peer].eof) return true;
  try {
    drain_doorbells(peer, "");
  } catch (const CommError&) {
    return true;
  }
  return peers_[peer].eof;
}

int Transport::enable_shm(const std::vector<bool>& same_host, uint64_t magic, size_t ring_bytes,
                          const Deadline& deadline) {
  auto name = [magic](int low, int high) {
    char text[96];
    std::snprintf(text, sizeof(text), "/flagstone-%016llx-%d-%d",
                  static_cast<unsigned long long>(magic), low, high);
    return std::string(text);
  };
  std::string why;
  // Lower rank creates and says whether it could; higher rank opens, unlinks and acknowledges.
  for (int peer = rank_ + 1; peer < nranks(); ++peer) {
    if (!same_host[peer]) continue;
    auto pair = std::make_unique<ShmPair>();
    char ok = pair->create(name(rank_, peer), ring_bytes, &why) ? 1 : 0;
    if (ok) peers_[peer].shm = std::move(pair);
    send_all(peers_[peer].fd.get(), &ok, 1, deadline, abort_fd_, "shared-memory setup");
  }
  for (int peer = 0; peer < rank_; ++peer) {
    if (!same_host[peer]) continue;
    char offered = 0, ok = 0;
    recv_all(peers_[peer].fd.get(), &offered, 1, deadline, abort_fd_, "shared-memory setup");
    if (offered) {
      auto pair = std::make_unique<ShmPair>();
      ok = pair->open(name(peer, rank_), ring_bytes, &why) ? 1 : 0;
      pair->unlink_name();
      if (ok) {
        peers_[peer].tx = pair->ring(1);
        peers_[peer].rx = pair->ring(0);
        peers_[peer].shm = std::move(pair);
      }
    }
    send_all(peers_[peer].fd.get(), &ok, 1, deadline, abort_fd_, "shared-memory setup");
  }
  int pairs = 0;
  for (int peer = rank_ + 1; peer < nranks(); ++peer) {
    if (!same_host[peer]) continue;
    char ack = 0;
    recv_all(peers_[peer].fd.get(), &ack, 1, deadline, abort_fd_, "shared-memory setup");
    if (!peers_[peer].shm) continue;
    peers_[peer].shm->unlink_name();
    if (ack) {
      peers_[peer].tx = peers_[peer].shm->ring(0);
      peers_[peer].rx = peers_[peer].shm->ring(1);
    } else {
      peers_[peer].shm.reset();
    }
  }
  for (int peer = 0; peer < nranks(); ++peer) pairs += peers_[peer].tx.valid() ? 1 : 0;
  return pairs;
}

void Transport::shutdown_all() noexcept {
  for (Peer& p : peers_)
    if (p.fd.valid()) ::shutdown(p.fd.get(), SHUT_RDWR);
}

}  // namespace flagstone::comm
