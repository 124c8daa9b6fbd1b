#include "worker/engine/src/controlnet.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/base/safetensors.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {

namespace {

namespace fs = std::filesystem;

torch::Tensor Scaled(torch::Tensor residual, double scale, bool global_pool) {
  if (scale != 1.0) residual = residual * scale;
  // Shuffle-style ControlNets: one value per channel, broadcast over the skip.
  if (global_pool) residual = residual.mean({2, 3}, /*keepdim=*/true);
  return residual;
}

}  // namespace

ControlNetImpl::ControlNetImpl(const ControlNetConfig& config) : config_(config) {
  const UNetConfig& c = config.encoder;
  const auto& ch = c.block_out_channels;
  conv_in_ = register_module("conv_in", Conv2d(c.in_channels, ch[0], 3, 1, -1, tiling_));
  embedding_ = ConditioningEmbedding(*this, c);

  // The control image down to the latent size: a 3x3 conv per width, a strided one between.
  const auto& widths = config.conditioning_embedding_out_channels;
  auto cond = AddContainer(*this, "controlnet_cond_embedding");
  cond_in_ = cond->register_module("conv_in", Conv2d(config.conditioning_channels, widths.front(), 3, 1, -1, tiling_));
  auto blocks = AddContainer(*cond, "blocks");
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    cond_blocks_.push_back(blocks->register_module(std::to_string(2 * i), Conv2d(widths[i], widths[i], 3, 1, -1, tiling_)));
    cond_blocks_.push_back(blocks->register_module(std::to_string(2 * i + 1), Conv2d(widths[i], widths[i + 1], 3, 2, 1, tiling_)));
  }
  cond_out_ = cond->register_module("conv_out", Conv2d(widths.back(), ch[0], 3, 1, -1, tiling_));

  down_ = UNetDownPath(*this, c, tiling_);

  // The 1x1 "zero convolutions" that turn each skip into its residual.
  auto zero = AddContainer(*this, "controlnet_down_blocks");
  const std::vector<int> residuals = config.ResidualChannels();
  for (size_t i = 0; i < residuals.size(); ++i) {
    zero_convs_.push_back(zero->register_module(std::to_string(i), Conv2d(residuals[i], residuals[i], 1, 1, 0)));
  }
  mid_zero_conv_ = register_module("controlnet_mid_block", Conv2d(ch.back(), ch.back(), 1, 1, 0));

  CollectAttentionBlocks(*this, self_attention_, cross_attention_);
}

torch::Tensor ControlNetImpl::CrossAttentionKV(const torch::Tensor& context) {
  return ProjectCrossAttentionKV(cross_attention_, context);
}

ControlNetImpl::Residuals ControlNetImpl::ForwardWithKV(const torch::Tensor& sample, const torch::Tensor& timestep,
                                                        const torch::Tensor& kv, const torch::Tensor& text_embeds,
                                                        const torch::Tensor& time_ids,
                                                        const torch::Tensor& cond_embedding, double scale,
                                                        bool guess_mode) {
  // As UNetImpl::ForwardWithKV; small ControlNets have no keys and values to split.
  std::vector<torch::Tensor> views;
  if (!cross_attention_.empty()) views = SplitCrossAttentionKV(cross_attention_, kv, sample.size(0), "ControlNet ");
  return Forward(sample, timestep, CrossContext{{}, &views}, text_embeds, time_ids, cond_embedding, scale, guess_mode);
}

ControlNetImpl::Residuals ControlNetImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                                  const torch::Tensor& context, const torch::Tensor& text_embeds,
                                                  const torch::Tensor& time_ids, const torch::Tensor& cond, double scale,
                                                  bool guess_mode) {
  return Forward(sample, timestep, CrossContext{context, nullptr}, text_embeds, time_ids,
                 EmbedCondition(cond.to(sample.scalar_type())), scale, guess_mode);
}

void ControlNetImpl::FuseSelfAttentionProjections() {
  for (AttentionBlock* block : self_attention_) block->FuseProjections();
}

torch::Tensor ControlNetImpl::EmbedCondition(const torch::Tensor& cond) {
  torch::Tensor c = config_.bgr ? cond.flip({1}) : cond;
  c = torch::silu(cond_in_(c));
  for (Conv2d& block : cond_blocks_) c = torch::silu(block(c));
  return cond_out_(c);
}

