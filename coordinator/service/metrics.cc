#include "coordinator/service/metrics.h"

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {
namespace {

std::string Label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", bounds_[i], "\"} ", cumulative, "\n");
  }
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", count_, "\n", name, "_sum ", sum_, "\n", name, "_count ",
                  count_, "\n");
}

Metrics::Metrics()
    : batch_size_({1, 2, 4, 8, 16, 32}),
      step_seconds_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
      image_seconds_({0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}) {}

void Metrics::AddImages(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  images_ += n;
}
void Metrics::AddFailure(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_[reason];
}
void Metrics::ObserveBatch(int size) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_size_.Observe(size);
}
void Metrics::ObserveStepSeconds(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  step_seconds_.Observe(s);
}
void Metrics::ObserveImageSeconds(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  image_seconds_.Observe(s);
}
void Metrics::AddBlobFetch(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  ++blob_fetches_;
  blob_fetch_bytes_ += bytes;
}
int64_t Metrics::images_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return images_;
}
int64_t Metrics::failures_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [reason, count] : failures_) n += count;
  return n;
}

std::string Metrics::Render(const GaugeSnapshot& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  Header(&out, "spriteforge_images_total", "counter", "Images generated and stored since the coordinator started.");
  absl::StrAppend(&out, "spriteforge_images_total ", images_, "\n");
  Header(&out, "spriteforge_failures_total", "counter", "Item failures by reason (retried or final).");
  for (const auto& [reason, n] : failures_) {
    absl::StrAppend(&out, "spriteforge_failures_total{reason=\"", Label(reason), "\"} ", n, "\n");
  }
  Header(&out, "spriteforge_blob_fetches_total", "counter", "Uploaded files (LoRAs, start images) sent to workers.");
  absl::StrAppend(&out, "spriteforge_blob_fetches_total ", blob_fetches_, "\n");
  Header(&out, "spriteforge_blob_fetch_bytes_total", "counter", "Bytes of uploaded files sent to workers.");
  absl::StrAppend(&out, "spriteforge_blob_fetch_bytes_total ", blob_fetch_bytes_, "\n");
  Header(&out, "spriteforge_queue_depth", "gauge", "Items waiting for a worker.");
  absl::StrAppend(&out, "spriteforge_queue_depth ", g.queue_depth, "\n");
  Header(&out, "spriteforge_running_items", "gauge", "Items leased to workers.");
  absl::StrAppend(&out, "spriteforge_running_items ", g.running_items, "\n");
  Header(&out, "spriteforge_jobs_active", "gauge", "Jobs not yet finished.");
  absl::StrAppend(&out, "spriteforge_jobs_active ", g.jobs_active, "\n");
  Header(&out, "spriteforge_batch_size", "histogram", "Images per dispatched batch.");
  batch_size_.Render("spriteforge_batch_size", &out);
  Header(&out, "spriteforge_step_seconds", "histogram", "Wall time of one sampling step of a batch.");
  step_seconds_.Render("spriteforge_step_seconds", &out);
  Header(&out, "spriteforge_image_seconds", "histogram", "Batch wall time divided by its images.");
  image_seconds_.Render("spriteforge_image_seconds", &out);
  struct Gauge {
    const char* name;
    const char* help;
    double (*value)(const WorkerGauges&);
  };
  const Gauge gauges[] = {
      {"spriteforge_worker_connected", "1 while the worker's stream is open.",
       [](const WorkerGauges& w) { return w.connected ? 1.0 : 0.0; }},
      {"spriteforge_worker_images_per_second", "Recent throughput of the worker.",
       [](const WorkerGauges& w) { return w.images_per_second; }},
      {"spriteforge_worker_images_total", "Images the worker produced.",
       [](const WorkerGauges& w) { return static_cast<double>(w.images_done); }},
      {"spriteforge_worker_memory_peak_bytes", "Largest peak memory the worker reported for a batch.",
       [](const WorkerGauges& w) { return static_cast<double>(w.peak_bytes); }},
      {"spriteforge_worker_memory_budget_bytes", "Memory the worker's engine may use.",
       [](const WorkerGauges& w) { return static_cast<double>(w.budget_bytes); }},
      {"spriteforge_worker_memory_used_bytes", "Device memory in use at the last heartbeat.",
       [](const WorkerGauges& w) { return static_cast<double>(w.used_bytes); }},
  };
  for (const Gauge& gauge : gauges) {
    Header(&out, gauge.name, "gauge", gauge.help);
    for (const WorkerGauges& w : g.workers) {
      absl::StrAppend(&out, gauge.name, "{worker=\"", Label(w.id), "\"} ", gauge.value(w), "\n");
    }
  }
  return out;
}

}  // namespace spriteforge::coordinator
