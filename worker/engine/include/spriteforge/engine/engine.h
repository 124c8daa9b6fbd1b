// Public API of the SDXL engine. Plain C++ and Abseil types only: this header is
// included by gRPC/protobuf code, and torch's bundled protobuf headers must never meet
// those (see docs/architecture.md, "The LibTorch boundary").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge::engine {

// Samplers, noise schedules and compute precisions. Names as flags and manifests write them
// ("euler_ancestral", "karras", "bf16") parse at the edge; an unknown name is an error that
// lists the valid ones.
enum class SamplerKind { kEuler, kEulerAncestral, kDpmpp2m, kLcm, kTcd };
// sgm_uniform: diffusers' equivalent of that k-diffusion schedule is trailing spacing.
enum class ScheduleKind { kNormal /* leading spacing */, kTrailing, kSgmUniform, kKarras };
// fp8: bf16 with the UNet's Linear layers as fp8 (e4m3) GEMMs (see LoadOptions::dtype).
enum class Dtype { kFp32, kFp16, kBf16, kFp8 };

absl::StatusOr<SamplerKind> ParseSampler(const std::string& name);    // also euler_a
absl::StatusOr<ScheduleKind> ParseSchedule(const std::string& name);  // also leading
absl::StatusOr<Dtype> ParseDtype(const std::string& name);
std::string SamplerName(SamplerKind sampler);
std::string ScheduleName(ScheduleKind schedule);
std::string DtypeName(Dtype dtype);

// lcm and tcd take their own timesteps (the distillation schedule), so they run only with
// the normal schedule; an error names the sampler and the schedule. The engine's one
// statement of the rule: ValidateRequest and the schedule builder ask it. The service states
// it for the API's enums in common/sampling.h (CheckSamplerSchedule), which may not include
// this header; the adapter's tests hold the two equal for every pair of values.
absl::Status CheckSamplerSchedule(SamplerKind sampler, ScheduleKind schedule);

// How to load a model. `model_path` is a single-file checkpoint (original SDXL key
// layout), a diffusers folder, or a built-in architecture with random weights:
// "builtin:tiny" (the golden tiny model's shape: demos and tests on a CPU) or
// "builtin:sdxl-base" (full size: benchmarks).
struct LoadOptions {
  std::string model_path;
  std::string config_dir;     // diffusers-style folder of */config.json; empty: built-in / model's own
  // vocab.json + merges.txt; empty: <model folder>/tokenizer, else the CLIP vocabulary
  // shipped with the engine (share/spriteforge/clip, or the source tree's data/clip)
  std::string tokenizer_dir;
  std::string device = "cpu"; // "cpu", "cuda", "cuda:N"
  // fp8: bf16 with the UNet's Linear layers as fp8 (e4m3) GEMMs, inputs scaled per token
  // and weights per output channel (CUDA, compute capability 8.9+; lossy: about 4% relative
  // error per GEMM, see docs/performance.md).
  Dtype dtype = Dtype::kFp32;
  bool fast_path = true;      // GPU only: cuDNN autotuning plus the two switches below
  // fast path: the UNet in channels-last (NHWC) layout, with NHWC GroupNorm and residual
  // kernels. Measured on an H100 (fp16): 3.5% faster at batch 8, 2.6% at batch 1.
  bool channels_last = true;
  bool cuda_graphs = true;    // fast path: replay the guided UNet step as a CUDA graph
  // fast path, fp16/bf16: fused GroupNorm+SiLU, GEGLU, residual+LayerNorm and residual+bias
  // kernels where the engine was built with the CUDA toolkit. Process-wide: the last engine
  // loaded decides.
  bool fused_kernels = true;
  // Images per VAE decode call on CUDA. Decoding costs ~2 GB of activations per 1024x1024
  // image and barely speeds up when batched, so one at a time keeps the peak low; 0 sizes
  // the chunk from free memory instead.
  int decode_batch = 1;
  // The VAE's precision (fp32, fp16 or bf16); unset: the model's (bf16 for fp8). bf16 keeps
  // float32's range: SDXL's VAE overflows in fp16 on real weights, and an overflowed decode
  // is done again in float32.
  std::optional<Dtype> vae_dtype;
  // fast path: the VAE in channels-last (NHWC) layout as well: its convolutions skip cuDNN's
  // layout transposes (a 1024x1024 decode: 38.1 -> 33.9 ms on an H100, see docs/performance.md).
  bool vae_channels_last = true;
};

// A LoRA to merge for a batch: a .safetensors file in kohya naming (lora_unet_*, lora_te1_*,
// lora_te2_*; SGM or diffusers module paths) or diffusers/PEFT naming (unet.*, text_encoder.*,
// text_encoder_2.*; lora_A/lora_B), and its strength (A1111's <lora:name:strength>).
// Only Linear layers: LoCon/LyCORIS files are refused with an error naming the tensor.
struct LoraSpec {
  std::string path;
  double strength = 1.0;
};

