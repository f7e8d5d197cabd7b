// The OpenCL target: OpenCL C built with clBuildProgram on the runtime's context; one program
// is one work-group; binaries go to the compile cache and are reloaded with
// clCreateProgramWithBinary.
#include <mutex>

#include "codegen.h"
#include "flagstone/base/error.h"
#include "flagstone/runtime/opencl_interop.h"
#include "targets_internal.h"

namespace flagstone::compiler {
namespace {

constexpr const char* kBuildOptions = "-cl-std=CL1.2";

std::string device_string(cl_device_id dev, cl_device_info what) {
  size_t size = 0;
  if (clGetDeviceInfo(dev, what, 0, nullptr, &size) != CL_SUCCESS) return "?";
  std::string s(size, '\0');
  clGetDeviceInfo(dev, what, size, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

template <typename T>
T device_value(cl_device_id dev, cl_device_info what) {
  T value{};
  clGetDeviceInfo(dev, what, sizeof(T), &value, nullptr);
  return value;
}

void check(cl_int err, const char* call, const std::string& kernel) {
  if (err != CL_SUCCESS)
    throw_error(ErrorCategory::kBackend, "opencl target: ", call, " failed with error ", err,
                " for kernel '", kernel, "'");
}

std::string build_log(cl_program program, cl_device_id dev) {
  size_t size = 0;
  clGetProgramBuildInfo(program, dev, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size);
  std::string log(size, '\0');
  clGetProgramBuildInfo(program, dev, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr);
  if (log.size() > 4000) log = log.substr(0, 4000) + "...";
  return log;
}

void build(cl_program program, cl_device_id dev, const std::string& kernel) {
  cl_int err = clBuildProgram(program, 1, &dev, kBuildOptions, nullptr, nullptr);
  if (err != CL_SUCCESS) {
    std::string log = build_log(program, dev);
    clReleaseProgram(program);
    throw_error(ErrorCategory::kBackend, "opencl target: clBuildProgram failed with error ", err,
                " for kernel '", kernel, "':\n", log);
  }
}

class OpenCLKernel final : public CompiledKernel {
 public:
  OpenCLKernel(cl_program program, cl_kernel kernel, int64_t threads, std::string name)
      : program_(program), kernel_(kernel), threads_(threads), name_(std::move(name)) {}
  ~OpenCLKernel() override {
    clReleaseKernel(kernel_);
    clReleaseProgram(program_);
  }

  void launch(const runtime::Stream& stream, const Grid& grid,
              const std::vector<LaunchArg>& args) override {
    cl_command_queue queue = runtime::opencl_queue(stream);
    // A cl_kernel holds its arguments: one launch at a time sets and enqueues them.
    std::lock_guard<std::mutex> lock(mutex_);
    cl_uint index = 0;
    for (const LaunchArg& a : args) {
      cl_int err = CL_SUCCESS;
      if (a.kind == LaunchArg::Kind::kBuffer) {
        cl_mem mem = static_cast<cl_mem>(a.handle);
        size_t elem = storage_size(a.dtype);
        FS_CHECK(a.byte_offset % elem == 0, kInvalidArgument, "opencl kernel '", name_,
                 "': tensor byte offset ", a.byte_offset, " is not a multiple of its element size ",
                 elem);
        cl_long offset = static_cast<cl_long>(a.byte_offset / elem);
        err = clSetKernelArg(kernel_, index++, sizeof(cl_mem), &mem);
        if (err == CL_SUCCESS) err = clSetKernelArg(kernel_, index++, sizeof(cl_long), &offset);
      } else if (a.kind == LaunchArg::Kind::kInt && a.dtype == DType::kI32) {
        cl_int v = static_cast<cl_int>(a.i);
        err = clSetKernelArg(kernel_, index++, sizeof(v), &v);
      } else if (a.kind == LaunchArg::Kind::kInt) {
        cl_long v = a.i;
        err = clSetKernelArg(kernel_, index++, sizeof(v), &v);
      } else if (a.dtype == DType::kF32) {
        cl_float v = static_cast<cl_float>(a.f);
        err = clSetKernelArg(kernel_, index++, sizeof(v), &v);
      } else {
        cl_double v = a.f;
        err = clSetKernelArg(kernel_, index++, sizeof(v), &v);
      }
      check(err, "clSetKernelArg", name_);
    }
    size_t global[3] = {static_cast<size_t>(grid.x * threads_), static_cast<size_t>(grid.y),
                        static_cast<size_t>(grid.z)};
    size_t local[3] = {static_cast<size_t>(threads_), 1, 1};
    check(clEnqueueNDRangeKernel(queue, kernel_, 3, nullptr, global, local, 0, nullptr, nullptr),
          "clEnqueueNDRangeKernel", name_);
  }

 private:
  cl_program program_;
  cl_kernel kernel_;
  int64_t threads_;
  std::string name_;
  std::mutex mutex_;
};

class OpenCLTarget final : public Target {
 public:
  std::string_view name() const override { return "opencl"; }

  TargetLimits limits(const runtime::Device& device) const override {
    cl_device_id dev = runtime::opencl_device_id(device);
    TargetLimits l;
    bool gpu = device_value<cl_device_type>(dev, CL_DEVICE_TYPE) & CL_DEVICE_TYPE_GPU;
    // On a cpu OpenCL device work-items are loop iterations: fewer of them cost less.
    l.warp_size = gpu ? 32 : 8;
    l.max_threads_per_program =
        static_cast<int64_t>(device_value<size_t>(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE));
    l.local_memory_bytes =
        static_cast<int64_t>(device_value<cl_ulong>(dev, CL_DEVICE_LOCAL_MEM_SIZE));
    l.max_grid[0] =
        std::numeric_limits<int32_t>::max() / std::max<int64_t>(1, l.max_threads_per_program);
    l.max_grid[1] = l.max_grid[2] = std::numeric_limits<int32_t>::max();
    l.fp64 = device_value<cl_device_fp_config>(dev, CL_DEVICE_DOUBLE_FP_CONFIG) != 0;
    return l;
  }

  std::string cache_tag(const runtime::Device& device) const override {
    cl_device_id dev = runtime::opencl_device_id(device);
    return device_string(dev, CL_DEVICE_NAME) + "|" + device_string(dev, CL_DEVICE_VERSION) + "|" +
           device_string(dev, CL_DRIVER_VERSION) + "|" + kBuildOptions;
  }

  std::string codegen(const ir::Function& fn, const CodegenOptions& options) const override {
    int64_t local = 0;
    std::string source = emit_source(fn, Dialect::kOpenCL, options.threads, &local);
    FS_CHECK(options.local_memory_limit == 0 || local <= options.local_memory_limit, kUnsupported,
             "kernel '", fn.name, "' needs ", local, " bytes of local memory with ",
             options.threads, " threads per program; the device has ", options.local_memory_limit,
             " (use smaller tiles)");
    return source;
  }

  std::vector<uint8_t> compile(const std::string& source, const ir::Function& fn,
                               const runtime::Device& device) const override {
    cl_context ctx = runtime::opencl_context(device);
    cl_device_id dev = runtime::opencl_device_id(device);
    const char* text = source.c_str();
    size_t length = source.size();
    cl_int err = CL_SUCCESS;
    cl_program program = clCreateProgramWithSource(ctx, 1, &text, &length, &err);
    check(err, "clCreateProgramWithSource", fn.name);
    build(program, dev, fn.name);
    size_t size = 0;
    err = clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, nullptr);
    std::vector<uint8_t> bytes(size);
    unsigned char* ptr = bytes.data();
    if (err == CL_SUCCESS)
      err = clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof(ptr), &ptr, nullptr);
    clReleaseProgram(program);
    check(err, "clGetProgramInfo(CL_PROGRAM_BINARIES)", fn.name);
    FS_CHECK(!bytes.empty(), kBackend, "opencl target: the driver returned no binary for kernel '",
             fn.name, "'");
    return bytes;
  }

  std::unique_ptr<CompiledKernel> load(const std::vector<uint8_t>& artifact, const std::string&,
                                       const ir::Function& fn, const CodegenOptions& options,
                                       const runtime::Device& device) const override {
    cl_context ctx = runtime::opencl_context(device);
    cl_device_id dev = runtime::opencl_device_id(device);
    const unsigned char* ptr = artifact.data();
    size_t size = artifact.size();
    cl_int status = CL_SUCCESS;
    cl_int err = CL_SUCCESS;
    cl_program program = clCreateProgramWithBinary(ctx, 1, &dev, &size, &ptr, &status, &err);
    check(err != CL_SUCCESS ? err : status, "clCreateProgramWithBinary", fn.name);
    build(program, dev, fn.name);
    cl_kernel kernel = clCreateKernel(program, "fs_kernel", &err);
    if (err != CL_SUCCESS) clReleaseProgram(program);
    check(err, "clCreateKernel", fn.name);
    return std::make_unique<OpenCLKernel>(program, kernel, options.threads, fn.name);
  }
};

}  // namespace

std::unique_ptr<Target> create_opencl_target() {
  return std::make_unique<OpenCLTarget>();
}

}  // namespace flagstone::compiler
