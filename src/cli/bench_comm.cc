// `flagstone bench comm`: an nccl-tests-style table (size, count, type, redop, time, algbw,
// busbw) of our collectives, with Open MPI's MPI_Allreduce measured on the same ranks when the
// ranks run under mpirun. Started without ranks, it launches itself (under mpirun if present).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "commands.h"
#include "flagstone/comm/communicator.h"
#include "flagstone/comm/launch.h"
#include "flagstone/comm/nccl_peer.h"
#include "flagstone/comm/tuning.h"
#include "flagstone/runtime/device.h"

namespace flagstone::cli {
namespace {

struct BenchArgs {
  std::string op = "allreduce";
  std::string dtype = "f32";
  std::string redop = "sum";
  std::string min_bytes = "8";
  std::string max_bytes = "64M";
  int factor = 2;
  int iters = 20;
  int warmup = 5;
  int nranks = 4;
  bool json = false;
  bool no_mpi = false;
  bool device_buffers = false;
  bool nccl_peer = false;
  bool tune = false;
};

size_t parse_size(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  std::string unit = end ? end : "";
  double scale = 1;
  if (unit == "K" || unit == "k" || unit == "KiB")
    scale = 1024;
  else if (unit == "M" || unit == "MiB")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    scale = 1024.0 * 1024 * 1024;
  else
    FS_CHECK(unit.empty(), kInvalidArgument, "bench comm: size '", text,
             "' is not a number with an optional K/M/G suffix");
  FS_CHECK(value > 0, kInvalidArgument, "bench comm: size '", text, "' must be positive");
  return static_cast<size_t>(value * scale);
}

fsDataType_t parse_comm_dtype(const std::string& name) {
  static const char* const kNames[] = {"i8",  "u8",  "i32",  "u32", "i64",
                                       "u64", "f16", "bf16", "f32", "f64"};
  for (int i = 0; i < fsNumTypes; ++i)
    if (name == kNames[i]) return static_cast<fsDataType_t>(i);
  throw_error(ErrorCategory::kInvalidArgument, "bench comm: unknown --dtype '", name,
              "' (i8 u8 i32 u32 i64 u64 f16 bf16 f32 f64)");
}

fsRedOp_t parse_redop(const std::string& name) {
  static const char* const kNames[] = {"sum", "prod", "max", "min", "avg"};
  for (int i = 0; i < fsNumOps; ++i)
    if (name == kNames[i]) return static_cast<fsRedOp_t>(i);
  throw_error(ErrorCategory::kInvalidArgument, "bench comm: unknown --redop '", name,
              "' (sum prod max min avg)");
}

size_t dtype_size(fsDataType_t dtype) {
  static const size_t kSizes[] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
  return kSizes[dtype];
}

bool under_launcher() {
  for (const char* name : {"FLAGSTONE_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (std::getenv(name)) return true;
  return false;
}

bool under_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE");
}

// nccl-tests' bus-bandwidth factors: what each rank's link must carry relative to algbw.
double bus_factor(const std::string& op, int n) {
  if (op == "allreduce") return 2.0 * (n - 1) / n;
  if (op == "allgather" || op == "reducescatter" || op == "alltoall") return double(n - 1) / n;
  return 1.0;
}

std::vector<std::string> own_arguments() {
  std::ifstream file("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(file, arg, '\0');) args.push_back(arg);
  return args;
}

// Average seconds per call of `body` over iters, after warmup; the slowest rank's figure.
// The stream is synchronized before the clock stops, so queued device copies (staging) and
// asynchronous engines (NCCL) are inside the measurement.
template <typename Body>
double time_op(const comm::Communicator& comm, const runtime::Stream& stream, int warmup, int iters,
               Body&& body) {
  for (int i = 0; i < warmup; ++i) body();
  stream.synchronize();
  comm.barrier();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) body();
  stream.synchronize();
  double mine =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  double slowest = 0;
  comm.all_reduce(comm::host_buf(&mine), comm::host_buf(&slowest), 1, fsFloat64, fsMax);
  return slowest;
}

// Host<->device copy bandwidth of this rank's device for `bytes` through page-locked memory, in
// GB/s, slowest rank's figure (0 when no rank stages): the bound of a staged collective, since
// its data must cross the link down and back up.
struct CopyBound {
  double h2d_gbps = 0, d2h_gbps = 0;
};

CopyBound measure_copy_bound(const comm::Communicator& comm, const runtime::Device& device,
                             const runtime::Stream& stream, size_t bytes, int iters) {
  double mine[2] = {0, 0};  // seconds per copy, h2d then d2h
  bool staged = !device.is_cpu() && !device.info().caps.host_accessible;
  if (staged) {
    runtime::PinnedHostBuffer host(device, bytes);
    runtime::Buffer dev = runtime::Buffer::allocate(device, bytes);
    std::memset(host.data(), 1, bytes);
    for (int direction = 0; direction < 2; ++direction) {
      auto copy = [&] {
        if (direction == 0)
          runtime::copy_host_to_device(stream, dev, 0, host.data(), bytes);
        else
          runtime::copy_device_to_host(stream, host.data(), dev, 0, bytes);
      };
      copy();
      stream.synchronize();
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) copy();
      stream.synchronize();
      mine[direction] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
    }
  }
  double slowest[2] = {0, 0};
  comm.all_reduce(comm::host_buf(mine), comm::host_buf(slowest), 2, fsFloat64, fsMax);
  CopyBound bound;
  if (slowest[0] > 0) bound.h2d_gbps = bytes / slowest[0] / 1e9;
  if (slowest[1] > 0) bound.d2h_gbps = bytes / slowest[1] / 1e9;
  return bound;
}

// --tune: measures each host algorithm per op and size, stores the winners (used by the rest of
// this run and by later programs on the same topology) and prints the timings.
void tune_sizes(const comm::Communicator& comm, const std::vector<std::string>& ops, size_t lo,
                size_t hi, int factor, bool json) {
  bool header = false;
  for (const std::string& op : ops) {
    if (op != "allreduce" && op != "reduce" && op != "broadcast" && op != "allgather") continue;
    for (size_t bytes = std::max<size_t>(lo, 4); bytes <= hi; bytes *= std::max(2, factor)) {
      std::vector<comm::AlgoTiming> timings = comm::tune_algorithms(comm, op, bytes);
      if (comm.rank() != 0 || json || timings.empty()) continue;
      if (!header) {
        std::printf("# tuning (stored in %s)\n# %-13s %12s  algorithm times (us)  -> choice\n",
                    comm::tuning_file_path().c_str(), "op", "size(B)");
        header = true;
      }
      std::printf("  %-13s %12zu ", op.c_str(), bytes);
      const comm::AlgoTiming* best = &timings.front();
      for (const comm::AlgoTiming& timing : timings) {
        std::printf(" %s %.2f", timing.algo.c_str(), timing.seconds * 1e6);
        if (timing.seconds < best->seconds) best = &timing;
      }
      std::printf("  -> %s\n", best->algo.c_str());
      std::fflush(stdout);
    }
  }
}

void run_ranks(const BenchArgs& args) {
  fsDataType_t dtype = parse_comm_dtype(args.dtype);
  fsRedOp_t redop = parse_redop(args.redop);
  size_t esize = dtype_size(dtype);
  comm::Communicator comm = comm::Communicator::from_env();
  comm::Communicator mpi;
  bool with_mpi =
      !args.no_mpi && under_mpirun() && args.op == "allreduce" && comm.device() == "cpu:0";
  if (with_mpi) {
    comm::CommOptions options;
    options.engine = "mpi";
    mpi = comm::Communicator::from_env(options);
  }
  int n = comm.size(), rank = comm.rank();
  bool with_nccl = false;
  if (args.nccl_peer) {
    FS_CHECK(args.device_buffers, kInvalidArgument,
             "bench comm: --nccl-peer needs --device-buffers (NCCL works on device memory)");
    with_nccl = comm::nccl_serves_all(comm);
    FS_CHECK(with_nccl, kUnsupported,
             "bench comm: --nccl-peer: not every rank runs on NCCL (each rank needs its own CUDA "
             "GPU, e.g. flagstone launch -n 2 --devices cuda:0,cuda:1, and libnccl.so.2)");
  }
  runtime::Device device = runtime::Device::get(comm.device());
  // Ranks whose device memory is not host memory stage through the host: report the fraction of
  // the copy bound the all-reduce reaches.
  int32_t stages = !device.is_cpu() && !device.info().caps.host_accessible ? 1 : 0, any_stage = 0;
  comm.all_reduce(comm::host_buf(&stages), comm::host_buf(&any_stage), 1, fsInt32, fsMax);
  bool with_bound = args.device_buffers && any_stage && !with_nccl;
  runtime::Stream stream = runtime::Stream::default_stream(device);
  std::vector<std::string> ops;
  if (args.op == "all")
    ops = {"allreduce", "allgather", "reducescatter", "broadcast", "reduce", "alltoall"};
  else
    ops = {args.op};
  size_t lo = parse_size(args.min_bytes), hi = parse_size(args.max_bytes);
  FS_CHECK(lo <= hi, kInvalidArgument, "bench comm: --min-bytes > --max-bytes");
  if (args.tune) tune_sizes(comm, ops, lo, hi, args.factor, args.json);
  nlohmann::json rows = nlohmann::json::array();
  if (rank == 0 && !args.json) {
    std::printf(
        "# flagstone bench comm: %d ranks, rank 0 on %s, %s buffers, dtype %s, redop %s, "
        "%d iters\n",
        n, comm.device().c_str(), args.device_buffers ? "device" : "host", args.dtype.c_str(),
        args.redop.c_str(), args.iters);
    std::printf("# %-13s %12s %12s %6s %6s %11s %9s %9s", "op", "size(B)", "count", "type", "redop",
                "time(us)", "algbw", "busbw");
    if (with_mpi) std::printf(" %11s %9s %7s", "mpi(us)", "mpi-bus", "ratio");
    if (with_nccl) std::printf(" %11s %9s %7s", "nccl(us)", "nccl-bus", "ratio");
    if (with_bound) std::printf(" %8s %8s %7s %7s", "h2d", "d2h", "dup%", "ser%");
    std::printf("\n");
  }
  if (args.tune)
    tune_sizes(comm, ops, parse_size(args.min_bytes), parse_size(args.max_bytes), args.factor,
               args.json);
  for (const std::string& op : ops) {
    FS_CHECK(op == "allreduce" || op == "allgather" || op == "reducescatter" || op == "broadcast" ||
                 op == "reduce" || op == "alltoall",
             kInvalidArgument, "bench comm: unknown --op '", op,
             "' (allreduce allgather reducescatter broadcast reduce alltoall all)");
    for (size_t bytes = std::max(lo, esize); bytes <= hi; bytes *= std::max(2, args.factor)) {
      // size is the total buffer size as nccl-tests reports it.
      size_t count = bytes / esize;
      bool blocked = op == "allgather" || op == "reducescatter" || op == "alltoall";
      if (blocked) count = std::max<size_t>(1, count / n);
      size_t total = blocked ? count * n : count;
      std::vector<char> send(total * esize + 1, 1), recv(total * esize + 1);
      fsBuf s = comm::host_buf(send.data()), r = comm::host_buf(recv.data());
      runtime::Buffer dsend, drecv;
      if (args.device_buffers) {
        // Buffers in the rank's device memory: staging or the native engine is then measured.
        dsend = runtime::Buffer::allocate(device, send.size());
        drecv = runtime::Buffer::allocate(device, recv.size());
        runtime::copy_host_to_device(stream, dsend, 0, send.data(), send.size());
        s = comm::device_buf(dsend);
        r = comm::device_buf(drecv);
      }
      auto body = [&] {
        if (op == "allreduce")
          comm.all_reduce(s, r, count, dtype, redop);
        else if (op == "allgather")
          comm.all_gather(s, r, count, dtype);
        else if (op == "reducescatter")
          comm.reduce_scatter(s, r, count, dtype, redop);
        else if (op == "broadcast")
          comm.broadcast(s, r, count, dtype, 0);
        else if (op == "reduce")
          comm.reduce(s, r, count, dtype, redop, 0);
        else
          comm.all_to_all(s, r, count, dtype);
      };
      double t = time_op(comm, stream, args.warmup, args.iters, body);
      double size = static_cast<double>(total * esize);
      double algbw = size / t / 1e9, busbw = algbw * bus_factor(op, n);
      nlohmann::json row = {{"op", op},
                            {"size", total * esize},
                            {"count", count},
                            {"type", args.dtype},
                            {"redop", args.redop},
                            {"time_us", t * 1e6},
                            {"algbw_gbps", algbw},
                            {"busbw_gbps", busbw},
                            {"nranks", n}};
      double tm = 0, mpi_bus = 0;
      if (with_mpi) {
        tm = time_op(comm, stream, args.warmup, args.iters,
                     [&] { mpi.all_reduce(s, r, count, dtype, redop); });
        mpi_bus = size / tm / 1e9 * bus_factor(op, n);
        row["mpi_time_us"] = tm * 1e6;
        row["mpi_busbw_gbps"] = mpi_bus;
        row["busbw_ratio_vs_mpi"] = tm / t;
      }
      double tn = 0, nccl_bus = 0;
      if (with_nccl) {
        const void* ds = static_cast<char*>(dsend.handle());
        void* dr = drecv.handle();
        tn = time_op(comm, stream, args.warmup, args.iters,
                     [&] { comm::nccl_direct(comm, op, ds, dr, count, dtype, redop, stream); });
        nccl_bus = size / tn / 1e9 * bus_factor(op, n);
        row["nccl_time_us"] = tn * 1e6;
        row["nccl_busbw_gbps"] = nccl_bus;
        row["busbw_ratio_vs_nccl"] = tn / t;  // = busbw ratio; defined for 1 rank too
      }
      CopyBound bound;
      double dup = 0, ser = 0;
      if (with_bound && op == "allreduce") {
        bound = measure_copy_bound(comm, device, stream, total * esize, std::min(args.iters, 10));
        // Duplex bound: down and up overlap, so the slower direction limits; serial bound: one
        // after the other.
        double dup_gbps = std::min(bound.h2d_gbps, bound.d2h_gbps);
        double ser_gbps = 1.0 / (1.0 / bound.h2d_gbps + 1.0 / bound.d2h_gbps);
        dup = algbw / dup_gbps;
        ser = algbw / ser_gbps;
        row["h2d_gbps"] = bound.h2d_gbps;
        row["d2h_gbps"] = bound.d2h_gbps;
        row["fraction_of_duplex_copy_bound"] = dup;
        row["fraction_of_serial_copy_bound"] = ser;
      }
      if (rank == 0 && !args.json) {
        std::printf("  %-13s %12zu %12zu %6s %6s %11.2f %9.3f %9.3f", op.c_str(), total * esize,
                    count, args.dtype.c_str(),
                    blocked || op == "broadcast" ? "-" : args.redop.c_str(), t * 1e6, algbw, busbw);
        if (with_mpi) std::printf(" %11.2f %9.3f %7.2f", tm * 1e6, mpi_bus, tm / t);
        if (with_nccl) std::printf(" %11.2f %9.3f %7.3f", tn * 1e6, nccl_bus, tn / t);
        if (with_bound && op == "allreduce")
          std::printf(" %8.2f %8.2f %6.1f%% %6.1f%%", bound.h2d_gbps, bound.d2h_gbps, 100 * dup,
                      100 * ser);
        std::printf("\n");
        std::fflush(stdout);
      }
      rows.push_back(row);
    }
  }
  if (rank == 0 && args.json) std::cout << rows.dump(2) << "\n";
}

// Without a launcher: start --nranks copies of this command, under mpirun when it exists so the
// MPI peer can be measured, else with flagstone launch.
void self_launch(const BenchArgs& args) {
  std::vector<std::string> self = own_arguments();
  FS_CHECK(!self.empty(), kInternal, "bench comm: cannot read /proc/self/cmdline");
  self[0] = "/proc/self/exe";
  char exe[4096];
  ssize_t len = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len > 0) self[0] = std::string(exe, static_cast<size_t>(len));
  bool have_mpirun = !args.no_mpi && ::access("/usr/bin/mpirun", X_OK) == 0;
  if (have_mpirun) {
    std::vector<std::string> argv = {"/usr/bin/mpirun", "-n",        std::to_string(args.nranks),
                                     "--oversubscribe", "--bind-to", "none"};
    if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
    argv.insert(argv.end(), self.begin(), self.end());
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    std::fflush(stdout);
    ::execv(raw[0], raw.data());
    throw_error(ErrorCategory::kIo, "bench comm: cannot exec mpirun: ", std::strerror(errno));
  }
  comm::LaunchOptions options;
  options.nranks = args.nranks;
  options.command = self;
  comm::LaunchResult result = comm::launch(options, [](int, bool is_stderr, std::string_view line) {
    FILE* out = is_stderr ? stderr : stdout;
    std::fprintf(out, "%.*s\n", static_cast<int>(line.size()), line.data());
  });
  if (result.exit_code != 0) throw CLI::RuntimeError(result.exit_code);
}

}  // namespace

