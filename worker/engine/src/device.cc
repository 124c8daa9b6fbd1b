#include "worker/engine/src/device.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "worker/engine/base/meminfo.h"

#if defined(SPRITEFORGE_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime.h>
#endif

namespace spriteforge::engine {
namespace {

uint64_t SystemTotal() {
  return static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
}

// The system's available memory. An unreadable report counts as none (0), so no batch is
// planned on a guess; it is logged once rather than on every heartbeat.
uint64_t SystemAvailable() {
  auto available = ReadAvailableBytes();
  if (available.ok()) return *available;
  static std::atomic<bool> reported{false};
  if (!reported.exchange(true)) spdlog::error("memory budget: {}", std::string(available.status().message()));
  return 0;
}

// Peak resident set size of this process (the CPU's "peak allocated").
uint64_t PeakRss() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      uint64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace

DeviceInfo QueryDevice(const torch::Device& device) {
  DeviceInfo info;
  if (!device.is_cuda()) {
    info.name = "cpu";
    info.total_bytes = SystemTotal();
    return info;
  }
#if defined(SPRITEFORGE_TORCH_CUDA)
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index());
  info.name = prop.name;
  info.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  info.unified_memory = prop.integrated != 0;
  info.total_bytes = prop.totalGlobalMem;
#endif
  return info;
}

MemoryStats QueryMemory(const torch::Device& device) {
  MemoryStats m;
  if (!device.is_cuda()) {
    m.total_bytes = SystemTotal();
    m.free_bytes = SystemAvailable();
    m.host_memory = true;
    m.peak_allocated_bytes = m.peak_reserved_bytes = PeakRss();
    return m;
  }
#if defined(SPRITEFORGE_TORCH_CUDA)
  const int index = device.index() < 0 ? 0 : device.index();
  size_t free_b = 0, total_b = 0;
  cudaSetDevice(index);
  cudaMemGetInfo(&free_b, &total_b);
  m.total_bytes = total_b;
  m.free_bytes = free_b;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, index);
  if (prop.integrated) m.free_bytes = SystemAvailable();  // unified memory: the system's view counts
  m.host_memory = prop.integrated != 0;
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  m.reserved_bytes = stats.reserved_bytes[0].current;
  m.peak_allocated_bytes = stats.allocated_bytes[0].peak;
  m.peak_reserved_bytes = stats.reserved_bytes[0].peak;
#endif
  return m;
}

void ResetPeakMemory(const torch::Device& device) {
#if defined(SPRITEFORGE_TORCH_CUDA)
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#else
  (void)device;
#endif
}

void ReleaseCachedMemory(const torch::Device& device) {
#if defined(SPRITEFORGE_TORCH_CUDA)
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#else
  (void)device;
#endif
}

void Synchronize(const torch::Device& device) {
#if defined(SPRITEFORGE_TORCH_CUDA)
  if (device.is_cuda()) cudaDeviceSynchronize();
#else
  (void)device;
#endif
}

void EnableCudnnBenchmark() { at::globalContext().setBenchmarkCuDNN(true); }

}  // namespace spriteforge::engine
