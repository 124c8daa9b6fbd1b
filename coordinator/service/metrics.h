// Prometheus text-format metrics of the coordinator: counters and histograms updated as
// work happens, gauges sampled from the coordinator's state when scraped.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace spriteforge::coordinator {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // Appends NAME_bucket{le=...}, NAME_sum and NAME_count lines.
  void Render(const std::string& name, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Gauges read at scrape time.
struct WorkerGauges {
  std::string id;
  bool connected = false;
  double images_per_second = 0;
  uint64_t peak_bytes = 0;
  uint64_t budget_bytes = 0;
  uint64_t used_bytes = 0;
  int64_t images_done = 0;
};
struct GaugeSnapshot {
  int64_t queue_depth = 0;
  int64_t running_items = 0;
  int64_t jobs_active = 0;
  std::vector<WorkerGauges> workers;
};

class Metrics {
 public:
  Metrics();
  void AddImages(int64_t n);
  void AddFailure(const std::string& reason);
  void ObserveBatch(int size);
  void ObserveStepSeconds(double seconds);
  void ObserveImageSeconds(double seconds);
  void AddBlobFetch(uint64_t bytes);  // a worker fetched an uploaded file

  int64_t images_total() const;
  int64_t failures_total() const;
  std::string Render(const GaugeSnapshot& gauges) const;

 private:
  mutable std::mutex mu_;
  int64_t images_ = 0;
  int64_t blob_fetches_ = 0;
  uint64_t blob_fetch_bytes_ = 0;
  std::map<std::string, int64_t> failures_;
  Histogram batch_size_;
  Histogram step_seconds_;
  Histogram image_seconds_;
};

}  // namespace spriteforge::coordinator
