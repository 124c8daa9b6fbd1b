// What a worker sends is checked before the core uses it: a worker is a remote process and
// its numbers feed the planner (a max_batch of 2^31-1 with a budget of 2^64-1 once hung
// the coordinator), its names end up in logs, paths and the API. One line names the field.
#pragma once

#include "absl/status/status.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

struct WorkerLimits {
  int max_batch = 256;
  int max_prefetch = 16;                   // batches held ahead
  uint64_t max_memory_bytes = 1ull << 50;  // 1 PiB: beyond any device
  int max_models = 32;
  int max_lora_files = 10000;
  int max_calibrations = 64;
  int max_image_side = 8192;
  int max_running_batches = 16;
  size_t max_text_chars = 128;             // device name, compute capability, version
  size_t max_message_chars = 4096;         // a failure's message
  size_t max_preview_png_bytes = 4 << 20;  // one preview image (at most max_image_side / 8 square)
};

// InvalidArgument "register.FIELD: problem".
absl::Status CheckRegister(const v1::Register& reg, const WorkerLimits& limits = {});

// Heartbeats, progress, results and failures: the fields the core reads (results' images
// are judged separately, item by item). InvalidArgument "FIELD: problem".
absl::Status CheckWorkerMessage(const v1::WorkerMessage& message, const WorkerLimits& limits = {});

}  // namespace spriteforge::coordinator
