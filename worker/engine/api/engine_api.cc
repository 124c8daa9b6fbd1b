// The public engine API over the pipeline. The only file of the shared library that
// callers reach; everything torch stays behind it.
#include <cmath>
#include <filesystem>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/base/checkpoint_check.h"
#include "worker/engine/base/schedule.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/device.h"
#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/pipeline.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

constexpr char kBuiltinPrefix[] = "builtin:";

// LibTorch appends a C++ backtrace to its exception messages: users get the first line.
std::string FirstLine(std::string what) {
  if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return what;
}

// fp8 is a bfloat16 model whose UNet Linears run as fp8 GEMMs.
torch::ScalarType TorchDtype(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFp16: return torch::kHalf;
    case Dtype::kBf16:
    case Dtype::kFp8: return torch::kBFloat16;
    default: return torch::kFloat;
  }
}

absl::StatusOr<torch::Device> ParseDevice(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || absl::StartsWith(name, "cuda:")) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat("device '", name, "' requested but CUDA is not available"));
    }
    try {
      torch::Device device(name);
      if (device.index() < 0) device = torch::Device(torch::kCUDA, 0);
      if (device.index() >= static_cast<int>(torch::cuda::device_count())) {
        return absl::InvalidArgumentError(absl::StrCat("device '", name, "': only ",
                                                       torch::cuda::device_count(), " CUDA device(s)"));
      }
      return device;
    } catch (const c10::Error&) {
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown device '", name, "' (expected cpu, cuda or cuda:N)"));
}

// The CLIP vocabulary shipped with the engine (worker/engine/data/clip): the installed copy,
// found relative to the running program (PREFIX/bin -> PREFIX/share/spriteforge/clip) or at
// the configured install prefix, then the source tree's for programs run from a build folder.
std::vector<fs::path> ShippedTokenizerDirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back(exe.parent_path().parent_path() / "share" / "spriteforge" / "clip");
  dirs.push_back(SPRITEFORGE_CLIP_INSTALL_DIR);
  dirs.push_back(SPRITEFORGE_CLIP_SOURCE_DIR);
  return dirs;
}

// Tokenizer folders, first found: --tokenizer, the model's own (tokenizer/ in a diffusers
// folder or beside a single-file checkpoint), the vocabulary shipped with the engine.
absl::Status LoadTokenizers(const LoadOptions& o, bool builtin, std::unique_ptr<ClipTokenizer>& t1,
                            std::unique_ptr<ClipTokenizer>& t2) {
  std::string dir = o.tokenizer_dir;
  if (dir.empty() && !builtin) {
    fs::path base = fs::is_directory(o.model_path) ? fs::path(o.model_path) : fs::path(o.model_path).parent_path();
    dir = (base / "tokenizer").string();
    if (!fs::exists(base / "tokenizer" / "vocab.json")) {
      for (const fs::path& shipped : ShippedTokenizerDirs()) {
        if (fs::exists(shipped / "vocab.json") && fs::exists(shipped / "merges.txt")) {
          dir = shipped.string();
          spdlog::info("no tokenizer/ beside {}: using the CLIP vocabulary in {}", o.model_path, dir);
          break;
        }
      }
    }
  }
  if (dir.empty()) {
    spdlog::warn("built-in model without --tokenizer: prompts are encoded byte by byte");
    t1 = ClipTokenizer::ByteFallback(49407);
    t2 = ClipTokenizer::ByteFallback(0);
    return absl::OkStatus();
  }
  if (!fs::exists(fs::path(dir) / "vocab.json")) {
    return absl::NotFoundError(absl::StrCat(dir, ": no vocab.json (pass --tokenizer DIR with vocab.json and merges.txt)"));
  }
  // tokenizer_2 sits beside tokenizer/ when present; the vocabulary is the same file.
  fs::path dir2 = fs::path(dir).parent_path() / "tokenizer_2";
  if (!fs::exists(dir2 / "vocab.json")) dir2 = dir;
  ASSIGN_OR_RETURN(auto a, ClipTokenizer::Load(dir, "<|endoftext|>"));
  ASSIGN_OR_RETURN(auto b, ClipTokenizer::Load(dir2.string(), "!"));
  t1 = std::move(a);
  t2 = std::move(b);
  return absl::OkStatus();
}

