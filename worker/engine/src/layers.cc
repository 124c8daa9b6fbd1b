#include "worker/engine/src/layers.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "worker/engine/src/torch_compat.h"

namespace spriteforge::engine {

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                       TilingFlag tiling)
    : stride_(stride), padding_(padding < 0 ? kernel / 2 : padding), tiling_(std::move(tiling)) {
  weight = register_parameter("weight", torch::randn({out, in, kernel, kernel}) / std::sqrt(in * kernel * kernel));
  bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor Conv2dImpl::Apply(const torch::Tensor& x, bool with_bias) {
  const torch::Tensor& b = with_bias ? bias : torch::Tensor();
  if (padding_ > 0 && tiling_ && *tiling_) {
    torch::Tensor padded = torch::nn::functional::pad(
        x, torch::nn::functional::PadFuncOptions({padding_, padding_, padding_, padding_})
               .mode(torch::kCircular));
    return torch::conv2d(padded, weight, b, at::IntArrayRef{stride_, stride_}, at::IntArrayRef{0, 0});
  }
  return torch::conv2d(x, weight, b, at::IntArrayRef{stride_, stride_}, at::IntArrayRef{padding_, padding_});
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_(in), out_(out) {
  // torch::nn::Linear's default initialisation, U(-1/sqrt(in), 1/sqrt(in)), for random models.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", (torch::rand({out, in}) * 2 - 1) * bound);
  if (with_bias) bias = register_parameter("bias", (torch::rand({out}) * 2 - 1) * bound);
}

torch::Tensor LinearImpl::Apply(const Rows& rows) {
  if (is_fp8()) {
    if (rows.fp8.defined()) return Fp8Linear(rows.fp8, weight_fp8_, bias);
    return Fp8Linear(QuantizeRowsFp8(rows.values.to(torch::kBFloat16).contiguous()), weight_fp8_, bias);
  }
  TORCH_CHECK(rows.values.defined(), "fp8 rows reached a Linear without fp8 weights");
  const torch::Tensor& x = rows.values;
  if (bias.defined() && x.dim() > 2 && x.is_contiguous()) {
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    return torch::addmm(bias, x.view({-1, x.size(-1)}), weight.t()).view(sizes);
  }
  return torch::nn::functional::linear(x, weight, bias);
}

std::shared_ptr<LinearImpl> LinearImpl::Stack(const std::vector<LinearImpl*>& parts) {
  if (parts.empty()) return nullptr;
  const LinearImpl& first = *parts[0];
  int64_t out = 0;
  for (const LinearImpl* part : parts) {
    if (part->in_ != first.in_ || part->bias.defined() || part->is_fp8() != first.is_fp8()) return nullptr;
    out += part->out_;
  }
  torch::NoGradGuard no_grad;
  auto stacked = std::make_shared<LinearImpl>(0, 0, /*with_bias=*/false);
  stacked->in_ = first.in_;
  stacked->out_ = out;
  std::vector<torch::Tensor> weights, scales;
  for (const LinearImpl* part : parts) {
    weights.push_back(part->is_fp8() ? part->weight_fp8_.data : part->weight);
    if (part->is_fp8()) scales.push_back(part->weight_fp8_.scale);
  }
  int64_t row = 0;
  if (first.is_fp8()) {
    // Concatenated as bytes: not every LibTorch build concatenates fp8 tensors directly.
    for (torch::Tensor& w : weights) w = w.view(torch::kByte);
    stacked->weight_fp8_ = {torch::cat(weights, 0).view(first.weight_fp8_.data.scalar_type()), torch::cat(scales, 1)};
    for (LinearImpl* part : parts) {
      part->weight_fp8_ = {stacked->weight_fp8_.data.narrow(0, row, part->out_),
                           stacked->weight_fp8_.scale.narrow(1, row, part->out_)};
      row += part->out_;
    }
  } else {
    stacked->weight.set_data(torch::cat(weights, 0));
    for (LinearImpl* part : parts) {
      part->weight.set_data(stacked->weight.narrow(0, row, part->out_));
      row += part->out_;
    }
  }
  return stacked;
}

torch::Tensor LinearImpl::FloatWeight() const {
  if (!is_fp8()) return weight.to(torch::kFloat);
  return weight_fp8_.data.to(torch::kFloat) * weight_fp8_.scale.reshape({-1, 1});
}

void LinearImpl::AssignWeight(const torch::Tensor& value) {
  torch::NoGradGuard no_grad;
  if (!is_fp8()) {
    weight.copy_(value);
    return;
  }
  Fp8Rows quantized = QuantizeWeightFp8(value.to(torch::kBFloat16).contiguous());
  weight_fp8_.data.view(torch::kByte).copy_(quantized.data.view(torch::kByte));
  weight_fp8_.scale.copy_(quantized.scale.view(weight_fp8_.scale.sizes()));
}

namespace {

// A copy of `t` on `to`: from a GPU to its host into page-locked memory without waiting
// (the stream orders it before the merge overwrites the weight).
torch::Tensor CopyTo(const torch::Tensor& t, const torch::Device& to) {
  if (!(t.is_cuda() && to.is_cpu())) return t.to(to, /*non_blocking=*/false, /*copy=*/true);
  torch::Tensor host = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
  host.copy_(t, /*non_blocking=*/true);
  return host;
}

}  // namespace

LinearImpl::Saved LinearImpl::Save(const torch::Device& to) const {
  if (is_fp8()) return {{}, CopyTo(weight_fp8_.data.view(torch::kByte), to), CopyTo(weight_fp8_.scale, to)};
  return {CopyTo(weight, to), {}, {}};
}

void LinearImpl::Restore(const Saved& saved) {
  torch::NoGradGuard no_grad;
  // Pinned host copies go back without waiting; the allocator keeps their memory until done.
  if (is_fp8()) {
    weight_fp8_.data.view(torch::kByte).copy_(saved.fp8_data, /*non_blocking=*/true);
    weight_fp8_.scale.copy_(saved.fp8_scale, /*non_blocking=*/true);
  } else {
    weight.copy_(saved.weight, /*non_blocking=*/true);
  }
}

uint64_t LinearImpl::StoredBytes() const {
  if (is_fp8()) return Fp8WeightBytes();
  return weight.numel() * weight.element_size();
}

bool LinearImpl::QuantizeToFp8() {
  if (is_fp8()) return true;
  if (weight.size(0) % 16 != 0 || weight.size(1) % 16 != 0) return false;
  torch::NoGradGuard no_grad;
  weight_fp8_ = QuantizeWeightFp8(weight);
  if (bias.defined()) bias.set_data(bias.to(torch::kBFloat16));
  weight.set_data(torch::empty({0}, weight.options()));
  return true;
}

uint64_t QuantizeLinearsToFp8(torch::nn::Module& model) {
  uint64_t bytes = 0;
  int quantized = 0, kept = 0;
  for (auto& module : model.modules(/*include_self=*/false)) {
    auto* linear = dynamic_cast<LinearImpl*>(module.get());
    if (!linear) continue;
    if (!linear->QuantizeToFp8()) {
      ++kept;
      continue;
    }
    ++quantized;
    bytes += linear->Fp8WeightBytes();
  }
  spdlog::info("fp8: {} Linear layers quantized ({:.2f} GB), {} kept in bf16 (shapes not a multiple of 16)",
               quantized, bytes / 1e9, kept);
  return bytes;
}

Linear MakeLinear(int64_t in, int64_t out, bool bias) { return Linear(in, out, bias); }

torch::nn::GroupNorm MakeGroupNorm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps));
}

