// Text-to-image with SDXL: tokenize, encode, denoise with classifier-free guidance, decode.
#pragma once

#include <map>
#include <memory>

#include <torch/torch.h>

#include "spriteforge/engine/engine.h"
#include "worker/engine/base/tokenizer.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/controlnet.h"
#include "worker/engine/src/cuda_graph.h"
#include "worker/engine/src/ip_adapter.h"
#include "worker/engine/src/lora.h"
#include "worker/engine/src/prompt_encoder.h"

namespace spriteforge::engine {

struct PipelineOptions {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  bool fast_path = true;  // CUDA only: cuDNN autotuning, and the switches below
  bool channels_last = true;
  bool cuda_graphs = true;
  int decode_batch = 1;  // CUDA: images per VAE call; 0 = as many as free memory allows
  bool fused_kernels = true;  // CUDA fp16/bf16, process-wide (see fused_ops.h)
  bool fp8_linear = false;    // bf16 on CUDA: the UNet's Linears as fp8 GEMMs (see layers.h)
  torch::ScalarType vae_dtype = torch::kFloat;  // the VAE's (LoadOptions::vae_dtype)
  bool vae_channels_last = true;

  bool VaeChannelsLast() const { return fast_path && vae_channels_last && device.is_cuda(); }
  bool UseChannelsLast() const { return fast_path && channels_last && device.is_cuda(); }
};

class Pipeline {
 public:
  Pipeline(SdxlModels models, std::unique_ptr<ClipTokenizer> tokenizer,
           std::unique_ptr<ClipTokenizer> tokenizer_2, PipelineOptions options);

  absl::StatusOr<BatchResult> Generate(const BatchRequest& request, const ProgressFn& progress,
                                       const PreviewFn& preview = nullptr);
  absl::StatusOr<MemoryStats> Calibrate(int batch, int height, int width);

  // Prompt embeddings (src/prompt_encoder.h): context [N,77*chunks,C] and pooled [N,P] in
  // the model dtype, and a note per prompt that was cut.
  absl::StatusOr<EncodedPrompts> Encode(const std::vector<std::string>& prompts);

  const torch::Device& device() const { return options_.device; }
  uint64_t weights_bytes() const { return weights_bytes_ + controlnets_->bytes(); }
  uint64_t lora_bytes() const { return loras_->cached_bytes(); }
  LoraMerger& loras() { return *loras_; }

 private:
  // A ControlNet acting on the batch being generated.
  struct ActiveControl {
    mutable ControlNet net{nullptr};  // runs from const steps: a module's forward is not const
    ControlNetSpec spec;
    torch::Tensor cond_embedding;  // the control images' embedding, one per row it reads
    torch::Tensor kv;    // the keys and values of the prompts it reads, for its cross-attention
    bool prompts_half = false;  // with CFG: reads the prompts' rows only, none for the negative half
  };
  // What every step of a batch reads besides the latents. With CFG the rows are the
  // negative prompts' [0, B), then the prompts' [B, 2B).
  struct BatchConditioning {
    torch::Tensor context_kv;  // every cross-attention's keys and values (UNetImpl::CrossAttentionKV)
    torch::Tensor pooled, time_ids;
    UNetConditioning unet;  // the IP-Adapter's; the active ControlNets add their residuals per step
    std::vector<ActiveControl> controls;
    bool guided = false;
  };
  // Deep cache (BatchRequest::deep_cache): the deeper levels' output of the last full pass.
  struct DeepCache {
    int every = 0;
    torch::Tensor features;
  };
  // The UNet's noise prediction at `step` of `steps`, guided by `cfg` when `c` holds both halves.
  torch::Tensor GuidedEpsilon(const torch::Tensor& x, double t, const BatchConditioning& c, double cfg, int step,
                              int steps, DeepCache& deep);
  // context/pooled: the prompt embeddings of the rows (both halves when `guided`).
  absl::StatusOr<BatchConditioning> Condition(const BatchRequest& request, const std::vector<ControlNet>& nets,
                                             const torch::Tensor& context, const torch::Tensor& pooled, bool guided);
  // The summed, scaled residuals of the ControlNets active at `step` of `steps`, into `out`.
  void AddControlResiduals(const std::vector<ActiveControl>& controls, const torch::Tensor& input,
                           const torch::Tensor& timestep, const torch::Tensor& pooled, const torch::Tensor& time_ids,
                           int step, int steps, UNetConditioning& out);
  // The batch's control images per ControlNet, embedded on the device, duplicated for CFG
  // unless the ControlNet reads the prompts' half only.
  std::vector<ActiveControl> PrepareControls(const BatchRequest& request, const std::vector<ControlNet>& nets,
                                             const torch::Tensor& context, bool guided);
  torch::Tensor Decode(const torch::Tensor& latents);
  // img2img: each init image as scaled latents sampled from the VAE encoder's distribution
  // with that image's generator (its first draw), [N,4,h,w] float32 on the device.
  torch::Tensor EncodeImages(const BatchRequest& request, std::vector<at::Generator>& generators);
  Vae& Fp32Vae();  // a float32 copy of the VAE, made on first use

  SdxlModels models_;
  std::unique_ptr<ClipTokenizer> tokenizer_, tokenizer_2_;
  PipelineOptions options_;
  uint64_t weights_bytes_ = 0;
  std::unique_ptr<CapturedFunction> unet_graph_;
  Vae vae_fp32_{nullptr};  // fallback when a reduced-precision decode overflows
  std::unique_ptr<LoraMerger> loras_;
  std::unique_ptr<ControlNetCache> controlnets_;
  IpAdapterCache ip_adapters_;
};

}  // namespace spriteforge::engine