class EngineImpl : public Engine {
 public:
  explicit EngineImpl(std::unique_ptr<Pipeline> pipeline) : pipeline_(std::move(pipeline)) {}

  absl::StatusOr<BatchResult> Generate(const BatchRequest& request, const ProgressFn& progress,
                                       const PreviewFn& preview) override {
    try {
      return pipeline_->Generate(request, progress, preview);
    } catch (const std::exception& e) {
      return Classify(e);
    }
  }

  absl::StatusOr<MemoryStats> Calibrate(int batch, int height, int width) override {
    try {
      return pipeline_->Calibrate(batch, height, width);
    } catch (const std::exception& e) {
      return Classify(e);
    }
  }

  MemoryStats Memory() const override {
    MemoryStats m = QueryMemory(pipeline_->device());
    m.weights_bytes = pipeline_->weights_bytes();
    m.lora_bytes = pipeline_->lora_bytes();
    return m;
  }
  DeviceInfo Device() const override { return QueryDevice(pipeline_->device()); }

 private:
  static absl::Status Classify(const std::exception& e) {
    const std::string what = FirstLine(e.what());
    if (absl::StrContains(what, "out of memory")) return absl::ResourceExhaustedError(absl::StrCat("out of memory: ", what));
    return absl::InternalError(what);
  }
  std::unique_ptr<Pipeline> pipeline_;
};

// ControlNets: a model path, a finite scale and a window 0 <= start < end <= 1 each; every
// image brings one control image per ControlNet, of the batch's size.
absl::Status ValidateControls(const BatchRequest& r) {
  for (size_t k = 0; k < r.controlnets.size(); ++k) {
    const ControlNetSpec& c = r.controlnets[k];
    if (c.model_path.empty()) return absl::InvalidArgumentError(absl::StrCat("ControlNet ", k, " has an empty model path"));
    if (!std::isfinite(c.scale)) {
      return absl::InvalidArgumentError(absl::StrCat("ControlNet ", k, " (", c.model_path, "): scale must be a finite number, got ", c.scale));
    }
    if (!(c.start >= 0 && c.start < c.end && c.end <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("ControlNet ", k, " (", c.model_path, "): start ", c.start, " and end ", c.end,
                                                     " must satisfy 0 <= start < end <= 1"));
    }
  }
  for (size_t i = 0; i < r.images.size(); ++i) {
    const auto& controls = r.images[i].control_images;
    if (controls.size() != r.controlnets.size()) {
      return absl::InvalidArgumentError(absl::StrCat("image ", i, " has ", controls.size(), " control images for ",
                                                     r.controlnets.size(), " ControlNets (one each)"));
    }
    for (size_t k = 0; k < controls.size(); ++k) {
      const RgbImage& control = controls[k];
      if (control.width != r.width || control.height != r.height) {
        return absl::InvalidArgumentError(absl::StrCat("image ", i, ": control image ", k, " is ", control.width, "x", control.height,
                                                       ", the batch is ", r.width, "x", r.height, " (sizes must match)"));
      }
      if (control.rgb.size() != static_cast<size_t>(control.width) * control.height * 3) {
        return absl::InvalidArgumentError(absl::StrCat("image ", i, ": control image ", k, " has ", control.rgb.size(),
                                                       " bytes, expected width*height*3"));
      }
    }
  }
  return absl::OkStatus();
}