torch::nn::LayerNorm MakeLayerNorm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

void ToChannelsLast(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

torch::Tensor UpsampleNearest2x(const torch::Tensor& x) {
  if (IsChannelsLast(x)) {
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const torch::Tensor pixels = x.permute({0, 2, 3, 1});  // [n, h, w, c], contiguous
    return pixels.unsqueeze(2).unsqueeze(4).expand({n, h, 2, w, 2, c}).reshape({n, 2 * h, 2 * w, c}).permute({0, 3, 1, 2});
  }
  return torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions().mode(torch::kNearest).scale_factor(std::vector<double>{2.0, 2.0}));
}

torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, int64_t heads, bool causal) {
  const int64_t b = q.size(0), n = q.size(1), m = k.size(1), dim = q.size(2);
  const int64_t d = dim / heads;
  auto split = [&](const torch::Tensor& t, int64_t len) {
    return t.view({b, len, heads, d}).transpose(1, 2);
  };
  torch::Tensor out = compat::Attention(split(q, n), split(k, m), split(v, m), causal);
  return out.transpose(1, 2).reshape({b, n, dim});
}

torch::Tensor TimestepFeatures(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos,
                               double freq_shift) {
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(t.device());
  torch::Tensor exponent = torch::arange(half, opts) * (-std::log(10000.0)) / (half - freq_shift);
  torch::Tensor args = t.to(torch::kFloat32).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
  torch::Tensor sin = torch::sin(args), cos = torch::cos(args);
  return flip_sin_to_cos ? torch::cat({cos, sin}, 1) : torch::cat({sin, cos}, 1);
}

}  // namespace spriteforge::engine
