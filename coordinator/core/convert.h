// Conversions between the store's records and the API's messages.
#pragma once

#include "common/generation_info.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

inline v1::Item ToProto(const ItemRecord& it) {
  v1::Item out;
  out.set_job_id(it.job_id);
  out.set_index(it.index);
  *out.mutable_params() = it.image;
  *out.mutable_sampling() = it.sampling;
  out.set_state(static_cast<v1::ItemState>(it.state));
  out.set_image_path(it.image_path);
  out.set_sprite_path(it.sprite_path);
  out.set_worker_id(it.worker_id);
  out.set_failure(static_cast<v1::FailureReason>(it.failure));
  out.set_failure_message(it.failure_message);
  out.set_attempts(it.attempts);
  return out;
}

// The record's own fields; the job book adds what it knows (counts, speed, waiting reason).
inline v1::Job ToProto(const JobRecord& job) {
  v1::Job out;
  out.set_id(job.id);
  out.set_name(job.name);
  out.set_model(job.model);
  out.set_priority(job.priority);
  out.set_state(static_cast<v1::JobState>(job.state));
  out.set_created_unix_ms(job.created_ms);
  out.set_finished_unix_ms(job.finished_ms);
  out.set_idempotency_key(job.idempotency_key);
  out.set_owner(job.owner);
  out.set_preview_every(job.preview_every);
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
