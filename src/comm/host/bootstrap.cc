// The rendezvous server and the mesh connect of the host transport.
#include "bootstrap.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <thread>

namespace flagstone::comm {

namespace {

// Reply of the rendezvous server, followed by nranks PeerInfo when status == fsSuccess.
struct Reply {
  int32_t status = fsSuccess;
  char message[256] = {};
};

// First bytes on every mesh connection, so a stray or stale connection is rejected.
struct MeshHello {
  uint64_t magic = 0;
  int32_t rank = -1;
  int32_t pad = 0;
};

uint64_t random_magic() {
  std::random_device device;
  uint64_t value = (uint64_t{device()} << 32) ^ device();
  return value ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
         (uint64_t(::getpid()) << 17);
}

void copy_text(char* dst, size_t capacity, const std::string& text) {
  std::snprintf(dst, capacity, "%s", text.c_str());
}

// Serves one rendezvous: collects nranks registrations, checks them, answers everyone.
void serve(Fd listener, uint64_t magic, int64_t timeout_ms) {
  try {
    Deadline deadline = Deadline::after_ms(timeout_ms);
    std::vector<Fd> clients;
    std::vector<PeerInfo> infos;
    std::string problem;
    int nranks = -1;
    while (nranks < 0 || static_cast<int>(infos.size()) < nranks) {
      std::string ip;
      Fd client = accept_tcp(listener.get(), deadline, -1, &ip, "rendezvous server");
      PeerInfo info;
      try {
        recv_all(client.get(), &info, sizeof(info), Deadline::after_ms(10000), -1, "registrant");
      } catch (const CommError&) {
        continue;  // a port scanner or a dead rank: not a registration
      }
      if (info.magic != magic) continue;  // someone else's communicator
      copy_text(info.ip, sizeof(info.ip), ip);
      if (nranks < 0) nranks = info.nranks;
      if (problem.empty()) {
        if (info.nranks != nranks) {
          problem = detail::concat("rank ", info.rank, " says nranks=", info.nranks, " but rank ",
                                   infos.front().rank, " says nranks=", nranks);
        } else if (info.rank < 0 || info.rank >= nranks) {
          problem = detail::concat("rank ", info.rank, " is outside [0, ", nranks, ")");
        } else {
          for (const PeerInfo& other : infos)
            if (other.rank == info.rank)
              problem = detail::concat("two processes registered as rank ", info.rank, " (pids ",
                                       other.pid, " and ", info.pid, ")");
        }
      }
      infos.push_back(info);
      clients.push_back(std::move(client));
      if (!problem.empty()) break;
    }
    Reply reply;
    std::vector<PeerInfo> table(nranks > 0 ? nranks : 0);
    if (!problem.empty()) {
      reply.status = fsInvalidArgument;
      copy_text(reply.message, sizeof(reply.message), "bootstrap: " + problem);
    } else {
      for (const PeerInfo& info : infos) table[info.rank] = info;
    }
    for (Fd& client : clients) {
      try {
        Deadline send_deadline = Deadline::after_ms(10000);
        send_all(client.get(), &reply, sizeof(reply), send_deadline, -1, "registrant");
        if (reply.status == fsSuccess)
          send_all(client.get(), table.data(), table.size() * sizeof(PeerInfo), send_deadline, -1,
                   "registrant");
      } catch (const CommError&) {
        // That rank died during bootstrap; the others will find out when they connect to it.
      }
    }
  } catch (const std::exception&) {
    // Timed out waiting for registrations: the ranks that did register time out on their own.
  }
}

}  // namespace

UniqueIdParts parse_unique_id(const fsUniqueId& id) {
  std::string text(id.internal, strnlen(id.internal, sizeof(id.internal)));
  UniqueIdParts parts;
  size_t last = text.rfind(':');
  size_t mid =
      last == std::string::npos || last == 0 ? std::string::npos : text.rfind(':', last - 1);
  if (mid == std::string::npos)
    fail(fsInvalidArgument, "unique id '", text, "' is not of the form host:port:magic");
  parts.host = text.substr(0, mid);
  std::string port = text.substr(mid + 1, last - mid - 1);
  std::string magic = text.substr(last + 1);
  char* end = nullptr;
  unsigned long port_value = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || port_value == 0 || port_value > 65535)
    fail(fsInvalidArgument, "unique id '", text, "' has a bad port '", port, "'");
  unsigned long long magic_value = std::strtoull(magic.c_str(), &end, 16);
  if (magic.empty() || *end)
    fail(fsInvalidArgument, "unique id '", text, "' has a bad magic '", magic, "'");
  if (parts.host.empty()) fail(fsInvalidArgument, "unique id '", text, "' has no host");
  parts.port = static_cast<uint16_t>(port_value);
  parts.magic = magic_value;
  return parts;
}

