// Conversions between the store's records and the API's messages.
#pragma once

#include "common/generation_info.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

inline v1::ImageParams ToProto(const GenerationInfo& p) {
  v1::ImageParams out;
  out.set_prompt(p.prompt);
  if (p.negative) out.set_negative(*p.negative);
  out.set_seed(p.seed);
  out.set_width(p.width);
  out.set_height(p.height);
  out.set_steps(p.steps);
  out.set_cfg(p.cfg);
  out.set_sampler(p.sampler);
  out.set_schedule(p.schedule);
  out.set_tileable(p.tileable);
  for (const LoraUse& lora : p.loras) {
    v1::LoraRef* ref = out.add_loras();
    ref->set_name(lora.name);
    ref->set_strength(lora.strength);
    ref->set_sha256(lora.sha256);
  }
  out.set_init_image_sha256(p.init_image);
  if (p.denoising_strength) out.set_strength(*p.denoising_strength);
  out.set_tcd_gamma(p.tcd_gamma);
  return out;
}

inline v1::Item ToProto(const ItemRecord& it) {
  v1::Item out;
  out.set_job_id(it.job_id);
  out.set_index(it.index);
  *out.mutable_params() = ToProto(it.params);
  out.set_state(static_cast<v1::ItemState>(it.state));
  out.set_image_path(it.image_path);
  out.set_sprite_path(it.sprite_path);
  out.set_worker_id(it.worker_id);
  out.set_failure(static_cast<v1::FailureReason>(it.failure));
  out.set_failure_message(it.failure_message);
  out.set_attempts(it.attempts);
  return out;
}

inline v1::ItemCounts ToProto(const ItemCounts& c) {
  v1::ItemCounts out;
  out.set_total(c.total);
  out.set_queued(c.queued);
  out.set_running(c.running);
  out.set_done(c.done);
  out.set_failed(c.failed);
  out.set_cancelled(c.cancelled);
  return out;
}

}  // namespace spriteforge::coordinator
