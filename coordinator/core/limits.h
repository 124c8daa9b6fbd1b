// What one client (a token's name) may hold and how fast it may call: the limits an auth
// file gives each name, and the token bucket that enforces the per-minute ones. The core
// checks them on submissions and uploads; the transports only say who is calling.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"

namespace spriteforge::coordinator {

// 0 means no limit.
struct ClientLimits {
  int64_t max_queued_images = 0;  // images of the name's unfinished jobs, after this submission
  int max_running_jobs = 0;       // unfinished jobs of the name, after this submission
  int submits_per_minute = 0;     // SubmitJob calls, with a burst of the same size
  uint64_t max_upload_bytes = 0;  // bytes of the uploaded files the name holds (max_upload_mb)
  int uploads_per_minute = 0;     // UploadFile calls, with a burst of the same size
};

// A token bucket per client: `per_minute` calls, refilled continuously, burst of the same
// size. Thread-safe.
class RateLimiter {
 public:
  // OK, or RESOURCE_EXHAUSTED naming the limit (`limit_name`) and when to retry.
  absl::Status Allow(const std::string& client, int per_minute, int64_t now_ms,
                     const char* limit_name = "submits_per_minute");

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace spriteforge::coordinator
