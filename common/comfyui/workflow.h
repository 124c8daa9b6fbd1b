// ComfyUI workflows in the API format ("Save (API)": node id -> {class_type, inputs}, a link
// written [node id, output index]) read as an ordinary spriteforge job: the workflow is
// checked (known nodes, links that name an output of the right type, no cycles), each
// SaveImage is walked back to its sampler, and what the nodes say fills the same
// EntryBuilder / ManifestBuilder a manifest fills, so a workflow job has a manifest job's
// checks, queue and batching. Errors name the node and its input:
//   workflow.json: node 3 (KSampler).sampler_name: "dpmpp_3m_sde" is not a sampler spriteforge has (euler, ...)
//
// Mapped: CheckpointLoaderSimple (ckpt_name -> model, its extension dropped), LoraLoader /
// LoraLoaderModelOnly (stacked), CLIPTextEncode / CLIPTextEncodeSDXL (prompt; negative from
// the sampler's `negative`), EmptyLatentImage (size; batch_size -> count), LoadImage +
// VAEEncode (img2img, denoise -> strength), RepeatLatentBatch (count), KSampler /
// KSamplerAdvanced, VAEDecode, ControlNetLoader + ControlNetApplyAdvanced, IPAdapterModelLoader
// + CLIPVisionLoader + LoadImage + IPAdapter / IPAdapterAdvanced on the model path (the
// manifest's `reference`: adapter, encoder, image, weight -> scale), SaveImage
// (filename_prefix -> job name), PreviewImage (not rendered). A node or setting spriteforge
// cannot render as ComfyUI would is refused, never dropped. Pure: no files are read here but through the FileResolver.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/manifest.h"

namespace spriteforge::comfyui {

// What a node input takes: a literal ("INT", "FLOAT", "STRING", "SAMPLER", "SCHEDULER",
// "BOOLEAN", "ENABLE") or a link to an output of that type ("MODEL", "CLIP", "LATENT", ...).
struct InputSpec {
  const char* name;
  const char* type;
  bool required = true;
};

struct NodeSpec {
  const char* class_type;
  const char* category;
  std::vector<InputSpec> inputs;
  std::vector<const char*> outputs;  // output types by index
  bool output_node = false;
};

// The nodes spriteforge reads, for validation and for the HTTP API's /object_info.
const std::vector<NodeSpec>& SupportedNodes();
// ComfyUI's names for the samplers and schedulers spriteforge has, in order.
std::vector<std::string> SamplerNames();
std::vector<std::string> SchedulerNames();

// Whether `text` is an API-format workflow, bare or as a /prompt body ({"prompt": {...}}):
// how the client and the coordinator tell one from a manifest.
bool IsWorkflow(const std::string& text);
// The node map of a workflow or /prompt body; an error for any other JSON.
absl::StatusOr<nlohmann::json> ParseWorkflow(const std::string& text);

// "6.seed=7": node 6's input seed becomes 7 (a JSON value, else the text as a string).
absl::Status ApplySetting(nlohmann::json& workflow, const std::string& assignment);
// "sd_xl_base_1.0.safetensors=tiny-sdxl": checkpoints of that name load that model instead.
absl::Status ApplyModelMap(nlohmann::json& workflow, const std::string& mapping);
// Every SaveImage makes `count` images: batch_size of empty latents, and a RepeatLatentBatch
// before samplers that start from an encoded image.
absl::Status SetImageCount(nlohmann::json& workflow, int64_t count);

// The SaveImage nodes in node id order: the job's entries, one each.
std::vector<std::string> SaveImageNodes(const nlohmann::json& workflow);

// The job the workflow describes: one entry per SaveImage, in node id order. `origin` (the
// file name) starts each error; LoadImage's image is resolved as a manifest's init_image.
absl::StatusOr<Manifest> ImportWorkflow(const nlohmann::json& workflow, const std::string& origin,
                                        const ManifestLimits& limits = {}, const FileResolver& files = nullptr);
absl::StatusOr<Manifest> ImportWorkflowText(const std::string& text, const std::string& origin,
                                            const ManifestLimits& limits = {}, const FileResolver& files = nullptr);

}  // namespace spriteforge::comfyui
