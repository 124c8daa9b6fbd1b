// A worker's results are judged before anything is written: each render must be a PNG
// that decodes, of exactly the item's width and height, and no larger than such an image
// can honestly be; a sprite must be a PNG that decodes within the sprite limits. A worker
// that keeps sending results that fail this is quarantined: dropped, and refused when it
// registers again until the quarantine ends, so the items go to other workers.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "common/generation_info.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

struct ResultLimits {
  size_t max_png_bytes = 64 << 20;
  int max_sprite_side = 4096 + 2 * 256;  // the largest pixel grid plus the largest padding
};

// InvalidArgument naming the problem, e.g. "the render is 64x64, the item is 128x128".
// `postprocess`: whether the item's job asked for sprites; without it a sprite (or a
// postprocessing error) is not the worker's to add.
absl::Status CheckItemResult(const v1::ItemResult& result, const v1::SamplingParams& params, bool postprocess,
                             const ResultLimits& limits = {});

class Quarantine {
 public:
  Quarantine(int strikes, int64_t duration_ms) : strikes_(strikes), duration_ms_(duration_ms) {}

  // The keys are worker ids or credentials ("token gpu", "certificate CN=spark-1", "host ...").
  // A batch from `worker_id` held invalid results; true when this strike quarantines it.
  bool Strike(const std::string& worker_id, int64_t now_ms);
  // Quarantined from now on, whatever its count.
  void Quarantined(const std::string& worker_id, int64_t now_ms);
  // A batch whose results were all valid: the count starts again.
  void Clear(const std::string& worker_id);
  // PermissionDenied while `worker_id` is quarantined.
  absl::Status Admit(const std::string& worker_id, int64_t now_ms);

 private:
  struct Record {
    int strikes = 0;
    int64_t until_ms = 0;  // quarantined while now < until_ms
  };
  int strikes_;
  int64_t duration_ms_;
  std::map<std::string, Record> records_;
};

}  // namespace spriteforge::coordinator
