// Device facts and memory statistics: the caching allocator's on CUDA, the system's on the
// CPU (and on unified-memory GPUs, where the system's available memory is what matters).
#pragma once

#include <torch/torch.h>

#include "spriteforge/engine/engine.h"

namespace spriteforge::engine {

DeviceInfo QueryDevice(const torch::Device& device);
MemoryStats QueryMemory(const torch::Device& device);
void ResetPeakMemory(const torch::Device& device);
// Hands the caching allocator's unused blocks back to the driver (after loading a model:
// conversion temporaries, or an earlier engine's cache, would otherwise stay reserved).
void ReleaseCachedMemory(const torch::Device& device);
// Waits for queued device work, so host timers measure it (no-op on the CPU).
void Synchronize(const torch::Device& device);
// Turns on cuDNN autotuning (GPU fast path).
void EnableCudnnBenchmark();

}  // namespace spriteforge::engine