fsUniqueId make_unique_id(const UniqueIdParts& parts) {
  fsUniqueId id;
  std::memset(&id, 0, sizeof(id));
  std::snprintf(id.internal, sizeof(id.internal), "%s:%u:%016llx", parts.host.c_str(),
                static_cast<unsigned>(parts.port), static_cast<unsigned long long>(parts.magic));
  return id;
}

fsUniqueId start_rendezvous(uint16_t port, int64_t timeout_ms, uint64_t magic) {
  uint16_t bound = 0;
  Fd listener = listen_tcp(port, &bound);
  UniqueIdParts parts{local_address(), bound, magic ? magic : random_magic()};
  std::thread(serve, std::move(listener), parts.magic, timeout_ms).detach();
  return make_unique_id(parts);
}

std::vector<PeerInfo> rendezvous(const fsUniqueId& id, PeerInfo self, const Deadline& deadline,
                                 int abort_fd) {
  UniqueIdParts parts = parse_unique_id(id);
  self.magic = parts.magic;
  std::string what = detail::concat("bootstrap of rank ", self.rank, " with the root at ",
                                    parts.host, ":", parts.port);
  Fd fd = connect_tcp(parts.host, parts.port, deadline, abort_fd, what);
  send_all(fd.get(), &self, sizeof(self), deadline, abort_fd, what);
  Reply reply;
  recv_all(fd.get(), &reply, sizeof(reply), deadline, abort_fd, what);
  reply.message[sizeof(reply.message) - 1] = '\0';
  if (reply.status != fsSuccess) fail(static_cast<fsResult_t>(reply.status), reply.message);
  std::vector<PeerInfo> table(self.nranks);
  recv_all(fd.get(), table.data(), table.size() * sizeof(PeerInfo), deadline, abort_fd, what);
  return table;
}

std::vector<Fd> connect_mesh(const std::vector<PeerInfo>& peers, int rank, int listener,
                             uint64_t magic, const Deadline& deadline, int abort_fd) {
  int nranks = static_cast<int>(peers.size());
  std::vector<Fd> fds(nranks);
  for (int peer = 0; peer < rank; ++peer) {
    std::string what = detail::concat("rank ", rank, " connecting to rank ", peer, " at ",
                                      peers[peer].ip, ":", peers[peer].port);
    fds[peer] = connect_tcp(peers[peer].ip, peers[peer].port, deadline, abort_fd, what);
    MeshHello hello{magic, rank, 0};
    send_all(fds[peer].get(), &hello, sizeof(hello), deadline, abort_fd, what);
  }
  for (int accepted = 0; accepted < nranks - 1 - rank;) {
    std::string what =
        detail::concat("rank ", rank, " waiting for connections from ranks > ", rank);
    Fd fd = accept_tcp(listener, deadline, abort_fd, nullptr, what);
    MeshHello hello;
    try {
      recv_all(fd.get(), &hello, sizeof(hello), deadline, abort_fd, what);
    } catch (const CommError& error) {
      if (error.code() != fsRemoteError) throw;
      continue;
    }
    if (hello.magic != magic || hello.rank <= rank || hello.rank >= nranks ||
        fds[hello.rank].valid())
      continue;  // not one of ours
    fds[hello.rank] = std::move(fd);
    ++accepted;
  }
  return fds;
}

uint64_t this_host_hash() {
  std::string key = host_name();
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  if (boot >> boot_id) key += boot_id;
  return std::hash<std::string>{}(key);
}

}  // namespace flagstone::comm
