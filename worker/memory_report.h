// The worker's memory as the coordinator reads it: in every Register and heartbeat (with the
// budget the planner sizes batches by) and in every batch result (the peaks of that batch).
#pragma once

#include <cstdint>
#include <functional>

#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

namespace v1 = ::spriteforge::v1;

// What the engine measured, field for field; no budget.
v1::MemoryReport MeasuredMemory(const engine::MemoryStats& stats);

// The measurement plus the memory the engine may use in total (weights included): free
// memory plus its own weights, less the reserve. On unified memory and CPUs "free" is the
// system's available.
v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes);

// The engine's memory now, with its budget (what heartbeats and failures carry).
using MemoryProbe = std::function<v1::MemoryReport()>;

}  // namespace spriteforge::worker
