// What the simulated fleet observed, collected from every worker's threads: assignments
// (when, which jobs), how long workers waited for them, GPU busy and idle time inside the
// measurement window, failures injected. Report() turns it into the JSON the sim prints.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/tools/fleet_sim/event_loop.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::fleet {

namespace v1 = ::spriteforge::v1;

class FleetStats {
 public:
  explicit FleetStats(Clock::time_point start) : start_(start) {}

  // The jobs submitted, so fairness can compare what each got with its priority.
  void AddJob(const std::string& job_id, int priority, int64_t images);
  // Opens the measurement window; it closes by itself once the assignments handed out reach
  // `tail_from` items (the queue is about to run dry, so idle workers are no longer the
  // coordinator's doing), or by CloseWindow.
  void OpenWindow(Clock::time_point at, int64_t tail_from);
  void CloseWindow(Clock::time_point at);
  std::pair<double, double> Window() const;  // seconds since start; end < 0 while open

  void OnRegistered();
  // `ready_since`: when the worker had room for this batch (empty: it did not wait).
  void OnAssignment(const v1::Assignment& a, Clock::time_point at, std::optional<Clock::time_point> ready_since);
  void OnGpuBusy(Clock::time_point from, Clock::time_point to);
  void OnGpuIdle(Clock::time_point from, Clock::time_point to);  // waiting for an assignment
  void OnResultSent(int images);
  void OnOutOfMemory();
  void OnCrash();
  void OnCancel();

  int registered() const;
  int64_t images_sent() const;
  int64_t items_assigned() const;

  // Fleet-side figures: latency percentiles, idle fraction, fairness, failures.
  nlohmann::json Report() const;

 private:
  double Seconds(Clock::time_point t) const { return std::chrono::duration<double>(t - start_).count(); }
  double InWindowLocked(Clock::time_point from, Clock::time_point to) const;
  nlohmann::json FairnessLocked() const;

  struct Job {
    int priority = 0;
    int64_t images = 0;
  };
  struct AssignmentLog {
    double t;
    std::string job_id;
    int items;
  };

  const Clock::time_point start_;
  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  std::vector<AssignmentLog> log_;
  std::vector<double> wait_ms_;  // ready -> assignment, inside the window
  std::optional<Clock::time_point> window_start_, window_end_;
  int64_t tail_from_ = 0;
  int registered_ = 0;
  int64_t assignments_ = 0, window_assignments_ = 0, items_assigned_ = 0;
  int64_t images_sent_ = 0;
  double busy_s_ = 0, idle_s_ = 0;
  int64_t ooms_ = 0, crashes_ = 0, cancels_ = 0;
};

}  // namespace spriteforge::fleet