// IP-Adapter: reference images with it, the same number for every image, none without it.
absl::Status ValidateReferenceImages(const BatchRequest& r) {
  for (size_t i = 0; i < r.images.size(); ++i) {
    const auto& references = r.images[i].reference_images;
    if (!r.ip_adapter) {
      if (references.empty()) continue;
      return absl::InvalidArgumentError(absl::StrCat("image ", i, " has reference images but the batch has no IP-Adapter"));
    }
    if (references.empty()) return absl::InvalidArgumentError(absl::StrCat("image ", i, ": an IP-Adapter needs at least one reference image"));
    if (references.size() != r.images[0].reference_images.size()) {
      return absl::InvalidArgumentError(absl::StrCat("image ", i, " has ", references.size(), " reference images, image 0 has ",
                                                     r.images[0].reference_images.size(), ": every image of a batch needs the same number"));
    }
    for (size_t j = 0; j < references.size(); ++j) {
      const RgbImage& ref = references[j];
      if (ref.width < 1 || ref.height < 1 || ref.width > 8192 || ref.height > 8192 ||
          ref.rgb.size() != static_cast<size_t>(ref.width) * ref.height * 3) {
        return absl::InvalidArgumentError(absl::StrCat("image ", i, ": reference image ", j, " is ", ref.width, "x", ref.height,
                                                       " with ", ref.rgb.size(), " bytes (expected 1..8192 pixels a side, width*height*3 bytes)"));
      }
    }
  }
  if (!r.ip_adapter) return absl::OkStatus();
  if (r.ip_adapter->adapter_path.empty() || r.ip_adapter->encoder_dir.empty()) {
    return absl::InvalidArgumentError("IP-Adapter needs an adapter file and an image encoder folder");
  }
  if (!std::isfinite(r.ip_adapter->scale)) {
    return absl::InvalidArgumentError(absl::StrCat("IP-Adapter scale must be a finite number, got ", r.ip_adapter->scale));
  }
  return absl::OkStatus();
}

}  // namespace

FailureKind ClassifyFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return FailureKind::kNone;
    case absl::StatusCode::kResourceExhausted: return FailureKind::kOutOfMemory;
    case absl::StatusCode::kCancelled: return FailureKind::kCancelled;
    case absl::StatusCode::kInvalidArgument: return FailureKind::kInvalidArgument;
    default: return FailureKind::kInternal;
  }
}

