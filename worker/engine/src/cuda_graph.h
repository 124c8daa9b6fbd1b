// Replays a function as a captured CUDA graph, one capture per input signature (shapes
// and dtypes), with static input and output buffers. Used for the guided denoising step:
// at SDXL sizes a step launches ~2,000 kernels, and replaying them as one graph removes
// the CPU launch cost that dominates small batches.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace spriteforge::engine {

class CapturedFunction {
 public:
  using Fn = std::function<torch::Tensor(const std::vector<torch::Tensor>& inputs)>;

  explicit CapturedFunction(Fn fn);
  ~CapturedFunction();

  // True when this LibTorch build can capture graphs on `device`.
  static bool Supported(const torch::Device& device);

  // Copies `inputs` into the static buffers of their signature (capturing the graph the
  // first time a signature is seen), replays, and returns the static output: valid until
  // the next call with the same signature, so callers consume or clone it at once.
  torch::Tensor operator()(const std::vector<torch::Tensor>& inputs);

  size_t captured_signatures() const { return entries_.size(); }

 private:
  struct Entry;
  Fn fn_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace spriteforge::engine
