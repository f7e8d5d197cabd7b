// Checked OpenCL calls for the opencl backend: every call goes through check_cl(), which turns a
// non-success code into a flagstone::Error naming the call, the code, the device and the line.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
// clCreateCommandQueue is needed for platforms that predate OpenCL 2.0.
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>

#include <string>
#include <string_view>

namespace flagstone::runtime::opencl {

// "CL_INVALID_VALUE", ...; "CL_UNKNOWN_ERROR(<code>)" for codes this build does not know.
std::string code_name(cl_int code);

// How a failure is classified: allocation calls report kOutOfMemory when the device is full.
enum class CallKind { kOrdinary, kAllocation };

// Throws unless code is CL_SUCCESS. `where` names the device ("opencl:0 (pthread-haswell...)")
// or, before a device exists, the platform being probed.
void check_cl(cl_int code, std::string_view call, std::string_view where, CallKind kind,
              const char* file, int line);

}  // namespace flagstone::runtime::opencl

// The one checking macro. FS_CL(where, clFinish, queue) checks a call returning cl_int;
// FS_CL_CREATE(where, clCreateBuffer, ctx, flags, n, nullptr) appends the errcode_ret argument
// and returns the created object; FS_CL_ALLOC does the same for allocations.
#define FS_CL_CHECK_CODE(code, call, where, kind) \
  ::flagstone::runtime::opencl::check_cl(         \
      (code), (call), (where), ::flagstone::runtime::opencl::CallKind::kind, __FILE__, __LINE__)
#define FS_CL(where, call, ...) FS_CL_CHECK_CODE(call(__VA_ARGS__), #call, where, kOrdinary)
#define FS_CL_CREATE_KIND(kind, where, call, ...)           \
  [&] {                                                     \
    cl_int fs_cl_status_ = CL_SUCCESS;                      \
    auto fs_cl_result_ = call(__VA_ARGS__, &fs_cl_status_); \
    FS_CL_CHECK_CODE(fs_cl_status_, #call, where, kind);    \
    return fs_cl_result_;                                   \
  }()
#define FS_CL_CREATE(where, call, ...) FS_CL_CREATE_KIND(kOrdinary, where, call, __VA_ARGS__)
#define FS_CL_ALLOC(where, call, ...) FS_CL_CREATE_KIND(kAllocation, where, call, __VA_ARGS__)