absl::Status ValidateRequest(const BatchRequest& r) {
  if (r.images.empty()) return absl::InvalidArgumentError("request has no images");
  for (int v : {r.width, r.height}) {
    if (v < 64 || v > 4096 || v % 8 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("size ", r.width, "x", r.height,
                                                     ": width and height must be multiples of 8 in 64..4096"));
    }
  }
  if (r.steps < 1 || r.steps > 500) return absl::InvalidArgumentError(absl::StrCat("steps must be 1..500, got ", r.steps));
  if (!(r.cfg >= 0 && r.cfg <= 50)) return absl::InvalidArgumentError(absl::StrCat("cfg must be 0..50, got ", r.cfg));
  RETURN_IF_ERROR(CheckSamplerSchedule(r.sampler, r.schedule));
  if (r.preview_every < 0) return absl::InvalidArgumentError(absl::StrCat("preview_every must be 0 or more, got ", r.preview_every));
  if (!(r.tcd_gamma >= 0 && r.tcd_gamma <= 1)) return absl::InvalidArgumentError(absl::StrCat("tcd_gamma must be 0..1, got ", r.tcd_gamma));
  if (!(r.guidance_start >= 0 && r.guidance_start < r.guidance_end && r.guidance_end <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("guidance interval must be 0 <= start < end <= 1, got ",
                                                   r.guidance_start, "..", r.guidance_end));
  }
  if (r.deep_cache < 0 || r.deep_cache > 10) return absl::InvalidArgumentError(absl::StrCat("deep_cache must be 0..10, got ", r.deep_cache));
  if (r.deep_cache > 1 && !r.controlnets.empty()) {
    return absl::InvalidArgumentError("deep_cache cannot be combined with ControlNets (their residuals feed every level)");
  }
  for (const LoraSpec& lora : r.loras) {
    if (lora.path.empty()) return absl::InvalidArgumentError("LoRA with an empty path");
    if (!(std::abs(lora.strength) <= 10)) {
      return absl::InvalidArgumentError(absl::StrCat("LoRA ", lora.path, ": strength must be -10..10, got ", lora.strength));
    }
  }
  size_t with_init = 0;
  for (size_t i = 0; i < r.images.size(); ++i) {
    const auto& init = r.images[i].init_image;
    if (!init) continue;
    ++with_init;
    if (init->width != r.width || init->height != r.height) {
      return absl::InvalidArgumentError(absl::StrCat("image ", i, ": init image is ", init->width, "x", init->height,
                                                     ", the batch is ", r.width, "x", r.height, " (sizes must match)"));
    }
    if (init->rgb.size() != static_cast<size_t>(init->width) * init->height * 3) {
      return absl::InvalidArgumentError(absl::StrCat("image ", i, ": init image has ", init->rgb.size(), " bytes, expected width*height*3"));
    }
  }
  RETURN_IF_ERROR(ValidateReferenceImages(r));
  RETURN_IF_ERROR(ValidateControls(r));
  if (with_init != 0 && with_init != r.images.size()) {
    return absl::InvalidArgumentError("either every image of a batch has an init image or none has");
  }
  if (with_init != 0) {
    if (!(r.strength > 0 && r.strength <= 1)) return absl::InvalidArgumentError(absl::StrCat("strength must be in (0, 1], got ", r.strength));
    if (static_cast<int>(r.steps * r.strength) < 1) {
      return absl::InvalidArgumentError(absl::StrCat("strength ", r.strength, " of ", r.steps,
                                                     " steps runs no step: int(steps * strength) must be at least 1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Load(const LoadOptions& o) {
  const torch::ScalarType dtype = TorchDtype(o.dtype);
  ASSIGN_OR_RETURN(auto device, ParseDevice(o.device));
  const bool fp8 = o.dtype == Dtype::kFp8;
  if (fp8) {
    if (std::string why = Fp8Unsupported(device); !why.empty()) return absl::FailedPreconditionError("dtype fp8: " + why);
  }
  if (o.vae_dtype == Dtype::kFp8) return absl::InvalidArgumentError("vae dtype: fp32, fp16 or bf16 (fp8 is the UNet's)");
  const torch::ScalarType vae_dtype = o.vae_dtype ? TorchDtype(*o.vae_dtype) : dtype;
  try {
    const bool builtin = absl::StartsWith(o.model_path, kBuiltinPrefix);
    SdxlConfig config = SdxlBaseConfig();
    if (builtin) {
      const std::string name = o.model_path.substr(std::strlen(kBuiltinPrefix));
      if (name == "tiny") {
        config = TinySdxlConfig();
      } else if (name != "sdxl-base") {
        return absl::InvalidArgumentError(absl::StrCat("unknown built-in model '", name, "' (expected tiny or sdxl-base)"));
      }
      if (!o.config_dir.empty()) {
        ASSIGN_OR_RETURN(auto c, LoadSdxlConfig(o.config_dir, config));
        config = c;
      }
      spdlog::warn("model {}: random weights (for benchmarks and demos; images are noise)", o.model_path);
    } else {
      ASSIGN_OR_RETURN(auto c, ResolveConfig(o.model_path, o.config_dir));
      config = c;
      // Headers only, before BuildSdxl allocates the configured (possibly full-size) model.
      RETURN_IF_ERROR(CheckCheckpoint(o.model_path, config));
    }
    std::unique_ptr<ClipTokenizer> t1, t2;
    RETURN_IF_ERROR(LoadTokenizers(o, builtin, t1, t2));
    torch::NoGradGuard no_grad;
    SdxlModels models = BuildSdxl(config);
    if (!builtin) {
      RETURN_IF_ERROR(LoadWeights(o.model_path, models));
    }
    PipelineOptions options{device, dtype, o.fast_path, o.channels_last, o.cuda_graphs, o.decode_batch,
                            o.fused_kernels, fp8, vae_dtype, o.vae_channels_last};
    return std::unique_ptr<Engine>(new EngineImpl(std::make_unique<Pipeline>(std::move(models), std::move(t1), std::move(t2), options)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("loading ", o.model_path, ": ", FirstLine(e.what())));
  }
}

}  // namespace spriteforge::engine
