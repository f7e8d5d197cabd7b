// The host transport between two ranks on threads of one process, over a real loopback TCP
// connection with shared-memory rings: how a rank reads a peer that has already finished and gone.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "host/socket.h"
#include "host/transport.h"

namespace fc = flagstone::comm;

namespace {

struct RankPair {
  std::unique_ptr<fc::Transport> rank0, rank1;
  int rank1_socket = -1;  // rank 1's end of the connection, for writing stray doorbells
};

RankPair connect_pair(size_t ring_bytes) {
  uint16_t port = 0;
  fc::Fd listener = fc::listen_tcp(0, &port);
  fc::Deadline deadline = fc::Deadline::after_ms(10000);
  fc::Fd client = fc::connect_tcp("127.0.0.1", port, deadline, -1, "rank 0");
  std::string ip;
  fc::Fd server = fc::accept_tcp(listener.get(), deadline, -1, &ip, "rank 1");
  fc::set_nonblocking(client.get());
  fc::set_nonblocking(server.get());
  RankPair pair;
  pair.rank1_socket = client.get();
  std::vector<fc::Fd> fds0, fds1;
  fds0.emplace_back();
  fds0.push_back(std::move(server));
  fds1.push_back(std::move(client));
  fds1.emplace_back();
  pair.rank0 = std::make_unique<fc::Transport>(0, std::move(fds0), -1);
  pair.rank1 = std::make_unique<fc::Transport>(1, std::move(fds1), -1);
  // The segment's name comes from the magic: one per pair, so that rounds and other processes
  // running this test never meet a name still in use.
  static std::atomic<uint64_t> pairs_made{0};
  uint64_t magic = (static_cast<uint64_t>(::getpid()) << 32) | pairs_made.fetch_add(1);
  std::thread other([&] { pair.rank1->enable_shm({true, true}, magic, ring_bytes, deadline); });
  int pairs = pair.rank0->enable_shm({true, true}, magic, ring_bytes, deadline);
  other.join();
  EXPECT_EQ(pairs, 1) << "shared memory could not be set up";
  return pair;
}

}  // namespace

// A rank that finishes with doorbells of its peer still unread closes with a reset (RST), not an
// orderly end. Its last bytes are already in the ring, so the peer must still receive them: a
// reset says the peer has gone, no more (a CI run once failed a broadcast on exactly this).
TEST(HostTransport, PeerThatClosesWithUnreadDoorbellsStillDeliversItsLastBytes) {
  constexpr size_t kBytes = 4096;
  std::vector<uint8_t> sent(kBytes);
  std::iota(sent.begin(), sent.end(), uint8_t{7});
  // The reset has to land while the receiver sleeps between its doorbell and its next read, so
  // one round may miss the window: many rounds make a regression fail reliably.
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    RankPair pair = connect_pair(1 << 16);
    std::vector<uint8_t> received(kBytes, 0);
    std::exception_ptr failure;
    std::thread receiver([&] {
      try {
        pair.rank1->recv(0, received.data(), kBytes);
        pair.rank1->wait(fc::Deadline::after_ms(10000), "test-recv");
      } catch (...) {
        failure = std::current_exception();
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the receiver sleeps in poll()
    // A doorbell from rank 1 that rank 0 never reads: closing then sends a reset.
    char stray = 1;
    ASSERT_EQ(::send(pair.rank1_socket, &stray, 1, MSG_NOSIGNAL), 1);
    pair.rank0->send(1, sent.data(), kBytes);
    pair.rank0->wait(fc::Deadline::after_ms(10000), "test-send");
    pair.rank0.reset();
    receiver.join();
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        FAIL() << "the receiver failed: " << e.what();
      }
    }
    EXPECT_EQ(received, sent);
  }
}

// A peer that is gone before sending what was expected is still an error naming that peer.
TEST(HostTransport, PeerThatClosesWithoutSendingIsAnErrorNamingIt) {
  RankPair pair = connect_pair(1 << 16);
  char stray = 1;
  ASSERT_EQ(::send(pair.rank1_socket, &stray, 1, MSG_NOSIGNAL), 1);
  std::this_thread::sleep_for(std::chrono::microseconds(200));
  pair.rank0.reset();
  std::vector<uint8_t> received(64);
  pair.rank1->recv(0, received.data(), received.size());
  try {
    pair.rank1->wait(fc::Deadline::after_ms(10000), "test-recv");
    FAIL() << "receiving from a closed peer succeeded";
  } catch (const std::exception& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("rank 1 lost its connection to rank 0"), std::string::npos) << message;
  }
}
