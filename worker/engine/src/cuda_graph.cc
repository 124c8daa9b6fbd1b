#include "worker/engine/src/cuda_graph.h"

#include <sstream>

#if defined(SPRITEFORGE_TORCH_CUDA)  // set by CMake when LibTorch was built with CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define SPRITEFORGE_HAS_CUDA_GRAPHS 1
#else
#define SPRITEFORGE_HAS_CUDA_GRAPHS 0
#endif

namespace spriteforge::engine {
namespace {

std::string Signature(const std::vector<torch::Tensor>& inputs) {
  std::ostringstream key;
  for (const auto& t : inputs) key << t.sizes() << ':' << t.scalar_type() << ':' << t.device() << ';';
  return key.str();
}

}  // namespace

struct CapturedFunction::Entry {
  std::vector<torch::Tensor> inputs;
  // What each static input last received, and at which version: an input passed again
  // unchanged (the prompts' keys and values, every step of a generation) is not copied.
  // Weak references: a source's memory is not kept alive by this, and while one is held no
  // other tensor can take its place.
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> sources;
  std::vector<int64_t> versions;
  torch::Tensor output;
#if SPRITEFORGE_HAS_CUDA_GRAPHS
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

CapturedFunction::CapturedFunction(Fn fn) : fn_(std::move(fn)) {}
CapturedFunction::~CapturedFunction() = default;

bool CapturedFunction::Supported(const torch::Device& device) {
  return SPRITEFORGE_HAS_CUDA_GRAPHS && device.is_cuda();
}

torch::Tensor CapturedFunction::operator()(const std::vector<torch::Tensor>& inputs) {
  if (inputs.empty() || !Supported(inputs[0].device())) return fn_(inputs);
#if SPRITEFORGE_HAS_CUDA_GRAPHS
  const std::string key = Signature(inputs);
  auto found = entries_.find(key);
  if (found != entries_.end()) {
    Entry& entry = *found->second;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!entry.sources[i].expired() && entry.sources[i]._unsafe_get_target() == inputs[i].unsafeGetTensorImpl() &&
          inputs[i]._version() == entry.versions[i]) {
        continue;
      }
      entry.inputs[i].copy_(inputs[i], /*non_blocking=*/true);
      entry.sources[i] = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(inputs[i].getIntrusivePtr());
      entry.versions[i] = inputs[i]._version();
    }
    entry.graph->replay();
    return entry.output;
  }
  auto entry = std::make_unique<Entry>();
  for (const auto& t : inputs) {
    entry->inputs.push_back(t.clone());
    entry->sources.emplace_back(t.getIntrusivePtr());
    entry->versions.push_back(t._version());
  }
  // Capture must not run on the legacy default stream; warm up on the capture stream first
  // so lazy initialisation and cuDNN autotuning happen outside the graph.
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, inputs[0].device().index());
  // Capture happens once per signature, so plain synchronisation between the streams is fine.
  c10::cuda::getCurrentCUDAStream(inputs[0].device().index()).synchronize();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (int i = 0; i < 2; ++i) entry->output = fn_(entry->inputs);
    side.synchronize();
    entry->graph = std::make_unique<at::cuda::CUDAGraph>();
    entry->graph->capture_begin();
    entry->output = fn_(entry->inputs);
    entry->graph->capture_end();
  }
  side.synchronize();
  entry->graph->replay();
  torch::Tensor output = entry->output;
  entries_.emplace(key, std::move(entry));
  return output;
#else
  return fn_(inputs);
#endif
}

}  // namespace spriteforge::engine
