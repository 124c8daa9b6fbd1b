#include "coordinator/service/metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include "common/cli.h"
#include "coordinator/service/process_metrics.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Gauges and counters whose values the coordinator's state holds: a registry filled per
// scrape, so a worker that is forgotten disappears from the output.
void AddSampled(const GaugeSnapshot& g, prometheus::Registry& r) {
  BuildGauge().Name("spriteforge_queue_depth").Help("Items waiting for a worker.").Register(r).Add({}).Set(
      static_cast<double>(g.queue_depth));
  BuildGauge().Name("spriteforge_running_items").Help("Items leased to workers.").Register(r).Add({}).Set(
      static_cast<double>(g.running_items));
  BuildGauge().Name("spriteforge_jobs_active").Help("Jobs not yet finished.").Register(r).Add({}).Set(
      static_cast<double>(g.jobs_active));
  BuildGauge()
      .Name("spriteforge_build_info")
      .Help("Always 1; the coordinator's version in a label.")
      .Register(r)
      .Add({{"version", cli::Version()}})
      .Set(1);

  auto& connected = BuildGauge().Name("spriteforge_worker_connected").Help("1 while the worker's stream is open.")
                        .Register(r);
  auto& rate = BuildGauge().Name("spriteforge_worker_images_per_second").Help("Recent throughput of the worker.")
                   .Register(r);
  auto& images = BuildCounter().Name("spriteforge_worker_images_total")
                     .Help("Images the worker produced since it registered with this coordinator.").Register(r);
  auto& peak = BuildGauge().Name("spriteforge_worker_memory_peak_bytes")
                   .Help("Largest peak memory the worker reported for a batch.").Register(r);
  auto& budget = BuildGauge().Name("spriteforge_worker_memory_budget_bytes")
                     .Help("Memory the worker's engine may use.").Register(r);
  auto& used = BuildGauge().Name("spriteforge_worker_memory_used_bytes")
                   .Help("Device memory in use at the last heartbeat.").Register(r);
  for (const WorkerGauges& w : g.workers) {
    const std::map<std::string, std::string> label = {{"worker", w.id}};
    connected.Add(label).Set(w.connected ? 1 : 0);
    rate.Add(label).Set(w.images_per_second);
    images.Add(label).Increment(static_cast<double>(w.images_done));
    peak.Add(label).Set(static_cast<double>(w.peak_bytes));
    budget.Add(label).Set(static_cast<double>(w.budget_bytes));
    used.Add(label).Set(static_cast<double>(w.used_bytes));
  }
}

void AddProcess(prometheus::Registry& r) {
  auto p = ReadProcessStats();
  if (!p.ok()) {
    spdlog::warn("process metrics left out: {}", std::string(p.status().message()));
    return;
  }
  BuildCounter().Name("process_cpu_seconds_total").Help("User and system CPU time spent, in seconds.").Register(r)
      .Add({}).Increment(p->cpu_seconds);
  BuildGauge().Name("process_resident_memory_bytes").Help("Resident memory size in bytes.").Register(r).Add({}).Set(
      static_cast<double>(p->resident_bytes));
  BuildGauge().Name("process_virtual_memory_bytes").Help("Virtual memory size in bytes.").Register(r).Add({}).Set(
      static_cast<double>(p->virtual_bytes));
  BuildGauge().Name("process_start_time_seconds").Help("Start time of the process since the Unix epoch, in seconds.")
      .Register(r).Add({}).Set(p->start_time_seconds);
  BuildGauge().Name("process_open_fds").Help("Open file descriptors.").Register(r).Add({}).Set(
      static_cast<double>(p->open_fds));
  BuildGauge().Name("process_max_fds").Help("Limit of open file descriptors.").Register(r).Add({}).Set(
      static_cast<double>(p->max_fds));
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  images_ = &BuildCounter().Name("spriteforge_images_total")
                 .Help("Images generated and stored since the coordinator started.").Register(r).Add({});
  failures_ = &BuildCounter().Name("spriteforge_failures_total").Help("Item failures by reason (retried or final).")
                   .Register(r);
  blob_fetches_ = &BuildCounter().Name("spriteforge_blob_fetches_total")
                       .Help("Uploaded files (LoRAs, start images) sent to workers.").Register(r).Add({});
  blob_fetch_bytes_ = &BuildCounter().Name("spriteforge_blob_fetch_bytes_total")
                           .Help("Bytes of uploaded files sent to workers.").Register(r).Add({});
  batch_size_ = &BuildHistogram().Name("spriteforge_batch_size").Help("Images per dispatched batch.").Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32});
  step_seconds_ = &BuildHistogram().Name("spriteforge_step_seconds")
                       .Help("Wall time of one sampling step of a batch, in seconds.").Register(r)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  image_seconds_ = &BuildHistogram().Name("spriteforge_image_seconds")
                        .Help("Batch wall time divided by its images, in seconds.").Register(r)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60});
}

void Metrics::AddImages(int64_t n) { images_->Increment(static_cast<double>(n)); }
void Metrics::AddFailure(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  prometheus::Counter*& c = failure_counts_[reason];
  if (c == nullptr) c = &failures_->Add({{"reason", reason}});
  c->Increment();
}
void Metrics::ObserveBatch(int size) { batch_size_->Observe(size); }
void Metrics::ObserveStepSeconds(double s) { step_seconds_->Observe(s); }
void Metrics::ObserveImageSeconds(double s) { image_seconds_->Observe(s); }
void Metrics::AddBlobFetch(uint64_t bytes) {
  blob_fetches_->Increment();
  blob_fetch_bytes_->Increment(static_cast<double>(bytes));
}
int64_t Metrics::images_total() const { return static_cast<int64_t>(images_->Value()); }
int64_t Metrics::failures_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  double n = 0;
  for (const auto& [reason, counter] : failure_counts_) n += counter->Value();
  return static_cast<int64_t>(n);
}

std::string Metrics::Render(const GaugeSnapshot& g) const {
  prometheus::Registry sampled;
  AddSampled(g, sampled);
  AddProcess(sampled);
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& f : sampled.Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace spriteforge::coordinator
