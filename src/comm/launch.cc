// `flagstone launch` engine: fork/exec of N ranks with the bootstrap environment, line-wise
// output forwarding from pipes, and a clean stop of everyone when one rank fails.
#include "flagstone/comm/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "flagstone/base/error.h"
#include "flagstone/comm.h"

extern char** environ;

namespace flagstone::comm {

namespace {

using Clock = std::chrono::steady_clock;

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    FS_CHECK(::access(program.c_str(), X_OK) == 0, kNotFound, "launch: program '", program,
             "' does not exist or is not executable");
    return program;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    struct stat info;
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  throw_error(ErrorCategory::kNotFound, "launch: program '", program, "' is not in PATH");
}

struct Child {
  pid_t pid = -1;
  int out = -1, err = -1;
  std::string out_partial, err_partial;
  bool exited = false;
  // The poll round in which one of its pipes first hung up (-1: not yet): a rank's pipes close
  // when it exits, so this orders exits that one reaping sweep finds together.
  int64_t hangup_round = -1;
  RankExit exit;
};

// Reads what the pipe has now; `final` also gives up on a pipe that is empty but still open
// (held by a grandchild of an exited rank).
void drain(Child& child, int& fd, std::string& partial, bool is_stderr, int rank,
           const LineSink& sink, bool final = false) {
  char buffer[8192];
  ssize_t got = ::read(fd, buffer, sizeof(buffer));
  if (got <= 0) {
    if (got < 0 && (errno == EAGAIN || errno == EINTR) && !final) return;
    if (!partial.empty()) sink(rank, is_stderr, partial);
    partial.clear();
    ::close(fd);
    fd = -1;
    return;
  }
  partial.append(buffer, static_cast<size_t>(got));
  size_t begin = 0;
  for (size_t newline; (newline = partial.find('\n', begin)) != std::string::npos;
       begin = newline + 1)
    sink(rank, is_stderr, std::string_view(partial).substr(begin, newline - begin));
  partial.erase(0, begin);
  (void)child;
}

}  // namespace

std::string describe_exit(const RankExit& exit) {
  std::string text =
      "rank " + std::to_string(exit.rank) + " (pid " + std::to_string(exit.pid) + ")";
  if (exit.signal)
    text += " was killed by signal " + std::to_string(exit.signal) + " (" +
            ::strsignal(exit.signal) + ")";
  else
    text += " exited with code " + std::to_string(exit.exit_code);
  if (exit.stopped_by_launcher) text += " after the launcher stopped it";
  return text;
}