// An 8-bit RGB image, rows top to bottom (an img2img starting point).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width*height*3
};

// A ControlNet acting on a batch (its control images come with each ImageRequest, in the
// order of BatchRequest::controlnets). `model_path`: a diffusers ControlNet folder
// (config.json + diffusion_pytorch_model.safetensors) or that .safetensors file with its
// config.json beside it; fp16 or fp32. Its residuals, times `scale`, are added to the UNet's
// skip connections and mid block at step i of N only while start <= i/N and (i+1)/N <= end.
// N counts the steps that run: for img2img int(steps * strength), i from 0 at the first of
// them (as diffusers' ControlNet img2img pipeline counts). Several ControlNets: their
// residuals are summed. The ControlNet reads the same latents, timestep, prompt embeddings
// and time ids as the UNet (both CFG halves) plus its control image as RGB in [0,1]; it is
// not touched by the batch's LoRAs and does not see IP-Adapter tokens. Loaded ControlNets
// stay cached by path while consecutive batches use them (a changed file is reloaded).
// Guess mode (diffusers' guess_mode, A1111's "ControlNet is more important"): with CFG the
// ControlNet reads the prompts' half only and the negative half gets no residuals (half its
// work); its down residuals are weighted scale * 10^(-1 + i/n), i-th of n, the mid one
// scale. Global-pooling ControlNets (shuffle) always act on the prompts' half alone.
struct ControlNetSpec {
  std::string model_path;
  double scale = 1.0;
  double start = 0.0;
  double end = 1.0;
  bool guess_mode = false;
};

// An IP-Adapter acting on a batch (reference images come with each ImageRequest).
// `adapter_path`: h94's .safetensors layout, plain (image_proj.proj/norm) or Plus (perceiver
// resampler); `encoder_dir`: a transformers CLIPVisionModelWithProjection folder
// (config.json + model.safetensors). In every cross-attention: out = attn(q, text) +
// scale * attn(q, image tokens). Several reference images: their tokens are concatenated.
struct IpAdapterSpec {
  std::string adapter_path;
  std::string encoder_dir;
  double scale = 1.0;
};

// One image to render. A missing negative means zeroed unconditional embeddings; an
// empty string is encoded like any other prompt. Prompts use A1111's attention syntax:
// (word) x1.1, ((word)) x1.21, [word] /1.1, (word:1.3), \( for a literal bracket, BREAK to
// start a new 75-token chunk; longer prompts are encoded in chunks of 75 tokens.
struct ImageRequest {
  std::string prompt;
  std::optional<std::string> negative;
  uint64_t seed = 0;
  // img2img: start from this image (its size must be the batch's width x height). Either
  // every image of a batch has one or none has.
  std::optional<RgbImage> init_image;
  // One control image per BatchRequest::controlnets entry, in that order, each of the
  // batch's width x height (RGB as drawn: a pose on black, canny edges, a depth map, ...).
  std::vector<RgbImage> control_images;
  // With BatchRequest::ip_adapter: this image's reference images (one or more, any size;
  // resized and centre-cropped to the encoder's input as the encoder expects).
  std::vector<RgbImage> reference_images;
};

// A batch of compatible images: they share size, steps, guidance, sampler, schedule and
// LoRA set.
struct BatchRequest {
  std::vector<ImageRequest> images;
  int width = 1024;
  int height = 1024;
  int steps = 30;
  double cfg = 5.0;                 // 1.0 or less: no unconditional pass (one UNet call per image)
  // lcm and tcd take their own timesteps: schedule normal (CheckSamplerSchedule).
  SamplerKind sampler = SamplerKind::kEuler;
  ScheduleKind schedule = ScheduleKind::kNormal;
  double tcd_gamma = 0.3;           // tcd: stochasticity per step (diffusers' eta), 0..1
  bool tileable = false;            // circular padding in UNet and VAE convolutions
  // Merged into the weights for this batch (and kept merged until a batch asks for a
  // different set). Files are read once and cached while unchanged on disk.
  std::vector<LoraSpec> loras;
  // img2img (images with an init_image): how much of the schedule runs, 0..1. The last
  // int(steps * strength) timesteps run, starting from the encoded image noised to the
  // first of them; the rest are skipped (A1111's "Denoising strength").
  double strength = 1.0;
  // Hand the batch's latents to Generate's `preview` after every step divisible by this
  // (0: never). Costs one device-to-host copy of the small latents per preview step.
  int preview_every = 0;
  // Image::rgb_f32 filled too (the golden checks read it). Without it only the 8-bit pixels
  // come back: made on the device, a quarter of the bytes to copy, no host-side rounding.
  bool float_pixels = true;
  // Conditioning shared by the batch; each image brings its own control and reference images.
  std::vector<ControlNetSpec> controlnets;
  std::optional<IpAdapterSpec> ip_adapter;
  // Opt-in speed-ups that change pixels (off by default; docs/performance.md gives their
  // cost). Guidance interval: CFG only at step i of N while guidance_start <= i/N and
  // (i+1)/N <= guidance_end (a ControlNet's window); the other steps run the UNet on the
  // prompt alone, half the work. Deep cache N >= 2: a full UNet pass every N steps; the
  // steps between run only its full-resolution levels and reuse the deeper levels' output
  // of the last full pass (not with ControlNets). 0 or 1: off.
  double guidance_start = 0.0;
  double guidance_end = 1.0;
  int deep_cache = 0;
};

