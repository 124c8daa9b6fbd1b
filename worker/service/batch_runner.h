// Runs one assignment on the engine: request in, result or failure message out. Kept free
// of gRPC calls so the same code serves the worker process and its tests.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

namespace v1 = ::spriteforge::v1;

// The worker's outgoing message for a finished batch: a result or a failure.
struct BatchOutcome {
  bool ok = false;
  v1::BatchResultMsg result;
  v1::BatchFailure failure;
};

class BatchRunner {
 public:
  BatchRunner(engine::Engine* engine, std::string model_name) : engine_(engine), model_name_(std::move(model_name)) {}

  // `on_step` is called after every sampling step; `cancel` is checked between steps.
  BatchOutcome Run(const v1::Assignment& assignment, const std::function<void(int, int)>& on_step,
                   const std::atomic<bool>& cancel);

 private:
  engine::Engine* engine_;
  std::string model_name_;
};

}  // namespace spriteforge::worker