ControlNetImpl::Residuals ControlNetImpl::Forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                                  const CrossContext& context, const torch::Tensor& text_embeds,
                                                  const torch::Tensor& time_ids, const torch::Tensor& cond_embedding,
                                                  double scale, bool guess_mode) {
  const auto dtype = sample.scalar_type();
  const int64_t batch = sample.size(0);
  TORCH_CHECK(cond_embedding.size(0) == batch && cond_embedding.size(2) == sample.size(2) &&
                  cond_embedding.size(3) == sample.size(3),
              "control images must be one per latent at 8x its size");
  const torch::Tensor emb = embedding_(timestep, text_embeds, time_ids, batch, dtype);
  std::vector<torch::Tensor> skips;
  const torch::Tensor x = down_(AddResidual(conv_in_(sample), cond_embedding), emb, context, skips);

  Residuals out;
  const bool graded = guess_mode && !config_.global_pool_conditions;  // pooled ones are not graded
  const double n = static_cast<double>(skips.size());
  for (size_t i = 0; i < skips.size(); ++i) {
    const double s = graded ? scale * std::pow(10.0, -1.0 + static_cast<double>(i) / n) : scale;
    out.down.push_back(Scaled(zero_convs_[i](skips[i]), s, config_.global_pool_conditions));
  }
  out.mid = Scaled(mid_zero_conv_(x), scale, config_.global_pool_conditions);
  return out;
}

namespace {

torch::ScalarType StoredType(DType d) {
  switch (d) {
    case DType::kF16: return torch::kHalf;
    case DType::kBF16: return torch::kBFloat16;
    default: return torch::kFloat;
  }
}

// Every parameter from the file by its own name; the header was checked for the
// characteristic tensors already, this catches the rest.
absl::Status CopyWeights(ControlNetImpl& net, const SafetensorsFile& file) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& param : net.named_parameters(/*recurse=*/true)) {
    const TensorView* view = file.Find(param.key());
    if (!view) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": missing tensor ", param.key(),
                                                     " (config.json describes more than the file holds)"));
    }
    if (view->dtype != DType::kF16 && view->dtype != DType::kBF16 && view->dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", view->name, " is ",
                                                     std::string(DTypeName(view->dtype)), ", weights must be F16, BF16 or F32"));
    }
    if (view->shape != param.value().sizes().vec()) {
      std::ostringstream shapes;
      shapes << "shape " << c10::IntArrayRef(view->shape) << " does not match config.json's " << param.value().sizes();
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", view->name, ": ", shapes.str()));
    }
    param.value().copy_(torch::from_blob(const_cast<void*>(view->data), view->shape, StoredType(view->dtype)));
    ++used;
  }
  if (used < file.tensors().size()) {
    spdlog::info("{}: ignored {} tensors a ControlNet does not use", file.path(), file.tensors().size() - used);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ControlNet> LoadControlNet(const std::string& model_path, const UNetConfig& unet,
                                          const ControlNetRunOptions& options, uint64_t* bytes) {
  ASSIGN_OR_RETURN(auto config, CheckControlNet(model_path, unet));
  ASSIGN_OR_RETURN(auto files, FindControlNetFiles(model_path));
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(files.weights));
  torch::NoGradGuard no_grad;
  ControlNet net(config);
  net->eval();
  RETURN_IF_ERROR(CopyWeights(*net, *file));
  net->to(options.device, options.dtype);
  uint64_t total = 0;
  // As the UNet: fp8 Linears first (releasing their 16-bit weights), then layout and fusing.
  if (options.fp8_linear) total += QuantizeLinearsToFp8(*net);
  if (options.channels_last) ToChannelsLast(*net);
  if (options.fuse_projections) net->FuseSelfAttentionProjections();
  for (const auto& p : net->parameters()) total += p.numel() * p.element_size();
  if (bytes) *bytes = total;
  spdlog::info("ControlNet {} loaded ({:.1f} MB)", model_path, total / 1e6);
  return net;
}

absl::StatusOr<std::vector<ControlNet>> ControlNetCache::Use(const std::vector<std::string>& paths) {
  // Which file each path is now: a changed file is loaded again.
  std::map<std::string, std::pair<int64_t, int64_t>> stamps;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(auto files, FindControlNetFiles(path));
    std::error_code ec;
    const auto size = static_cast<int64_t>(fs::file_size(files.weights, ec));
    const int64_t mtime = fs::last_write_time(files.weights, ec).time_since_epoch().count();
    stamps[path] = {size, mtime};
  }
  // Free what this batch does not use before loading what it lacks: the peak stays low.
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    auto stamp = stamps.find(it->first);
    const bool keep = stamp != stamps.end() && stamp->second == std::make_pair(it->second.size, it->second.mtime);
    it = keep ? std::next(it) : loaded_.erase(it);
  }
  Recount();
  std::vector<ControlNet> out;
  for (const std::string& path : paths) {
    auto it = loaded_.find(path);
    if (it == loaded_.end()) {
      Entry entry;
      ASSIGN_OR_RETURN(entry.net, LoadControlNet(path, unet_, options_, &entry.bytes));
      std::tie(entry.size, entry.mtime) = stamps[path];
      it = loaded_.emplace(path, std::move(entry)).first;
      Recount();
    }
    out.push_back(it->second.net);
  }
  Recount();
  return out;
}

void ControlNetCache::Recount() {
  uint64_t total = 0;
  for (const auto& [path, entry] : loaded_) total += entry.bytes;
  bytes_.store(total, std::memory_order_relaxed);
}

}  // namespace spriteforge::engine
