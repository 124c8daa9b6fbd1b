// The worker's memory as the coordinator reads it: in every Register and heartbeat (with the
// budget the planner sizes batches by) and in every batch result (the peaks of that batch).
#pragma once

#include <cstdint>
#include <functional>

#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

namespace v1 = ::spriteforge::v1;

// This process's resident memory, from /proc/self/statm (0 where unreadable).
uint64_t ProcessResidentBytes();

// The worker's own use of the memory the engine's total and free describe
// (MemoryReport.process_bytes). On a discrete GPU: the device memory the engine's allocator
// holds; where the device's memory is the machine's (unified memory, the CPU): the resident
// memory plus that device memory, which the driver allocates outside the resident set, so
// no byte counts twice. total - free, in contrast, is every process's use.
uint64_t ProcessBytes(const engine::MemoryStats& stats, uint64_t resident_bytes);

// What the engine measured, field for field, with the process's own use; no budget.
v1::MemoryReport MeasuredMemory(const engine::MemoryStats& stats, uint64_t resident_bytes = ProcessResidentBytes());

// The measurement plus the memory the engine may use in total (weights included): free
// memory plus its own weights, less the reserve. On unified memory and CPUs "free" is the
// system's available.
v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes,
                                uint64_t resident_bytes = ProcessResidentBytes());

// The engine's memory now, with its budget (what heartbeats and failures carry).
using MemoryProbe = std::function<v1::MemoryReport()>;

}  // namespace spriteforge::worker
