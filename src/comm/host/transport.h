// The host transport: one TCP connection per peer, and a progress engine that moves every queued
// send and receive at once (so ring steps and grouped send/recv cannot deadlock) until a deadline.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shm.h"
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
  // Moves the data of peers on this host (same_host[r]) to shared-memory rings of `ring_bytes`
  // per direction; their TCP sockets stay as doorbells and death detectors. Collective over
  // the ranks; a pair whose segment cannot be made keeps TCP. Returns the pairs on shm.
  int enable_shm(const std::vector<bool>& same_host, uint64_t magic, size_t ring_bytes,
                 const Deadline& deadline);
  bool uses_shm(int peer) const { return peers_[peer].tx.valid(); }
  // Shuts every connection down so blocked peers see the failure at once.
  void shutdown_all() noexcept;
  bool broken() const { return broken_; }
  // Microseconds wait() keeps polling the shared-memory rings before it sleeps in poll(): waking
  // a sleeping rank costs a doorbell and a scheduler round trip per step, which dominates the
  // pipelined ring when every rank has a core of its own. 0 sleeps at once (oversubscribed).
  void set_spin_us(int64_t spin_us) { spin_us_ = spin_us; }
  int64_t spin_us() const { return spin_us_; }
  int abort_fd() const { return abort_fd_; }
  // For a peer on shared memory, outside wait(): swallows its doorbells and says whether its
  // connection is closed (it died, aborted or failed). Never blocks.
  bool peer_gone(int peer);

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
    std::unique_ptr<ShmPair> shm;
    ShmRing tx, rx;    // valid when this peer's data goes through shared memory
    bool eof = false;  // its socket closed: what is left in the rings is all there will be
  };
  // Moves the queued sends (or receives) of a shared-memory peer through its ring.
  bool shm_move(int peer, bool sending);
  void doorbell(int peer);
  // Before sleeping: raise the waiting flags; true if the ring became ready meanwhile.
  bool arm_shm(int peer);
  void drain_doorbells(int peer, const std::string& op);
  // Moves as many bytes as the sockets take now; returns true if anything moved.
  bool progress_send(int peer, const std::string& op);
  bool progress_recv(int peer, const std::string& op);
  void check_peer(int peer, const char* what) const;

  int rank_;
  int abort_fd_;
  bool broken_ = false;
  int64_t spin_us_ = 0;
  std::vector<Peer> peers_;
};

}  // namespace flagstone::comm
