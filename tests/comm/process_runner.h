// Starts N rank processes of a test worker with the launch environment (rank, size, comm id,
// device), collects each one's output and exit status, and kills them all at a deadline.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "flagstone/comm.h"

extern char** environ;

namespace flagstone::comm::testing {

struct RankResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string output;
};

inline std::vector<RankResult> run_ranks(const std::string& worker, const std::string& scenario,
                                         int n, const std::vector<std::string>& devices,
                                         const std::map<std::string, std::string>& env,
                                         double timeout_s) {
  fsUniqueId id;
  char id_text[FS_UNIQUE_ID_BYTES];
  if (fsGetUniqueId(&id) != fsSuccess || fsUniqueIdToString(&id, id_text, sizeof(id_text)))
    return {};
  std::vector<pid_t> pids(n);
  std::vector<int> fds(n);
  for (int rank = 0; rank < n; ++rank) {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e; ++e) {
      std::string entry(*e);
      size_t eq = entry.find('=');
      if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    for (const auto& [key, value] : env) vars[key] = value;
    vars["FLAGSTONE_RANK"] = std::to_string(rank);
    vars["FLAGSTONE_WORLD_SIZE"] = std::to_string(n);
    vars["FLAGSTONE_COMM_ID"] = id_text;
    vars["FLAGSTONE_DEVICE"] = devices.empty() ? "cpu" : devices[rank % devices.size()];
    vars["FLAGSTONE_NUM_THREADS"] = "1";
    std::vector<std::string> strings;
    for (const auto& [key, value] : vars) strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (std::string& s : strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<char*> argv = {const_cast<char*>(worker.c_str()),
                               const_cast<char*>(scenario.c_str()), nullptr};
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return {};
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(pipe_fds[1], 1);
      ::dup2(pipe_fds[1], 2);
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      ::execve(worker.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    pids[rank] = pid;
    fds[rank] = pipe_fds[0];
  }
  std::vector<RankResult> results(n);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int open = n;
  bool timed_out = false;
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    std::vector<pollfd> polls;
    std::vector<int> owners;
    for (int r = 0; r < n; ++r)
      if (fds[r] >= 0) {
        polls.push_back({fds[r], POLLIN, 0});
        owners.push_back(r);
      }
    if (::poll(polls.data(), polls.size(), static_cast<int>(left)) <= 0) continue;
    for (size_t i = 0; i < polls.size(); ++i) {
      if (!polls[i].revents) continue;
      char chunk[4096];
      ssize_t got = ::read(polls[i].fd, chunk, sizeof(chunk));
      if (got > 0) {
        results[owners[i]].output.append(chunk, static_cast<size_t>(got));
      } else {
        ::close(fds[owners[i]]);
        fds[owners[i]] = -1;
        --open;
      }
    }
  }
  for (int r = 0; r < n; ++r) {
    if (timed_out) ::kill(pids[r], SIGKILL);
    if (fds[r] >= 0) ::close(fds[r]);
    int status = 0;
    ::waitpid(pids[r], &status, 0);
    results[r].timed_out = timed_out;
    if (WIFEXITED(status)) results[r].exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) results[r].signal = WTERMSIG(status);
  }
  return results;
}

}  // namespace flagstone::comm::testing