// An 8-bit RGB image, rows top to bottom, plus the same pixels as floats in [0,1]
// (kept so tests can compare with the reference at full precision).
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;    // width*height*3
  std::vector<float> rgb_f32;  // width*height*3, in [0,1]; empty unless BatchRequest::float_pixels
  // What the engine had to change in this image's request, one line each (e.g. a prompt
  // cut at the token limit); also logged.
  std::vector<std::string> notes;
};

struct Timings {
  double encode_ms = 0;   // text encoding
  double denoise_ms = 0;  // all sampling steps
  double decode_ms = 0;   // VAE decode
  double total_ms = 0;
  double lora_ms = 0;     // merging a new LoRA set before the batch (0 when the set is unchanged)
};

// Device memory as the engine sees it. On CUDA: caching-allocator statistics; on unified
// memory and on the CPU the process/system figures.
struct MemoryStats {
  uint64_t total_bytes = 0;           // device total
  uint64_t free_bytes = 0;            // device free now (system available on unified memory)
  uint64_t weights_bytes = 0;         // resident model weights
  uint64_t peak_allocated_bytes = 0;  // since the last ResetPeak
  uint64_t peak_reserved_bytes = 0;
  uint64_t lora_bytes = 0;            // cached LoRA files (host) and the merged layers' originals (host or device)
  uint64_t reserved_bytes = 0;        // device memory the allocator holds now (0 on the CPU)
  bool host_memory = false;           // total and free are the machine's RAM (the CPU, unified memory)
};

struct DeviceInfo {
  std::string name;                 // e.g. "NVIDIA H100 80GB HBM3" or "cpu"
  std::string compute_capability;   // e.g. "9.0"; empty on CPU
  bool unified_memory = false;      // GB10-style shared CPU/GPU memory
  uint64_t total_bytes = 0;
};

struct BatchResult {
  std::vector<Image> images;  // in request order
  Timings timings;
  MemoryStats memory;         // peaks measured during this batch
};

// Called after every sampling step; return false to cancel (checked between steps).
using ProgressFn = std::function<bool(int step, int total_steps)>;

// A batch's latents at a preview step: the sampler's current estimate of the finished
// latents (its denoised prediction, which shows the picture long before the noisy sample
// does), in the UNet's latent scale. Float32, images x channels x height x width (1/8 of
// the image size), channels first. LatentsToRgb (latent_preview.h) turns one image into
// a small RGB picture without the VAE.
struct StepLatents {
  int step = 0;
  int total_steps = 0;
  int images = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> values;
  const float* image(int i) const { return values.data() + static_cast<size_t>(i) * channels * height * width; }
};
// Called after the step's progress on every preview step (BatchRequest::preview_every).
using PreviewFn = std::function<void(const StepLatents& latents)>;

// Reason a generation failed, so callers can react (split a batch on out-of-memory).
enum class FailureKind { kNone, kOutOfMemory, kCancelled, kInvalidArgument, kInternal };
FailureKind ClassifyFailure(const absl::Status& status);

class Engine {
 public:
  virtual ~Engine() = default;

  static absl::StatusOr<std::unique_ptr<Engine>> Load(const LoadOptions& options);

  // Validates the request (sizes multiple of 8, known sampler/schedule, ...) before any work.
  virtual absl::StatusOr<BatchResult> Generate(const BatchRequest& request,
                                               const ProgressFn& progress = nullptr,
                                               const PreviewFn& preview = nullptr) = 0;

  // Peak memory of a batch of `batch` images at height x width, measured with a short
  // run (one guided UNet step and one decode), without a full generation.
  virtual absl::StatusOr<MemoryStats> Calibrate(int batch, int height, int width) = 0;

  // Device memory, weights and LoRA bytes now. Safe to call from any thread, also while
  // Generate runs on another (a worker's heartbeat reports it mid-batch).
  virtual MemoryStats Memory() const = 0;
  virtual DeviceInfo Device() const = 0;
};

// Checks a request without a model, with one clear line for the first problem: Generate
// calls it before any work, and spriteforge-generate before it loads a model. The service
// cannot include this header: it checks the API's parameters earlier with common/'s rules
// (the manifest check), and the worker's bad batches come back from Generate.
absl::Status ValidateRequest(const BatchRequest& request);

}  // namespace spriteforge::engine
