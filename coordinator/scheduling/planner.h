// The planner: a pure function from pending items and worker views to batch assignments.
// No RPC, no storage, no clock: the coordinator calls it whenever work or workers change.
//
// Policy, in order:
//   1. Higher priority first.
//   2. Between jobs of equal priority, the job served least recently goes first (fair
//      round-robin), then the older job.
//   3. A batch holds only compatible items (same BatchKey), in item order, topped up from
//      other jobs of the same key and priority when the first job has too few.
//   4. Its size is the largest the worker's memory model fits in its budget, never above the
//      worker's max batch.
//   5. A worker gets only batches whose ControlNets and IP-Adapter it has (by name; uploaded
//      files every worker fetches).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <tuple>
#include <vector>

#include "coordinator/scheduling/memory_model.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

// Items batch together only when their keys are equal: `id` is common/sampling.h's
// BatchKeyOf, the rule the worker checks too. The rest is read from it for planning.
struct BatchKey {
  std::string id;
  std::string model;
  int width = 0;   // for the memory model
  int height = 0;
  // Memory the LoRAs add to a batch: the uploaded files' sizes (known to the coordinator),
  // and the names looked up in each worker's LoRA folder (sizes the worker reported).
  uint64_t uploaded_lora_bytes = 0;
  std::vector<std::string> named_loras;
  // ControlNets and the IP-Adapter: how many, the uploaded files' weights (0: unknown, the
  // memory model's constants stand in), and the names a worker must have in its folders.
  int controlnets = 0;
  bool ip_adapter = false;
  uint64_t uploaded_control_bytes = 0;
  std::vector<std::string> named_controlnets;
  std::string named_ip_adapter;  // empty: uploaded or none
  std::string named_encoder;     // empty: uploaded or none

  bool operator<(const BatchKey& o) const { return id < o.id; }
  bool operator==(const BatchKey& o) const { return id == o.id; }
};

// The key of an image (uploaded_lora_bytes and uploaded_control_bytes left for the caller,
// who knows the files).
BatchKey KeyOf(const std::string& model, const v1::SamplingParams& sampling, const v1::ImageParams& image);

struct PendingItem {
  std::string job_id;
  int index = 0;
  int priority = 0;
  int64_t job_submitted = 0;  // submission order of the job (older first on ties)
  BatchKey key;
};

// What a worker's --controlnet-dir and --ip-adapter-dir hold: name -> bytes.
struct NamedModels {
  std::map<std::string, uint64_t> controlnets, ip_adapters, encoders;
};
NamedModels NamedModelsOf(const v1::Register& registration);

// "" when `models` has every ControlNet, IP-Adapter and image encoder the key names, else
// the first it lacks ("ControlNet 'openpose'").
std::string MissingModel(const BatchKey& key, const NamedModels& models);

struct WorkerView {
  std::string id;
  std::vector<std::string> models;
  uint64_t budget_bytes = 0;
  int max_batch = 1;
  bool idle = true;                     // only idle workers get a batch
  const MemoryModel* memory = nullptr;  // the worker's calibrated model
  std::map<std::string, uint64_t> lora_bytes;  // the LoRAs of its folder, by name
  NamedModels named;                            // its ControlNets, IP-Adapters, encoders
  // Items (job id, index) it is not to get: it returned invalid results for them and
  // another worker can take them.
  std::set<std::pair<std::string, int>> avoid;
};

// What a batch of `key` adds to the fixed part of the worker's memory: its LoRA files.
uint64_t LoraBytes(const BatchKey& key, const WorkerView& worker);
// And its ControlNets' and IP-Adapter's weights (memory_model.h's constants where no size
// is known).
uint64_t ControlBytes(const BatchKey& key, const WorkerView& worker);

struct Assignment {
  std::string worker_id;
  BatchKey key;
  std::vector<PendingItem> items;
};

// Whether `worker` may take this item (not one it is to avoid).
inline bool MayTake(const WorkerView& worker, const std::string& job_id, int index) {
  return worker.avoid.empty() || !worker.avoid.count({job_id, index});
}

// The queue as the coordinator keeps it: per job, the first of its queued items (a window
// read from the store, not the whole job), each naming its BatchKey by position in a
// shared table, so planning costs grow with jobs and workers, not with queued images.
struct QueuedItem {
  int index = 0;
  int key = 0;  // into the keys table
};
struct QueuedJob {
  std::string job_id;
  int priority = 0;
  int64_t submitted = 0;
  std::vector<QueuedItem> items;  // by index
};

// `last_served[job_id]` is an increasing counter of when the job last got a batch (absent:
// never). Returns at most one assignment per idle worker; each item at most once.
std::vector<Assignment> PlanJobs(const std::vector<const QueuedJob*>& jobs, const std::vector<BatchKey>& keys,
                                 const std::vector<WorkerView>& workers,
                                 const std::map<std::string, int64_t>& last_served);

// The same policy over a flat list of items (grouped by job here).
std::vector<Assignment> Plan(const std::vector<PendingItem>& pending, const std::vector<WorkerView>& workers,
                             const std::map<std::string, int64_t>& last_served);

}  // namespace spriteforge::coordinator
