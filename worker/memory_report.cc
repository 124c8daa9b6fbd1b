#include "worker/memory_report.h"

#include <unistd.h>

#include <fstream>

namespace spriteforge::worker {

uint64_t ProcessResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t ProcessBytes(const engine::MemoryStats& stats, uint64_t resident_bytes) {
  return stats.host_memory ? resident_bytes + stats.reserved_bytes : stats.reserved_bytes;
}

v1::MemoryReport MeasuredMemory(const engine::MemoryStats& stats, uint64_t resident_bytes) {
  v1::MemoryReport m;
  m.set_total_bytes(stats.total_bytes);
  m.set_free_bytes(stats.free_bytes);
  m.set_weights_bytes(stats.weights_bytes);
  m.set_peak_allocated_bytes(stats.peak_allocated_bytes);
  m.set_peak_reserved_bytes(stats.peak_reserved_bytes);
  m.set_process_bytes(ProcessBytes(stats, resident_bytes));
  m.set_resident_bytes(resident_bytes);
  return m;
}

v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes, uint64_t resident_bytes) {
  v1::MemoryReport m = MeasuredMemory(stats, resident_bytes);
  const uint64_t usable = stats.free_bytes + stats.weights_bytes;
  m.set_budget_bytes(usable > reserve_bytes ? usable - reserve_bytes : 0);
  return m;
}

}  // namespace spriteforge::worker
