// The algorithm tuner on two in-process ranks (threads): stored choices are loaded per topology
// and used, the user's override wins, and tuning measures every candidate and stores the fastest.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "flagstone/comm/communicator.h"
#include "flagstone/comm/tuning.h"

namespace fc = flagstone::comm;

namespace {

class Tuner : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("flagstone-tuner-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ::setenv("FLAGSTONE_CACHE_DIR", dir_.c_str(), 1);
    ::unsetenv("FLAGSTONE_COMM_ALGO");
    ::unsetenv("FLAGSTONE_COMM_TUNE");
  }
  void TearDown() override {
    ::unsetenv("FLAGSTONE_CACHE_DIR");
    std::filesystem::remove_all(dir_);
  }
  // Runs body(comm) on two ranks of a fresh communicator, one thread each.
  void on_two_ranks(const std::function<void(fc::Communicator&)>& body,
                    const fc::CommOptions& options = {}) {
    fsUniqueId id = fc::Communicator::unique_id();
    std::string errors[2];
    auto rank_main = [&](int rank) {
      try {
        fc::Communicator comm = fc::Communicator::init(2, id, rank, options);
        body(comm);
      } catch (const std::exception& error) {
        errors[rank] = error.what();
      }
    };
    std::thread other(rank_main, 1);
    rank_main(0);
    other.join();
    EXPECT_EQ(errors[0], "");
    EXPECT_EQ(errors[1], "");
  }
  std::string file_text() {
    std::ifstream file(fc::tuning_file_path());
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  std::filesystem::path dir_;
};

TEST_F(Tuner, FileLivesInTheCacheDir) {
  EXPECT_EQ(fc::tuning_file_path(), (dir_ / "comm_tuning.txt").string());
}

TEST_F(Tuner, StoredChoicesAreUsedForTheirTopologyAndBucket) {
  {
    std::ofstream file(dir_ / "comm_tuning.txt");
    // 65536..131071 bytes of all-reduce on two cpu ranks of one host over shm: tree; the same
    // bucket on another topology must not leak in.
    file << "allreduce.n2.h1.cpu2.shm.b16 tree\n"
         << "allgather.n2.h1.cpu2.shm.b12 direct\n"
         << "allreduce.n4.h1.cpu4.shm.b16 rhd\n"
         << "broadcast.n2.h1.cpu2.shm.b10 bogus-algorithm\n";
  }
  on_two_ranks([](fc::Communicator& comm) {
    EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 65536), "tree");
    EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 131071), "tree");
    EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 131072), "auto");
    EXPECT_EQ(fc::algorithm_for(comm, "allgather", 4096), "direct");
    EXPECT_EQ(fc::algorithm_for(comm, "broadcast", 1024), "auto");  // damaged line ignored
    // The stored choice runs and still computes the right sum.
    std::vector<float> send(20000, static_cast<float>(comm.rank() + 1)), recv(20000);
    comm.all_reduce<float>(send, recv, fsSum);
    EXPECT_EQ(recv[0], 3.0f);
    EXPECT_EQ(recv[19999], 3.0f);
  });
}

TEST_F(Tuner, UserOverrideWins) {
  {
    std::ofstream file(dir_ / "comm_tuning.txt");
    file << "allreduce.n2.h1.cpu2.shm.b16 tree\n";
  }
  fc::CommOptions options;
  options.algo = "ring";
  on_two_ranks(
      [](fc::Communicator& comm) {
        EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 65536), "ring");
      },
      options);
}

TEST_F(Tuner, TuningStoresTheFastestCandidate) {
  std::vector<fc::AlgoTiming> timings[2];
  on_two_ranks([&](fc::Communicator& comm) {
    timings[comm.rank()] = fc::tune_algorithms(comm, "allreduce", 4096);
    // Everyone agrees on the choice right away.
    std::string chosen = fc::algorithm_for(comm, "allreduce", 4096);
    const fc::AlgoTiming* best = &timings[comm.rank()].front();
    for (const fc::AlgoTiming& t : timings[comm.rank()])
      if (t.seconds < best->seconds) best = &t;
    EXPECT_EQ(chosen, best->algo);
  });
  ASSERT_EQ(timings[0].size(), 3u);  // ring, rhd, tree
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GT(timings[0][i].seconds, 0.0);
    EXPECT_EQ(timings[0][i].seconds, timings[1][i].seconds);  // the slowest rank's figure
  }
  std::string text = file_text();
  EXPECT_NE(text.find("allreduce.n2.h1.cpu2.shm.b12 "), std::string::npos) << text;
  // A new communicator of the same topology picks it up from the file.
  std::string stored = text.substr(text.find("b12 ") + 4);
  stored = stored.substr(0, stored.find('\n'));
  on_two_ranks([&](fc::Communicator& comm) {
    EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 4096), stored);
  });
}

TEST_F(Tuner, FirstUseTuningWhenAsked) {
  ::setenv("FLAGSTONE_COMM_TUNE", "1", 1);
  on_two_ranks([](fc::Communicator& comm) {
    EXPECT_EQ(fc::algorithm_for(comm, "allreduce", 2048), "auto");
    std::vector<int32_t> send(512, comm.rank() + 1), recv(512);
    comm.all_reduce<int32_t>(send, recv, fsSum);  // tunes bucket b11 first, then runs
    EXPECT_EQ(recv[511], 3);
    EXPECT_NE(fc::algorithm_for(comm, "allreduce", 2048), "auto");
  });
  ::unsetenv("FLAGSTONE_COMM_TUNE");
  EXPECT_NE(file_text().find("allreduce.n2.h1.cpu2.shm.b11 "), std::string::npos) << file_text();
}

TEST_F(Tuner, UnknownOpIsRejected) {
  on_two_ranks([](fc::Communicator& comm) {
    EXPECT_THROW(fc::algorithm_for(comm, "alltoall", 64), flagstone::Error);
  });
}

}  // namespace
