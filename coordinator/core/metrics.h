// Prometheus metrics of the coordinator, kept in prometheus-cpp's registry and written by
// its text serializer: counters and histograms updated as work happens; gauges, per-worker
// figures and process_* metrics sampled from the coordinator's state when scraped.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace spriteforge::coordinator {

// Gauges read at scrape time.
struct WorkerGauges {
  std::string id;
  bool connected = false;
  double images_per_second = 0;
  uint64_t peak_bytes = 0;
  uint64_t budget_bytes = 0;
  uint64_t used_bytes = 0;          // the worker's own
  uint64_t machine_used_bytes = 0;  // every process's on its device (the machine's RAM on unified memory)
  int64_t images_done = 0;
  int64_t last_seen_ms = 0;  // of the disconnected, the most recently seen keep their series
};
// Per-worker series: every connected worker and at most this many disconnected ones, so
// made-up worker ids cannot grow /metrics without bound.
constexpr size_t kMaxDisconnectedWorkerSeries = 16;
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
  // A part of storing results: "check" (one result's images decode-checked and written),
  // "sync" (a group's files made durable), "record" (a group's transaction). Others are ignored.
  void ObserveResultStoreSeconds(const std::string& phase, double seconds);
  void AddBlobFetch(uint64_t bytes);  // a worker fetched an uploaded file

  int64_t images_total() const;
  int64_t failures_total() const;
  // The text exposition format (version 0.0.4).
  std::string Render(const GaugeSnapshot& gauges) const;

 private:
  // Thread-safe itself; families and their metrics live as long as it does.
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* images_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Counter* blob_fetches_;
  prometheus::Counter* blob_fetch_bytes_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* step_seconds_;
  prometheus::Histogram* image_seconds_;
  std::map<std::string, prometheus::Histogram*> result_store_seconds_;  // by phase, fixed at construction
  mutable std::mutex mu_;  // guards failure_counts_
  std::map<std::string, prometheus::Counter*> failure_counts_;
};

}  // namespace spriteforge::coordinator