LaunchResult launch(const LaunchOptions& options, const LineSink& sink) {
  FS_CHECK(options.nranks >= 1 && options.nranks <= 1024, kInvalidArgument,
           "launch: -n must be in [1, 1024], got ", options.nranks);
  FS_CHECK(!options.command.empty(), kInvalidArgument,
           "launch: no program given (usage: flagstone launch -n N -- PROGRAM ARGS)");
  std::string program = find_program(options.command[0]);
  fsUniqueId id;
  char id_text[FS_UNIQUE_ID_BYTES];
  if (fsGetUniqueId(&id) != fsSuccess || fsUniqueIdToString(&id, id_text, sizeof(id_text)))
    throw_error(ErrorCategory::kIo, "launch: cannot start the rendezvous: ", fsGetLastError());

  std::map<std::string, std::string> base;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) base[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : options.env) base[key] = value;

  std::vector<Child> children(options.nranks);
  auto stop_all = [&](int sig) {
    for (Child& c : children)
      if (c.pid > 0 && !c.exited) ::kill(c.pid, sig);
  };
  for (int rank = 0; rank < options.nranks; ++rank) {
    std::map<std::string, std::string> vars = base;
    vars["FLAGSTONE_RANK"] = std::to_string(rank);
    vars["FLAGSTONE_LOCAL_RANK"] = std::to_string(rank);
    vars["FLAGSTONE_WORLD_SIZE"] = std::to_string(options.nranks);
    vars["FLAGSTONE_COMM_ID"] = id_text;
    vars["FLAGSTONE_DEVICE"] =
        options.devices.empty() ? "cpu" : options.devices[rank % options.devices.size()];
    std::vector<std::string> strings;
    for (const auto& [key, value] : vars) strings.push_back(key + "=" + value);
    std::vector<char*> envp, argv;
    for (std::string& s : strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    for (const std::string& arg : options.command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      stop_all(SIGKILL);
      throw_error(ErrorCategory::kIo, "launch: pipe failed: ", std::strerror(errno));
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      stop_all(SIGKILL);
      throw_error(ErrorCategory::kIo, "launch: fork failed: ", std::strerror(errno));
    }
    if (pid == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execve(program.c_str(), argv.data(), envp.data());
      const char* message = "flagstone launch: exec failed\n";
      (void)!::write(2, message, std::strlen(message));
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    ::fcntl(out[0], F_SETFL, O_NONBLOCK);
    ::fcntl(err[0], F_SETFL, O_NONBLOCK);
    children[rank].pid = pid;
    children[rank].out = out[0];
    children[rank].err = err[0];
    children[rank].exit.rank = rank;
    children[rank].exit.pid = pid;
  }

  LaunchResult result;
  auto start = Clock::now();
  Clock::time_point kill_at = Clock::time_point::max();
  bool stopping = false;
  int running = options.nranks;
  int64_t round = 0;
  while (running > 0) {
    std::vector<pollfd> polls;
    std::vector<std::pair<int, bool>> owners;
    for (int r = 0; r < options.nranks; ++r) {
      if (children[r].out >= 0) {
        polls.push_back({children[r].out, POLLIN, 0});
        owners.push_back({r, false});
      }
      if (children[r].err >= 0) {
        polls.push_back({children[r].err, POLLIN, 0});
        owners.push_back({r, true});
      }
    }
    // Short poll: children are reaped in this loop too (a rank's pipes may be inherited by
    // its own children and stay open after it exits).
    ::poll(polls.data(), polls.size(), 50);
    ++round;
    for (size_t i = 0; i < polls.size(); ++i) {
      if (!polls[i].revents) continue;
      Child& c = children[owners[i].first];
      if ((polls[i].revents & POLLHUP) && c.hangup_round < 0) c.hangup_round = round;
      if (owners[i].second)
        drain(c, c.err, c.err_partial, true, owners[i].first, sink);
      else
        drain(c, c.out, c.out_partial, false, owners[i].first, sink);
    }
    // Reap; of the ranks that failed since the last sweep, the first is the one whose pipes hung
    // up first (a rank that dies makes its peers fail within microseconds, often before this
    // sweep, so rank order alone would blame a survivor).
    Child* first_failed = nullptr;
    for (Child& c : children) {
      if (c.exited) continue;
      int status = 0;
      if (::waitpid(c.pid, &status, WNOHANG) != c.pid) continue;
      c.exited = true;
      --running;
      if (WIFEXITED(status)) c.exit.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) {
        c.exit.signal = WTERMSIG(status);
        c.exit.exit_code = 128 + c.exit.signal;
      }
      c.exit.stopped_by_launcher = stopping;
      if (c.exit.exit_code == 0 || stopping) continue;
      auto hung = [](const Child& x) { return x.hangup_round < 0 ? INT64_MAX : x.hangup_round; };
      if (!first_failed || hung(c) < hung(*first_failed)) first_failed = &c;
    }
    if (first_failed) {
      result.first_failed_rank = first_failed->exit.rank;
      result.exit_code = first_failed->exit.exit_code;
      stopping = true;
      stop_all(SIGTERM);
      kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options.grace_s));
    }
    auto now = Clock::now();
    if (!stopping && options.timeout_s > 0 &&
        now - start > std::chrono::duration<double>(options.timeout_s)) {
      result.timed_out = true;
      result.exit_code = 124;
      stopping = true;
      stop_all(SIGTERM);
      kill_at = now + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(options.grace_s));
    }
    if (stopping && now >= kill_at) stop_all(SIGKILL);
  }
  for (Child& c : children) {
    // Flush what is left in the pipes of exited ranks.
    while (c.out >= 0) drain(c, c.out, c.out_partial, false, c.exit.rank, sink, true);
    while (c.err >= 0) drain(c, c.err, c.err_partial, true, c.exit.rank, sink, true);
    result.ranks.push_back(c.exit);
  }
  return result;
}

}  // namespace flagstone::comm
