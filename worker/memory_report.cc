#include "worker/memory_report.h"

namespace spriteforge::worker {

v1::MemoryReport MeasuredMemory(const engine::MemoryStats& stats) {
  v1::MemoryReport m;
  m.set_total_bytes(stats.total_bytes);
  m.set_free_bytes(stats.free_bytes);
  m.set_weights_bytes(stats.weights_bytes);
  m.set_peak_allocated_bytes(stats.peak_allocated_bytes);
  m.set_peak_reserved_bytes(stats.peak_reserved_bytes);
  return m;
}

v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes) {
  v1::MemoryReport m = MeasuredMemory(stats);
  const uint64_t usable = stats.free_bytes + stats.weights_bytes;
  m.set_budget_bytes(usable > reserve_bytes ? usable - reserve_bytes : 0);
  return m;
}

}  // namespace spriteforge::worker
