// Every difference between the LibTorch versions the engine builds against (Debian's 1.13
// on CPU, PyTorch 2.x with CUDA on GPU machines) lives here.
#pragma once

#include <torch/torch.h>

#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
#define SPRITEFORGE_HAS_SDPA 1
#else
#define SPRITEFORGE_HAS_SDPA 0
#endif

namespace spriteforge::engine::compat {

// softmax(q k^T / sqrt(d)) v over [batch, heads, tokens, head_dim]; fused (flash or
// memory-efficient kernels) where LibTorch has scaled_dot_product_attention.
inline torch::Tensor Attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, bool causal) {
#if SPRITEFORGE_HAS_SDPA
  // Heads wider than 256 (the VAE's one 512-wide head) have no flash or cuDNN kernel, and the
  // memory-efficient one ran at 123 TFLOP/s there (4.5 ms of a 32 ms decode, H100): two GEMMs
  // and a softmax do the same arithmetic through cuBLAS (spriteforge-kernel-check times both).
  // One batch row at a time bounds the score matrix to one image's.
  if (q.is_cuda() && q.size(-1) > 256 && !causal) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < q.size(0); ++b) {
      torch::Tensor scores = torch::matmul(q[b] * scale, k[b].transpose(-2, -1));
      rows.push_back(torch::matmul(torch::softmax(scores, -1), v[b]));
    }
    return torch::stack(rows);
  }
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    const int64_t n = q.size(-2), m = k.size(-2);
    torch::Tensor mask = torch::ones({n, m}, torch::dtype(torch::kBool).device(q.device())).triu(1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

}  // namespace spriteforge::engine::compat
