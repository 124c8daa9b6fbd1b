// The coordinator's settings, from its flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/manifest.h"
#include "common/manifest_files.h"

namespace spriteforge::coordinator {

struct CoordinatorOptions {
  std::string output_dir;
  int64_t lease_ms = 15000;       // a batch whose worker is silent this long returns to the queue
  int heartbeat_ms = 1000;        // asked of workers; every message renews their leases
  int max_attempts = 3;           // an item failing this often (not out of memory) fails for good
  int storage_attempts = 20;      // tries of an item whose result cannot be written (disk full)
  // Batches a worker may hold beyond the one it renders (capped by what it asks for), so
  // the next batch is already on the worker when the GPU finishes one.
  int max_prefetch = 1;
  int invalid_result_strikes = 3; // batches in a row with invalid results that quarantine a worker
  int64_t quarantine_ms = 600000; // how long a quarantined worker is refused
  // A disconnected worker is forgotten (registry, /metrics, the workers table) once unheard
  // this long; what it rendered stays in the items.
  int64_t worker_retention_ms = 3600000;
  // A job whose model no connected worker serves fails its queued items after this long;
  // 0 waits forever. The wait restarts with the coordinator.
  int64_t unserved_model_timeout_ms = 0;
  // Threads that decode-check and stage results off the gRPC threads, with one group
  // commit after them; 0: each result in the thread that received it.
  int result_threads = 0;
  size_t max_waiting_result_bytes = 512u << 20;  // images waiting for checks; beyond, receiving waits
  ManifestLimits limits;
  // Files uploaded with jobs, by content hash; empty: "blobs" beside output_dir.
  std::string blob_dir;
  UploadLimits upload_limits;
  // Uploads' share of the disk and their pace; 0: no limit.
  uint64_t blob_max_bytes = 0;      // every blob plus uploads in progress (--blob-max-gb)
  uint64_t owner_upload_bytes = 0;  // per owner unless its token sets max_upload_mb
  int uploads_per_minute = 0;       // per owner unless its token sets uploads_per_minute
  int64_t blob_grace_ms = 3600000;  // a blob no unfinished job names is deleted once unused this long
  int64_t upload_idle_ms = 60000;   // an upload that sends nothing this long is cancelled
};

}  // namespace spriteforge::coordinator
