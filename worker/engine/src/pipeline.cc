#include "worker/engine/src/pipeline.h"

#include <chrono>
#include <set>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/base/schedule.h"
#include "worker/engine/src/device.h"
#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/sampler.h"

namespace spriteforge::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Step i of N is inside [start, end] while start <= i/N and (i+1)/N <= end (a ControlNet's
// window, as the reference counts it; the guidance interval counts the same way).
bool StepInWindow(int step, int steps, double start, double end) {
  const double at = static_cast<double>(step) / steps, next = static_cast<double>(step + 1) / steps;
  return at >= start && next <= end;
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

uint64_t ParameterBytes(torch::nn::Module& module) {
  uint64_t bytes = 0;
  for (auto& p : module.parameters()) bytes += p.numel() * p.element_size();
  return bytes;
}

// Initial latents and ancestral noise come from one CPU generator per image, seeded with
// its seed, in float32: an image depends on its own seed only, whatever batch it is in.
struct NoiseSource {
  std::vector<at::Generator> generators;
  std::vector<int64_t> shape;

  torch::Tensor Draw() {
    std::vector<torch::Tensor> parts;
    for (auto& g : generators) parts.push_back(torch::randn(shape, g, torch::kFloat));
    return torch::cat(parts, 0);
  }
};

// The captured UNet step's inputs: sample, timestep, the prompts' keys and values, pooled
// embedding, time ids; then the ControlNet residuals (4-D: the down ones, then the mid one);
// then the IP-Adapter's image keys and values and its scale (1-D).
std::vector<torch::Tensor> StepInputs(std::vector<torch::Tensor> inputs, const UNetConditioning& c) {
  inputs.insert(inputs.end(), c.down_residuals.begin(), c.down_residuals.end());
  if (c.mid_residual.defined()) inputs.push_back(c.mid_residual);
  if (c.ip_kv.defined()) inputs.insert(inputs.end(), {c.ip_kv, c.ip_scale});
  return inputs;
}

UNetConditioning StepConditioning(const std::vector<torch::Tensor>& in) {
  UNetConditioning c;
  size_t i = 5;
  for (; i < in.size() && in[i].dim() == 4; ++i) c.down_residuals.push_back(in[i]);
  if (!c.down_residuals.empty()) {
    c.mid_residual = c.down_residuals.back();
    c.down_residuals.pop_back();
  }
  if (i + 2 <= in.size()) c.ip_kv = in[i], c.ip_scale = in[i + 1];
  return c;
}

// The denoised prediction as plain floats on the host (a preview step's only copy).
StepLatents ToStepLatents(const torch::Tensor& denoised, int step, int total) {
  torch::Tensor host = denoised.detach().to(torch::kCPU, torch::kFloat).contiguous();
  StepLatents out;
  out.step = step;
  out.total_steps = total;
  out.images = static_cast<int>(host.size(0));
  out.channels = static_cast<int>(host.size(1));
  out.height = static_cast<int>(host.size(2));
  out.width = static_cast<int>(host.size(3));
  out.values.assign(host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
  return out;
}

}  // namespace

Pipeline::Pipeline(SdxlModels models, std::unique_ptr<ClipTokenizer> tokenizer,
                   std::unique_ptr<ClipTokenizer> tokenizer_2, PipelineOptions options)
    : models_(std::move(models)),
      tokenizer_(std::move(tokenizer)),
      tokenizer_2_(std::move(tokenizer_2)),
      options_(options) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::nn::Module*> all = {models_.text_encoder.get(), models_.text_encoder_2.get(),
                                               models_.unet.get(), models_.vae.get()};
  for (torch::nn::Module* m : all) m->to(options_.device, m == models_.vae.get() ? options_.vae_dtype : options_.dtype);
  // Counted after quantization, which releases the UNet's 16-bit Linear weights.
  if (options_.fp8_linear) weights_bytes_ += QuantizeLinearsToFp8(*models_.unet);
  for (torch::nn::Module* m : all) weights_bytes_ += ParameterBytes(*m);
  ReleaseCachedMemory(options_.device);
  // float32 means float32: no TF32 convolutions behind the caller's back.
  if (options_.device.is_cuda() && options_.dtype == torch::kFloat) at::globalContext().setAllowTF32CuDNN(false);
  const bool fast_cuda = options_.fast_path && options_.device.is_cuda();
  if (options_.device.is_cuda()) SetFusedKernelsEnabled(fast_cuda && options_.fused_kernels);
  if (fast_cuda) {
    EnableCudnnBenchmark();
    // The UNet: its GroupNorms, residual sums and token views all have channels-last
    // kernels; the VAE on request (LoadOptions::vae_channels_last).
    if (options_.UseChannelsLast()) ToChannelsLast(*models_.unet);
    if (options_.VaeChannelsLast()) ToChannelsLast(*models_.vae);
    models_.unet->FuseSelfAttentionProjections();
    if (options_.cuda_graphs && CapturedFunction::Supported(options_.device)) {
      UNetImpl* unet = models_.unet.get();
      unet_graph_ = std::make_unique<CapturedFunction>([unet](const std::vector<torch::Tensor>& in) {
        // ControlNet residuals and the IP-Adapter's image keys/values are static inputs too
        // (the ControlNets themselves run before the graph, outside it).
        return unet->ForwardWithKV(in[0], in[1], in[2], in[3], in[4], StepConditioning(in));
      });
    }
  }
  // After fusing and quantizing: merges write into the weights as they are stored now.
  loras_ = std::make_unique<LoraMerger>(models_, options_.device);
  controlnets_ = std::make_unique<ControlNetCache>(
      models_.config.unet, ControlNetRunOptions{options_.device, options_.dtype, options_.UseChannelsLast(),
                                                options_.fp8_linear, fast_cuda});
}

absl::StatusOr<EncodedPrompts> Pipeline::Encode(const std::vector<std::string>& prompts) {
  return EncodePrompts(prompts, *tokenizer_, *tokenizer_2_, *models_.text_encoder, *models_.text_encoder_2, options_.device);
}

torch::Tensor Pipeline::GuidedEpsilon(const torch::Tensor& x, double t, const BatchConditioning& c, double cfg,
                                      int step, int steps, DeepCache& deep) {
  torch::Tensor input = (c.guided ? torch::cat({x, x}, 0) : x).to(options_.dtype);
  if (options_.UseChannelsLast()) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  torch::Tensor timestep = torch::full({1}, t, torch::TensorOptions().dtype(torch::kFloat).device(options_.device));
  UNetConditioning conditioning = c.unet;
  AddControlResiduals(c.controls, input, timestep, c.pooled, c.time_ids, step, steps, conditioning);
  torch::Tensor eps;
  if (deep.every > 1) {
    // Deep features kept from a guided pass serve a prompt-only one as their second half.
    torch::Tensor& kept = deep.features;
    const bool fits = kept.defined() && kept.size(0) >= input.size(0);
    if (step % deep.every == 0 || !fits) {
      conditioning.keep_deep = &kept;
    } else {
      conditioning.reuse_deep = kept.size(0) == input.size(0) ? kept : kept.narrow(0, input.size(0), input.size(0));
    }
    eps = models_.unet->ForwardWithKV(input, timestep, c.context_kv, c.pooled, c.time_ids, conditioning);
  } else {
    eps = unet_graph_ ? (*unet_graph_)(StepInputs({input, timestep, c.context_kv, c.pooled, c.time_ids}, conditioning))
                      : models_.unet->ForwardWithKV(input, timestep, c.context_kv, c.pooled, c.time_ids, conditioning);
  }
  eps = eps.to(torch::kFloat);
  if (!c.guided) return eps;
  auto halves = eps.chunk(2, 0);
  return halves[0] + cfg * (halves[1] - halves[0]);
}

void Pipeline::AddControlResiduals(const std::vector<ActiveControl>& controls, const torch::Tensor& input,
                                   const torch::Tensor& timestep, const torch::Tensor& pooled,
                                   const torch::Tensor& time_ids, int step, int steps, UNetConditioning& out) {
  for (const ActiveControl& control : controls) {
    if (control.spec.scale == 0 || !StepInWindow(step, steps, control.spec.start, control.spec.end)) continue;
    const int64_t rows = input.size(0), b = control.prompts_half ? rows / 2 : 0;
    auto half = [&](const torch::Tensor& t) { return control.prompts_half ? t.narrow(0, b, rows - b) : t; };
    ControlNetImpl::Residuals r =
        control.net->ForwardWithKV(half(input), timestep, control.kv, half(pooled), half(time_ids), control.cond_embedding,
                                   control.spec.scale, control.spec.guess_mode);
    if (control.prompts_half) {
      // The negative half's rows get nothing from this ControlNet.
      auto padded = [](const torch::Tensor& t) { return torch::cat({torch::zeros_like(t), t}, 0); };
      for (torch::Tensor& d : r.down) d = padded(d);
      r.mid = padded(r.mid);
    }
    if (out.down_residuals.empty()) {
      out.down_residuals = std::move(r.down);
      out.mid_residual = r.mid;
      continue;
    }
    for (size_t i = 0; i < r.down.size(); ++i) out.down_residuals[i] = out.down_residuals[i] + r.down[i];
    out.mid_residual = out.mid_residual + r.mid;
  }
}

absl::StatusOr<Pipeline::BatchConditioning> Pipeline::Condition(const BatchRequest& request,
                                                                 const std::vector<ControlNet>& nets,
                                                                 const torch::Tensor& context, const torch::Tensor& pooled,
                                                                 bool guided) {
  BatchConditioning c;
  c.guided = guided;
  c.pooled = pooled;
  const float h = static_cast<float>(request.height), w = static_cast<float>(request.width);
  c.time_ids = torch::tensor({h, w, 0.0f, 0.0f, h, w}).to(options_.device, options_.dtype)
                   .unsqueeze(0).expand({context.size(0), 6}).contiguous();
  c.context_kv = models_.unet->CrossAttentionKV(context);
  c.controls = PrepareControls(request, nets, context, guided);
  // IP-Adapter: the reference images' keys and values, once per batch (not per step).
  if (request.ip_adapter) {
    ASSIGN_OR_RETURN(IpAdapter* ip, ip_adapters_.Get(*request.ip_adapter, *models_.unet, options_.device, options_.dtype));
    c.unet.ip_kv = ip->BatchKV(request.images, guided);
    c.unet.ip_scale = torch::full({1}, request.ip_adapter->scale, torch::dtype(options_.dtype).device(options_.device));
  }
  return c;
}

std::vector<Pipeline::ActiveControl> Pipeline::PrepareControls(const BatchRequest& request, const std::vector<ControlNet>& nets,
                                                               const torch::Tensor& context, bool guided) {
  std::vector<ActiveControl> controls;
  for (size_t j = 0; j < nets.size(); ++j) {
    std::vector<torch::Tensor> images;
    for (const ImageRequest& image : request.images) {
      const RgbImage& control = image.control_images[j];
      torch::Tensor pixels = torch::from_blob(const_cast<uint8_t*>(control.rgb.data()), {control.height, control.width, 3}, torch::kByte)
                                 .permute({2, 0, 1}).to(torch::kFloat);
      images.push_back(pixels / 255.0);  // [0, 1] in float32, no normalisation, as the reference
    }
    torch::Tensor cond = torch::stack(images).to(options_.device, options_.dtype);
    if (options_.UseChannelsLast()) cond = cond.contiguous(at::MemoryFormat::ChannelsLast);
    ControlNet net = nets[j];
    net->set_tiling(request.tileable);
    // The images' embedding is the same at every step and for both CFG halves: once per batch.
    torch::Tensor embedding = net->EmbedCondition(cond);
    const ControlNetSpec& spec = request.controlnets[j];
    const bool prompts_half = guided && (spec.guess_mode || net->config().global_pool_conditions);
    if (guided && !prompts_half) embedding = torch::cat({embedding, embedding}, 0);
    const int64_t rows = context.size(0);
    const torch::Tensor read = prompts_half ? context.narrow(0, rows / 2, rows - rows / 2) : context;
    controls.push_back({net, spec, embedding, net->CrossAttentionKV(read), prompts_half});
  }
  return controls;
}

torch::Tensor Pipeline::Decode(const torch::Tensor& latents) {
  torch::NoGradGuard no_grad;
  torch::Tensor z = latents / models_.config.vae.scaling_factor;
  // Decode in chunks: activations at 1024x1024 cost about 2 GB per image.
  int64_t chunk = z.size(0);
  if (options_.device.is_cuda()) {
    const double per_image = 2.2e9 * (z.size(2) * z.size(3)) / (128.0 * 128.0);
    const int64_t fits = static_cast<int64_t>(QueryMemory(options_.device).free_bytes * 0.7 / per_image);
    chunk = std::max<int64_t>(1, std::min<int64_t>(chunk, options_.decode_batch > 0 ? options_.decode_batch : fits));
  }
  std::vector<torch::Tensor> images;
  for (int64_t start = 0; start < z.size(0); start += chunk) {
    torch::Tensor part = z.slice(0, start, std::min(start + chunk, z.size(0)));
    torch::Tensor input = part.to(options_.vae_dtype).contiguous(
        options_.VaeChannelsLast() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    torch::Tensor image = models_.vae->decode(input).to(torch::kFloat);
    // Reduced precision can overflow in the VAE: redo such a chunk in float32.
    if (options_.vae_dtype != torch::kFloat && !torch::isfinite(image).all().item<bool>()) {
      spdlog::warn("VAE decode overflowed in reduced precision; redoing {} image(s) in float32", part.size(0));
      image = Fp32Vae()->decode(part.to(torch::kFloat));
    }
    images.push_back(image);
  }
  return torch::cat(images, 0);
}

Vae& Pipeline::Fp32Vae() {
  if (!vae_fp32_) {
    vae_fp32_ = Vae(models_.config.vae);
    vae_fp32_->eval();
    auto src = models_.vae->named_parameters(true);
    for (auto& p : vae_fp32_->named_parameters(true)) p.value().copy_(src[p.key()].to(torch::kFloat).cpu());
    vae_fp32_->to(options_.device);
  }
  return vae_fp32_;
}

torch::Tensor Pipeline::EncodeImages(const BatchRequest& request, std::vector<at::Generator>& generators) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> latents;
  for (size_t i = 0; i < request.images.size(); ++i) {
    const RgbImage& init = *request.images[i].init_image;
    torch::Tensor pixels = torch::from_blob(const_cast<uint8_t*>(init.rgb.data()), {1, init.height, init.width, 3}, torch::kByte)
                               .permute({0, 3, 1, 2}).to(torch::kFloat);
    // [0, 255] -> [-1, 1] in float32, as the reference's image processor does it.
    pixels = (pixels / 255.0) * 2.0 - 1.0;
    auto [mean, logvar] = models_.vae->encode_distribution(pixels.to(options_.device, options_.vae_dtype));
    if (options_.vae_dtype != torch::kFloat && !(torch::isfinite(mean).all().item<bool>() && torch::isfinite(logvar).all().item<bool>())) {
      spdlog::warn("VAE encode overflowed in reduced precision; redoing it in float32");
      std::tie(mean, logvar) = Fp32Vae()->encode_distribution(pixels.to(options_.device));
    }
    mean = mean.to(torch::kFloat);
    torch::Tensor std = torch::exp(0.5 * logvar.to(torch::kFloat).clamp(-30.0, 20.0));
    torch::Tensor draw = torch::randn(mean.sizes(), generators[i], torch::kFloat).to(options_.device);
    latents.push_back((mean + std * draw) * models_.config.vae.scaling_factor);
  }
  return torch::cat(latents, 0);
}

absl::StatusOr<BatchResult> Pipeline::Generate(const BatchRequest& request, const ProgressFn& progress,
                                               const PreviewFn& preview) {
  RETURN_IF_ERROR(ValidateRequest(request));
  const SamplerKind sampler = request.sampler;
  ASSIGN_OR_RETURN(auto schedule, MakeSchedule(models_.config.scheduler, sampler, request.schedule, request.steps));
  const bool img2img = request.images.front().init_image.has_value();
  if (img2img) {
    ASSIGN_OR_RETURN(schedule, LastSteps(schedule, request.strength));
  }
  const auto lora_start = Clock::now();
  RETURN_IF_ERROR(loras_->Activate(request.loras));
  const double lora_ms = MsSince(lora_start);
  // Loaded once and kept while batches use them; the others are freed.
  std::vector<std::string> controlnet_paths;
  for (const ControlNetSpec& spec : request.controlnets) controlnet_paths.push_back(spec.model_path);
  ASSIGN_OR_RETURN(const std::vector<ControlNet> controlnets, controlnets_->Use(controlnet_paths));
  models_.unet->set_tiling(request.tileable);
  models_.vae->set_tiling(request.tileable);

  torch::NoGradGuard no_grad;
  const torch::Device& device = options_.device;
  const int64_t n = static_cast<int64_t>(request.images.size());
  const bool guided = request.cfg > 1.0;
  BatchResult result;
  ResetPeakMemory(device);
  Synchronize(device);
  const auto start = Clock::now();

  // Text: each distinct prompt once.
  std::vector<std::string> distinct;
  std::map<std::string, int64_t> row;
  auto want = [&](const std::string& p) {
    if (row.emplace(p, static_cast<int64_t>(distinct.size())).second) distinct.push_back(p);
  };
  for (const auto& image : request.images) {
    want(image.prompt);
    if (guided && image.negative) want(*image.negative);
  }
  ASSIGN_OR_RETURN(auto encoded, Encode(distinct));
  const torch::Tensor& all_context = encoded.context;
  const torch::Tensor& all_pooled = encoded.pooled;
  std::vector<torch::Tensor> cond_c, cond_p, uncond_c, uncond_p;
  std::vector<std::vector<std::string>> notes;
  for (const auto& image : request.images) {
    int64_t r = row[image.prompt];
    notes.emplace_back();
    if (!encoded.notes[r].empty()) notes.back().push_back(encoded.notes[r]);
    if (guided && image.negative && !encoded.notes[row[*image.negative]].empty()) {
      notes.back().push_back("negative " + encoded.notes[row[*image.negative]]);
    }
    cond_c.push_back(all_context[r]);
    cond_p.push_back(all_pooled[r]);
    if (!guided) continue;
    if (image.negative) {
      int64_t u = row[*image.negative];
      uncond_c.push_back(all_context[u]);
      uncond_p.push_back(all_pooled[u]);
    } else {
      uncond_c.push_back(torch::zeros_like(all_context[r]));
      uncond_p.push_back(torch::zeros_like(all_pooled[r]));
    }
  }
  torch::Tensor context = torch::stack(cond_c), pooled = torch::stack(cond_p);
  if (guided) {
    context = torch::cat({torch::stack(uncond_c), context}, 0);
    pooled = torch::cat({torch::stack(uncond_p), pooled}, 0);
  }
  ASSIGN_OR_RETURN(const BatchConditioning both, Condition(request, controlnets, context, pooled, guided));
  // Guidance interval: the steps outside it read the prompts' rows alone.
  const bool interval = guided && (request.guidance_start > 0 || request.guidance_end < 1);
  BatchConditioning prompts_only;
  if (interval) {
    ASSIGN_OR_RETURN(prompts_only, Condition(request, controlnets, context.narrow(0, n, n), pooled.narrow(0, n, n), false));
  }
  Synchronize(device);
  result.timings.encode_ms = MsSince(start);
  result.timings.lora_ms = lora_ms;

  // Denoise.
  const auto denoise_start = Clock::now();
  NoiseSource noise{{}, {1, 4, request.height / 8, request.width / 8}};
  for (const auto& image : request.images) noise.generators.push_back(at::detail::createCPUGenerator(image.seed));
  torch::Tensor x;
  if (img2img) {
    // Per generator: the encoder's draw first, then the noise added at the first kept step.
    torch::Tensor x0 = EncodeImages(request, noise.generators);
    x = AddNoise(sampler, schedule, x0, noise.Draw().to(device));
  } else {
    x = (noise.Draw() * schedule.init_noise_sigma).to(device);
  }
  // img2img: the ControlNets' window counts the steps that run (diffusers' img2img pipeline).
  const int steps = static_cast<int>(schedule.timesteps.size());
  DeepCache deep{request.deep_cache, {}};
  EpsilonFn epsilon = [&](const torch::Tensor& xs, double t, int step) {
    if (interval && !StepInWindow(step, steps, request.guidance_start, request.guidance_end)) {
      return GuidedEpsilon(xs, t, prompts_only, 1.0, step, steps, deep);
    }
    return GuidedEpsilon(xs, t, both, request.cfg, step, steps, deep);
  };
  NoiseFn ancestral = [&](int) { return noise.Draw().to(device); };
  StepFn on_step = [&](int step, int total, const torch::Tensor& denoised) {
    const bool go_on = !progress || progress(step, total);
    if (go_on && preview && request.preview_every > 0 && step % request.preview_every == 0) {
      preview(ToStepLatents(denoised, step, total));
    }
    return go_on;
  };
  try {
    x = Sample(sampler, schedule, x, epsilon, ancestral, on_step, request.tcd_gamma);
  } catch (const CancelledError&) {
    return absl::CancelledError("generation cancelled");
  }
  Synchronize(device);
  result.timings.denoise_ms = MsSince(denoise_start);

  // Decode.
  const auto decode_start = Clock::now();
  const torch::Tensor pixels = (Decode(x) / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1}).contiguous();
  // 8-bit on the device (the same float32 rounding as on the host): a quarter of the copy.
  const torch::Tensor bytes = (pixels * 255).round().to(torch::kByte).cpu();
  const torch::Tensor floats = request.float_pixels ? pixels.cpu() : torch::Tensor();
  result.timings.decode_ms = MsSince(decode_start);
  result.timings.total_ms = MsSince(start);
  for (int64_t i = 0; i < n; ++i) {
    Image out;
    out.width = request.width;
    out.height = request.height;
    if (floats.defined()) {
      const torch::Tensor img = floats[i];
      out.rgb_f32.assign(img.data_ptr<float>(), img.data_ptr<float>() + img.numel());
    }
    const torch::Tensor img = bytes[i];
    out.rgb.assign(img.data_ptr<uint8_t>(), img.data_ptr<uint8_t>() + img.numel());
    out.notes = notes[i];
    result.images.push_back(std::move(out));
  }
  result.memory = QueryMemory(device);
  result.memory.weights_bytes = weights_bytes_;
  result.memory.lora_bytes = loras_->cached_bytes();
  return result;
}

absl::StatusOr<MemoryStats> Pipeline::Calibrate(int batch, int height, int width) {
  BatchRequest request;
  request.width = width;
  request.height = height;
  request.steps = 1;
  request.cfg = 5.0;
  request.float_pixels = false;  // as the worker's batches, whose peak this measures
  for (int i = 0; i < batch; ++i) request.images.push_back({"calibration", std::nullopt, static_cast<uint64_t>(i)});
  ASSIGN_OR_RETURN(auto result, Generate(request, nullptr));
  return result.memory;
}

}  // namespace spriteforge::engine
