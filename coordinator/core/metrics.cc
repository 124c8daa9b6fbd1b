#include "coordinator/core/metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/cli.h"
#include "coordinator/core/process_metrics.h"
#include "spdlog/spdlog.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// One series per connected worker.
struct WorkerFamily {
  const char* name;
  const char* help;
  bool counter;
  double (*value)(const WorkerGauges&);
};
const WorkerFamily kWorkerFamilies[] = {
    {"spriteforge_worker_connected", "1 while the worker's stream is open.", false,
     [](const WorkerGauges& w) { return w.connected ? 1.0 : 0.0; }},
    {"spriteforge_worker_images_per_second", "Recent throughput of the worker.", false,
     [](const WorkerGauges& w) { return w.images_per_second; }},
    {"spriteforge_worker_images_total", "Images the worker produced since it registered with this coordinator.", true,
     [](const WorkerGauges& w) { return static_cast<double>(w.images_done); }},
    {"spriteforge_worker_memory_peak_bytes", "Largest peak memory the worker reported for a batch.", false,
     [](const WorkerGauges& w) { return static_cast<double>(w.peak_bytes); }},
    {"spriteforge_worker_memory_budget_bytes", "Memory the worker's engine may use.", false,
     [](const WorkerGauges& w) { return static_cast<double>(w.budget_bytes); }},
    {"spriteforge_worker_memory_used_bytes",
     "The worker's own memory at the last heartbeat: the device memory it holds; on unified memory and CPUs its "
     "resident memory plus that.",
     false, [](const WorkerGauges& w) { return static_cast<double>(w.used_bytes); }},
    {"spriteforge_worker_memory_machine_used_bytes",
     "Memory in use by every process on the worker's device at the last heartbeat (total less free; the "
     "machine's RAM on unified memory and CPUs).",
     false, [](const WorkerGauges& w) { return static_cast<double>(w.machine_used_bytes); }},
};

// The workers that get series: the connected, then the most recently seen disconnected.
std::vector<const WorkerGauges*> WithSeries(const std::vector<WorkerGauges>& workers) {
  std::vector<const WorkerGauges*> shown, disconnected;
  for (const WorkerGauges& w : workers) (w.connected ? shown : disconnected).push_back(&w);
  const size_t kept = std::min(disconnected.size(), kMaxDisconnectedWorkerSeries);
  std::partial_sort(disconnected.begin(), disconnected.begin() + kept, disconnected.end(),
                    [](const WorkerGauges* a, const WorkerGauges* b) { return a->last_seen_ms > b->last_seen_ms; });
  shown.insert(shown.end(), disconnected.begin(), disconnected.begin() + kept);
  return shown;
}

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

  const std::vector<const WorkerGauges*> shown = WithSeries(g.workers);
  BuildGauge()
      .Name("spriteforge_workers_known")
      .Help("Workers the coordinator knows, connected or not; per-worker series cover the connected and the "
            "most recently seen of the others.")
      .Register(r)
      .Add({})
      .Set(static_cast<double>(g.workers.size()));
  for (const WorkerFamily& f : kWorkerFamilies) {
    if (f.counter) {
      auto& family = BuildCounter().Name(f.name).Help(f.help).Register(r);
      for (const WorkerGauges* w : shown) family.Add({{"worker", w->id}}).Increment(f.value(*w));
    } else {
      auto& family = BuildGauge().Name(f.name).Help(f.help).Register(r);
      for (const WorkerGauges* w : shown) family.Add({{"worker", w->id}}).Set(f.value(*w));
    }
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
  // Every reason from the start at 0, so dashboards and alerts see the series (and a first
  // failure is an increase) before anything has failed.
  const google::protobuf::EnumDescriptor* reasons = v1::FailureReason_descriptor();
  for (int i = 0; i < reasons->value_count(); ++i) {
    if (reasons->value(i)->number() == v1::FAILURE_REASON_UNSPECIFIED) continue;
    std::string name = absl::AsciiStrToLower(absl::StripPrefix(reasons->value(i)->name(), "FAILURE_"));
    failure_counts_[name] = &failures_->Add({{"reason", name}});
  }
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
  // Where a job's last batch spends the time between its render and the job's end.
  auto& store = BuildHistogram().Name("spriteforge_result_store_seconds")
                    .Help("Storing results, by phase: check (a result's images decode-checked and written), sync "
                          "(a group of results made durable), record (the group's transaction), in seconds.")
                    .Register(r);
  for (const char* phase : {"check", "sync", "record"}) {
    result_store_seconds_[phase] = &store.Add(
        {{"phase", phase}}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  }
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
void Metrics::ObserveResultStoreSeconds(const std::string& phase, double s) {
  if (auto it = result_store_seconds_.find(phase); it != result_store_seconds_.end()) it->second->Observe(s);
}
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
  std::string text = prometheus::TextSerializer().Serialize(families);
  // Without workers the per-worker families have no series, and the serializer leaves them
  // out; they are still announced, so dashboards and alert rules resolve from the start.
  if (g.workers.empty()) {
    for (const WorkerFamily& f : kWorkerFamilies) {
      absl::StrAppend(&text, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ", f.counter ? "counter" : "gauge",
                      "\n");
    }
  }
  return text;
}

}  // namespace spriteforge::coordinator
