// Read-only views of the coordinator's state: workers, gauges, /metrics and stats.
#include "coordinator/service/coordinator.h"

namespace spriteforge::coordinator {

v1::ListWorkersResponse Coordinator::ListWorkers() {
  auto core = Lock();
  v1::ListWorkersResponse response;
  for (const auto& [id, w] : core->workers().all()) {
    v1::WorkerView* v = response.add_workers();
    const v1::Register& r = w.registration;
    v->set_id(id);
    v->set_device_name(r.device_name());
    v->set_compute_capability(r.compute_capability());
    v->set_unified_memory(r.unified_memory());
    v->set_total_bytes(w.memory.total_bytes());
    v->set_free_bytes(w.memory.free_bytes());
    v->set_budget_bytes(w.memory.budget_bytes());
    v->set_used_bytes(w.used_bytes());
    v->set_peak_bytes(w.peak_bytes);
    for (const auto& m : r.models()) v->add_models(m);
    v->set_max_batch(r.max_batch());
    v->set_connected(w.channel != nullptr);
    v->set_running_items(core->batches().RunningItems(id));
    v->set_images_done(w.images_done);
    v->set_images_per_second(w.images_per_second);
    v->set_last_seen_unix_ms(w.last_seen_ms);
  }
  return response;
}

GaugeSnapshot Coordinator::Gauges(Locked& core) {
  GaugeSnapshot g;
  if (auto totals = core->store().Totals(); totals.ok()) {
    g.queue_depth = (*totals)["queued"];
    g.running_items = (*totals)["running"];
  }
  g.jobs_active = static_cast<int64_t>(core->jobs().active_count());
  for (const auto& [id, w] : core->workers().all()) {
    g.workers.push_back({id, w.channel != nullptr, w.images_per_second, w.peak_bytes, w.memory.budget_bytes(),
                         w.used_bytes(), w.images_done, w.last_seen_ms});
  }
  return g;
}

std::string Coordinator::MetricsText() {
  auto core = Lock();
  return metrics_.Render(Gauges(core));
}

v1::GetStatsResponse Coordinator::Stats() {
  auto core = Lock();
  const GaugeSnapshot g = Gauges(core);
  v1::GetStatsResponse out;
  out.set_images_total(metrics_.images_total());
  out.set_failures_total(metrics_.failures_total());
  out.set_queue_depth(static_cast<int32_t>(g.queue_depth));
  out.set_running_items(static_cast<int32_t>(g.running_items));
  out.set_jobs_active(static_cast<int32_t>(g.jobs_active));
  for (const WorkerGauges& w : g.workers) {
    if (w.connected) {
      out.set_workers_connected(out.workers_connected() + 1);
      out.set_images_per_second(out.images_per_second() + w.images_per_second);
    }
    v1::WorkerStats* ws = out.add_workers();
    ws->set_id(w.id);
    ws->set_connected(w.connected);
    ws->set_images_per_second(w.images_per_second);
    ws->set_images_done(w.images_done);
    ws->set_memory_peak_bytes(w.peak_bytes);
    ws->set_memory_budget_bytes(w.budget_bytes);
    ws->set_memory_used_bytes(w.used_bytes);
  }
  return out;
}

}  // namespace spriteforge::coordinator
