// dlopen/dlsym of the NCCL entry points the engine uses.
#include "nccl_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace flagstone::comm {

namespace {

template <typename Fn>
bool bind(void* library, const char* name, Fn*& slot, std::string* missing) {
  slot = reinterpret_cast<Fn*>(::dlsym(library, name));
  if (!slot && missing->empty()) *missing = name;
  return slot != nullptr;
}

}  // namespace

const NcclApi* load_nccl(std::string* why) {
  static NcclApi api;
  static const NcclApi* loaded = nullptr;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* override_path = std::getenv("FLAGSTONE_NCCL_LIBRARY");
    const char* path = override_path && *override_path ? override_path : "libnccl.so.2";
    void* library = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char* error = ::dlerror();
      failure = std::string("cannot load ") + path + ": " + (error ? error : "unknown error");
      return;
    }
    std::string missing;
    bind(library, "ncclGetUniqueId", api.GetUniqueId, &missing);
    bind(library, "ncclCommInitRank", api.CommInitRank, &missing);
    bind(library, "ncclCommDestroy", api.CommDestroy, &missing);
    bind(library, "ncclCommAbort", api.CommAbort, &missing);
    bind(library, "ncclCommGetAsyncError", api.CommGetAsyncError, &missing);
    bind(library, "ncclGetErrorString", api.GetErrorString, &missing);
    bind(library, "ncclAllReduce", api.AllReduce, &missing);
    bind(library, "ncclReduce", api.Reduce, &missing);
    bind(library, "ncclBroadcast", api.Broadcast, &missing);
    bind(library, "ncclAllGather", api.AllGather, &missing);
    bind(library, "ncclReduceScatter", api.ReduceScatter, &missing);
    bind(library, "ncclSend", api.Send, &missing);
    bind(library, "ncclRecv", api.Recv, &missing);
    bind(library, "ncclGroupStart", api.GroupStart, &missing);
    bind(library, "ncclGroupEnd", api.GroupEnd, &missing);
    if (!missing.empty()) {
      failure = std::string(path) + " lacks " + missing + " (NCCL >= 2.10 is needed)";
      return;
    }
    loaded = &api;
  });
  if (!loaded && why) *why = failure;
  return loaded;
}

}  // namespace flagstone::comm