void register_bench_comm_command(CLI::App& bench) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "comm", "Collective bandwidth per message size, nccl-tests style, vs Open MPI.");
  cmd->add_option("--op", args->op,
                  "allreduce, allgather, reducescatter, broadcast, reduce, alltoall or all")
      ->default_val("allreduce");
  cmd->add_option("-b,--min-bytes", args->min_bytes, "Smallest size (K/M/G suffixes)")
      ->default_val("8");
  cmd->add_option("-e,--max-bytes", args->max_bytes, "Largest size")->default_val("64M");
  cmd->add_option("-f,--factor", args->factor, "Size multiplier between rows")->default_val(2);
  cmd->add_option("-t,--dtype", args->dtype, "Datatype")->default_val("f32");
  cmd->add_option("-o,--redop", args->redop, "Reduction")->default_val("sum");
  cmd->add_option("-n,--iters", args->iters, "Timed iterations per size")
      ->default_val(20)
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("-w,--warmup", args->warmup, "Warm-up iterations")->default_val(5);
  cmd->add_option("--nranks", args->nranks, "Ranks to start when not under a launcher")
      ->default_val(4)
      ->check(CLI::Range(1, 256));
  cmd->add_flag("--no-mpi", args->no_mpi, "Skip the Open MPI peer (and do not use mpirun)");
  cmd->add_flag("--device-buffers", args->device_buffers,
                "Put the buffers in each rank's device memory (FLAGSTONE_DEVICE) instead of host");
  cmd->add_flag("--nccl-peer", args->nccl_peer,
                "Also time the same collective called straight into NCCL on the same communicator "
                "(every rank on its own CUDA GPU; needs --device-buffers) and print our ratio");
  cmd->add_flag("--tune", args->tune,
                "First measure every host algorithm (ring, tree, rhd, direct) per op and size, "
                "store the winners for this topology (FLAGSTONE_CACHE_DIR or ~/.cache/flagstone/"
                "comm_tuning.txt) and use them from then on");
  cmd->add_flag("--json", args->json, "Print JSON rows (rank 0)");
  cmd->footer(
      "time is the slowest rank's average per call; algbw = size / time; busbw = algbw x\n"
      "2(n-1)/n for allreduce, (n-1)/n for allgather/reducescatter/alltoall, 1 otherwise.\n"
      "Started on its own it runs --nranks ranks under mpirun (measuring MPI_Allreduce on the\n"
      "same ranks as the peer) or, without mpirun, under flagstone launch. Examples:\n"
      "  flagstone bench comm --nranks 4 -e 256M\n"
      "  flagstone launch -n 3 --devices cpu,opencl:0 -- flagstone bench comm --op all\n"
      "  flagstone launch -n 2 --devices cuda:0,cuda:1 -- flagstone bench comm --op all \\\n"
      "      --device-buffers --nccl-peer -e 1G\n"
      "  flagstone launch -n 2 --devices cuda:0,cpu -- flagstone bench comm --device-buffers\n"
      "With --device-buffers and a rank whose memory is not host memory, all-reduce rows add the\n"
      "host<->device copy bandwidth measured in the same run (h2d, d2h GB/s) and algbw as a\n"
      "fraction of the serial bound 1/(1/h2d + 1/d2h) (ser%: every byte crosses the link down\n"
      "and back up once; the issue's target) and of the duplex bound min(h2d, d2h) (dup%: both\n"
      "directions fully overlapped, the hardware's limit).\n"
      "Environment: FLAGSTONE_COMM_ALGO=ring|rhd|tree forces an algorithm.");
  cmd->callback([args] {
    if (under_launcher())
      run_ranks(*args);
    else
      self_launch(*args);
  });
}

}  // namespace flagstone::cli
