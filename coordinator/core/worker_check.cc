#include "coordinator/core/worker_check.h"

#include "absl/strings/str_cat.h"
#include "common/manifest.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace spriteforge::coordinator {
namespace {

absl::Status Bad(const std::string& field, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

absl::Status CheckMemory(const v1::MemoryReport& m, const std::string& where, const WorkerLimits& lim) {
  const std::pair<const char*, uint64_t> fields[] = {
      {"total_bytes", m.total_bytes()},       {"free_bytes", m.free_bytes()},
      {"budget_bytes", m.budget_bytes()},     {"weights_bytes", m.weights_bytes()},
      {"peak_allocated_bytes", m.peak_allocated_bytes()}, {"peak_reserved_bytes", m.peak_reserved_bytes()},
      {"process_bytes", m.process_bytes()},   {"resident_bytes", m.resident_bytes()}};
  for (const auto& [name, value] : fields) {
    if (value > lim.max_memory_bytes) {
      return Bad(absl::StrCat(where, ".", name), absl::StrCat(value, " is more than ", lim.max_memory_bytes));
    }
  }
  if (m.total_bytes() > 0 && (m.free_bytes() > m.total_bytes() || m.budget_bytes() > m.total_bytes())) {
    return Bad(where, "free_bytes and budget_bytes must not exceed total_bytes");
  }
  return absl::OkStatus();
}

absl::Status CheckText(const std::string& text, const std::string& field, size_t max_chars) {
  if (auto problem = TextProblem(text, max_chars); !problem.empty()) return Bad(field, problem);
  return absl::OkStatus();
}

// Batch ids are the coordinator's own ("batch-" and hex); anything longer is not one of them.
absl::Status CheckBatchId(const std::string& id, const std::string& field) {
  if (id.size() > 64) return Bad(field, "longer than 64 characters");
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckRegister(const v1::Register& reg, const WorkerLimits& lim) {
  if (!reg.worker_id().empty() && !IsSafeName(reg.worker_id())) {
    return Bad("register.worker_id", "must be 1..128 characters of A-Z a-z 0-9 . _ - and not start with '.' or '-'");
  }
  RETURN_IF_ERROR(CheckText(reg.device_name(), "register.device_name", lim.max_text_chars));
  RETURN_IF_ERROR(CheckText(reg.compute_capability(), "register.compute_capability", lim.max_text_chars));
  RETURN_IF_ERROR(CheckText(reg.version(), "register.version", lim.max_text_chars));
  if (reg.max_batch() < 1 || reg.max_batch() > lim.max_batch) {
    return Bad("register.max_batch", absl::StrCat(reg.max_batch(), " is not in 1..", lim.max_batch));
  }
  if (reg.prefetch() < 0 || reg.prefetch() > lim.max_prefetch) {
    return Bad("register.prefetch", absl::StrCat(reg.prefetch(), " is not in 0..", lim.max_prefetch));
  }
  if (reg.models().empty()) return Bad("register.models", "a worker must advertise at least one model");
  if (reg.models_size() > lim.max_models) return Bad("register.models", absl::StrCat("more than ", lim.max_models));
  for (const std::string& model : reg.models()) {
    if (auto problem = ModelNameProblem(model); !problem.empty()) {
      return Bad("register.models", absl::StrCat("\"", model.substr(0, 64), "\" ", problem));
    }
  }
  if (reg.model_files_size() > lim.max_models) {
    return Bad("register.model_files", absl::StrCat("more than ", lim.max_models));
  }
  for (const v1::LoraFile& model : reg.model_files()) {
    if (auto problem = ModelNameProblem(model.name()); !problem.empty()) {
      return Bad("register.model_files", absl::StrCat("\"", model.name().substr(0, 64), "\" ", problem));
    }
  }
  if (reg.lora_files_size() > lim.max_lora_files) {
    return Bad("register.lora_files", absl::StrCat("more than ", lim.max_lora_files));
  }
  for (const v1::LoraFile& lora : reg.lora_files()) {
    if (auto problem = ModelNameProblem(lora.name()); !problem.empty()) {
      return Bad("register.lora_files", absl::StrCat("\"", lora.name().substr(0, 64), "\" ", problem));
    }
  }
  // The folders of ControlNets, IP-Adapters and encoders, by the same rules as the LoRAs'.
  const std::pair<const char*, const google::protobuf::RepeatedPtrField<v1::LoraFile>*> folders[] = {
      {"register.controlnet_files", &reg.controlnet_files()},
      {"register.ip_adapter_files", &reg.ip_adapter_files()},
      {"register.image_encoder_files", &reg.image_encoder_files()}};
  for (const auto& [field, files] : folders) {
    if (files->size() > lim.max_lora_files) return Bad(field, absl::StrCat("more than ", lim.max_lora_files));
    for (const v1::LoraFile& file : *files) {
      if (auto problem = ModelNameProblem(file.name()); !problem.empty()) {
        return Bad(field, absl::StrCat("\"", file.name().substr(0, 64), "\" ", problem));
      }
    }
  }
  RETURN_IF_ERROR(CheckMemory(reg.memory(), "register.memory", lim));
  if (reg.calibrations_size() > lim.max_calibrations) {
    return Bad("register.calibrations", absl::StrCat("more than ", lim.max_calibrations));
  }
  for (const v1::Calibration& c : reg.calibrations()) {
    if (c.batch() < 1 || c.batch() > lim.max_batch) {
      return Bad("register.calibrations.batch", absl::StrCat(c.batch(), " is not in 1..", lim.max_batch));
    }
    if (c.width() < 1 || c.width() > lim.max_image_side || c.height() < 1 || c.height() > lim.max_image_side) {
      return Bad("register.calibrations", absl::StrCat(c.width(), "x", c.height(), " is not within 1..", lim.max_image_side));
    }
    if (c.peak_bytes() > lim.max_memory_bytes) {
      return Bad("register.calibrations.peak_bytes", absl::StrCat(c.peak_bytes(), " is more than ", lim.max_memory_bytes));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckWorkerMessage(const v1::WorkerMessage& message, const WorkerLimits& lim) {
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat: {
      const v1::Heartbeat& beat = message.heartbeat();
      if (beat.running_batches_size() > lim.max_running_batches) {
        return Bad("heartbeat.running_batches", absl::StrCat("more than ", lim.max_running_batches));
      }
      for (const std::string& id : beat.running_batches()) {
        RETURN_IF_ERROR(CheckBatchId(id, "heartbeat.running_batches"));
      }
      return CheckMemory(beat.memory(), "heartbeat.memory", lim);
    }
    case v1::WorkerMessage::kProgress:
      return CheckBatchId(message.progress().batch_id(), "progress.batch_id");
    case v1::WorkerMessage::kPreview: {
      const v1::BatchPreview& preview = message.preview();
      RETURN_IF_ERROR(CheckBatchId(preview.batch_id(), "preview.batch_id"));
      if (preview.images_size() > lim.max_batch) return Bad("preview.images", absl::StrCat("more than ", lim.max_batch));
      for (const v1::PreviewImage& image : preview.images()) {
        const int side = lim.max_image_side / 8;
        if (image.width() < 1 || image.width() > side || image.height() < 1 || image.height() > side) {
          return Bad("preview.images", absl::StrCat(image.width(), "x", image.height(), " is not within 1..", side));
        }
        if (image.png().size() > lim.max_preview_png_bytes) {
          return Bad("preview.images.png", absl::StrCat(image.png().size(), " bytes is more than ", lim.max_preview_png_bytes));
        }
      }
      return absl::OkStatus();
    }
    case v1::WorkerMessage::kRendered:
      return CheckBatchId(message.rendered().batch_id(), "rendered.batch_id");
    case v1::WorkerMessage::kResult:
      RETURN_IF_ERROR(CheckBatchId(message.result().batch_id(), "result.batch_id"));
      return CheckMemory(message.result().memory(), "result.memory", lim);
    case v1::WorkerMessage::kFailure: {
      const v1::BatchFailure& failure = message.failure();
      RETURN_IF_ERROR(CheckBatchId(failure.batch_id(), "failure.batch_id"));
      if (!v1::FailureReason_IsValid(failure.reason())) return Bad("failure.reason", "unknown reason");
      RETURN_IF_ERROR(CheckText(failure.message(), "failure.message", lim.max_message_chars));
      return CheckMemory(failure.memory(), "failure.memory", lim);
    }
    case v1::WorkerMessage::kRegister:
      return Bad("register", "sent twice on one stream");
    default:
      return absl::OkStatus();
  }
}

}  // namespace spriteforge::coordinator
