// Reads the graph under capture (cudaStreamGetCaptureInfo) and names its kernels, shortened from
// their demangled signatures to the function name and template arguments.
#include "graph_nodes.h"

#include <cuda_runtime.h>
#include <cxxabi.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace flagstone::engine::detail {
namespace {

// "void ns::(anonymous namespace)::kernel<T, 64>(Args)" -> "kernel<T, 64>".
std::string short_name(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  // Cut the parameter list: the first '(' outside template brackets (after "(anonymous").
  int depth = 0;
  size_t cut = name.size();
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '<') ++depth;
    if (c == '>') --depth;
    if (c == '(' && depth == 0 && name.compare(i, 11, "(anonymous ") != 0) {
      cut = i;
      break;
    }
  }
  name.resize(cut);
  // Drop the return type and namespaces: what follows the last "::" or ' ' before any '<'.
  size_t lt = name.find('<');
  size_t head_end = lt == std::string::npos ? name.size() : lt;
  size_t start = 0;
  for (size_t i = 0; i < head_end; ++i) {
    if (name[i] == ' ') start = i + 1;
    if (name.compare(i, 2, "::") == 0) start = i + 2;
  }
  name = name.substr(start);
  if (name.size() > 60) name = name.substr(0, 57) + "...";
  return name;
}

}  // namespace

std::string describe_capture(void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaGraph_t graph = nullptr;
  if (cudaStreamGetCaptureInfo(stream, &status, nullptr, &graph) != cudaSuccess ||
      status != cudaStreamCaptureStatusActive || graph == nullptr)
    return "";
  size_t count = 0;
  if (cudaGraphGetNodes(graph, nullptr, &count) != cudaSuccess) return "";
  std::vector<cudaGraphNode_t> nodes(count);
  if (count > 0 && cudaGraphGetNodes(graph, nodes.data(), &count) != cudaSuccess) return "";
  std::map<std::string, int> kinds;
  std::vector<std::pair<std::string, int>> kernels;  // in order of first appearance
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    if (cudaGraphNodeGetType(node, &type) != cudaSuccess) continue;
    switch (type) {
      case cudaGraphNodeTypeKernel: {
        ++kinds["kernels"];
        std::string name = "?";
        cudaKernelNodeParams params{};
        const char* raw = nullptr;
        if (cudaGraphKernelNodeGetParams(node, &params) == cudaSuccess && params.func &&
            cudaFuncGetName(&raw, params.func) == cudaSuccess && raw)
          name = short_name(raw);
        cudaGetLastError();  // a kernel of a library may not have a runtime name
        auto it = kernels.begin();
        while (it != kernels.end() && it->first != name) ++it;
        if (it == kernels.end())
          kernels.emplace_back(name, 1);
        else
          ++it->second;
        break;
      }
      case cudaGraphNodeTypeMemcpy:
        ++kinds["memcpy"];
        break;
      case cudaGraphNodeTypeMemset:
        ++kinds["memset"];
        break;
      case cudaGraphNodeTypeEmpty:
        ++kinds["empty"];
        break;
      default:
        ++kinds["other"];
        break;
    }
  }
  std::string out =
      std::to_string(count) + " nodes: " + std::to_string(kinds["kernels"]) + " kernels (";
  for (size_t i = 0; i < kernels.size(); ++i)
    out += (i ? ", " : "") + kernels[i].first + " x " + std::to_string(kernels[i].second);
  out += ")";
  for (const char* kind : {"memcpy", "memset", "empty", "other"})
    if (kinds[kind] > 0) out += ", " + std::to_string(kinds[kind]) + " " + kind;
  return out;
}

}  // namespace flagstone::engine::detail
