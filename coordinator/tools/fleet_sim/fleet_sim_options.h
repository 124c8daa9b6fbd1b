// The command line of spriteforge-fleet-sim: the coordinator under test, the simulated
// fleet and its GPUs, the jobs, and how long to measure. Sizes and priorities arrive
// parsed; every default here is the one --help shows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spriteforge::fleet {

struct FleetSimOptions {
  // The coordinator under test and where its files and the report go.
  std::string coordinator_bin;
  std::string db;        // its --db ("": a SQLite file in work_dir; or a postgresql:// URL)
  std::string work_dir;  // "": a new /tmp folder
  std::vector<std::string> coordinator_args;  // appended to its command line
  std::string report_path;                    // "": stdout only

  // The fleet.
  int workers = 10;
  int channels = 0;  // gRPC connections the workers share (0: one per 50 workers)
  int max_batch = 8;
  int prefetch = 1;
  bool calibrate = true;   // register with measured peaks (else the coordinator guesses)
  int progress_every = 0;  // 0: the time scale
  double time_scale = 1;   // simulated seconds per real second

  // The simulated GPU and what goes wrong with it.
  double batch_seconds = 7.0;  // a batch of 8 at 1024x1024
  double package_seconds = 0.23;
  double gpu_memory_gb = 141;
  double oom_rate = 0;
  double crash_rate = 0;
  double reconnect_seconds = 30;
  int link_delay_ms = 0;

  // The jobs.
  int64_t images = 1000;  // in all, split over the jobs
  int jobs = 1;
  std::vector<int> priorities = {0};  // job i gets the (i mod count)-th
  int width = 1024, height = 1024;
  int render_width = 0, render_height = 0;  // GPU time as for this size (0: width x height)
  int steps = 30;

  // The measurement.
  double duration_s = 0;  // after the workers join (0: until every job finished)
  double warmup_s = 0;    // after the workers join, before measuring
};

// Fills `options` from argv. Returns -1 to go on, else the exit code: 0 after --help or
// --version, 2 after a usage error (printed to stderr).
int ParseFleetSimOptions(int argc, const char* const* argv, FleetSimOptions* options);

}  // namespace spriteforge::fleet
