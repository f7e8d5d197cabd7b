// The host transport: one TCP connection per peer, and a progress engine that moves every queued
// send and receive at once (so ring steps and grouped send/recv cannot deadlock) until a deadline.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "socket.h"

namespace flagstone::comm {

class Transport {
 public:
  using Callback = std::function<void()>;

  Transport(int rank, std::vector<Fd> fds, int abort_fd);

  int rank() const { return rank_; }
  int nranks() const { return static_cast<int>(peers_.size()); }

  // Queue a transfer. Transfers to one peer in one direction complete in queue order. `done`
  // runs inside wait() when the bytes are in place; it may queue more transfers.
  void send(int peer, const void* data, size_t bytes, Callback done = {});
  void recv(int peer, void* data, size_t bytes, Callback done = {});
  // Runs every queued transfer to completion. Throws CommError (remote, timeout, aborted) naming
  // `op` and the peer; the transport is then broken and drops all queued work.
  void wait(const Deadline& deadline, const std::string& op);
  // Shuts every connection down so blocked peers see the failure at once.
  void shutdown_all() noexcept;
  bool broken() const { return broken_; }

 private:
  struct Pending {
    char* data;
    size_t bytes;
    size_t done;
    Callback callback;
  };
  struct Peer {
    Fd fd;
    std::deque<Pending> sends;
    std::deque<Pending> recvs;
  };
  // Moves as many bytes as the sockets take now; returns true if anything moved.
  bool progress_send(int peer, const std::string& op);
  bool progress_recv(int peer, const std::string& op);
  void check_peer(int peer, const char* what) const;

  int rank_;
  int abort_fd_;
  bool broken_ = false;
  std::vector<Peer> peers_;
};

}  // namespace flagstone::comm
