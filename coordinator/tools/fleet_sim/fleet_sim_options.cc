#include "coordinator/tools/fleet_sim/fleet_sim_options.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"

namespace spriteforge::fleet {
namespace {

int UsageError(const std::string& message) {
  std::fprintf(stderr, "spriteforge-fleet-sim: error: %s\n", message.c_str());
  return 2;
}

// "WxH", each side 8..4096.
bool ParseSize(const std::string& text, int* width, int* height) {
  std::vector<std::string> wh = absl::StrSplit(text, 'x');
  return wh.size() == 2 && absl::SimpleAtoi(wh[0], width) && absl::SimpleAtoi(wh[1], height) && *width >= 8 &&
         *height >= 8 && *width <= 4096 && *height <= 4096;
}

// The flags CLI11 reads as text or in another unit than the options keep.
struct FlagText {
  double images;
  std::string priorities, size, render_size;
  bool no_calibration = false;
};

void AddFlags(CLI::App& app, FleetSimOptions* o, FlagText* text) {
  app.add_option("--coordinator", o->coordinator_bin, "The spriteforge-coordinator program to run")->required();
  app.add_option("--workers", o->workers, "Simulated workers")->check(CLI::Range(0, 100000));
  app.add_option("--channels", o->channels, "gRPC connections the workers share (0: one per 50 workers)")
      ->check(CLI::Range(0, 10000));
  app.add_option("--images", text->images, "Images in all, split over the jobs")->check(CLI::Range(1.0, 1e8));
  app.add_option("--jobs", o->jobs, "Jobs submitted, one after the other")->check(CLI::Range(1, 100000));
  app.add_option("--priorities", text->priorities, "P,P,...: job i gets the (i mod count)-th priority");
  app.add_option("--size", text->size, "Image size WxH");
  app.add_option("--render-size", text->render_size,
                 "GPU time as for images of this size WxH (default --size); results keep --size");
  app.add_option("--steps", o->steps, "Denoising steps per image")->check(CLI::Range(1, 1000));
  app.add_option("--time-scale", o->time_scale, "Simulated seconds per real second")
      ->check(CLI::Range(0.01, 1000.0));
  app.add_option("--batch-seconds", o->batch_seconds, "Render time of a batch of 8 at 1024x1024")
      ->check(CLI::Range(0.001, 3600.0));
  app.add_option("--package-seconds", o->package_seconds, "PNG encoding per batch, beside the GPU")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--max-batch", o->max_batch, "Largest batch the workers register with")->check(CLI::Range(1, 256));
  app.add_option("--prefetch", o->prefetch, "Batches the workers hold beyond the one rendering")
      ->check(CLI::Range(0, 4));
  app.add_option("--gpu-memory-gb", o->gpu_memory_gb, "Device memory per worker")->check(CLI::Range(1.0, 100000.0));
  app.add_flag("--no-calibration", text->no_calibration, "Register without measured peaks (the coordinator guesses)");
  app.add_option("--oom-rate", o->oom_rate, "Probability that a batch runs out of memory")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--crash-rate", o->crash_rate, "Probability that a worker dies during a batch")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--reconnect-seconds", o->reconnect_seconds, "Simulated restart time of a crashed worker")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--link-delay-ms", o->link_delay_ms, "Added to every message a worker sends")
      ->check(CLI::Range(0, 60000));
  app.add_option("--progress-every", o->progress_every,
                 "Step reports every N steps (0: the time scale, so each worker's message rate stays as in real time)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--duration", o->duration_s,
                 "Stop this many seconds after the workers join (0: when all jobs finished)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--warmup", o->warmup_s, "Seconds after the workers joined before measuring")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--db", o->db, "The coordinator's --db: a postgresql:// URL (default: a SQLite file in --work-dir)");
  app.add_option("--work-dir", o->work_dir, "Coordinator database, results and log (default: a new /tmp folder)");
  app.add_option("--coordinator-arg", o->coordinator_args, "Extra argument for the coordinator (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--report", o->report_path, "Also write the JSON report here");
}

// What CLI11 cannot check: the sizes, the priorities, and at least one image per job.
int ReadFlagText(const FlagText& text, FleetSimOptions* o) {
  o->images = static_cast<int64_t>(text.images);
  if (o->images < o->jobs) return UsageError("--images must be at least --jobs");
  if (!ParseSize(text.size, &o->width, &o->height)) return UsageError("--size must be WxH, each 8..4096");
  if (!text.render_size.empty() && !ParseSize(text.render_size, &o->render_width, &o->render_height)) {
    return UsageError("--render-size must be WxH, each 8..4096");
  }
  o->priorities.clear();
  for (absl::string_view p : absl::StrSplit(text.priorities, ',')) {
    int v;
    if (!absl::SimpleAtoi(p, &v)) return UsageError("--priorities must be integers separated by commas");
    o->priorities.push_back(v);
  }
  o->calibrate = !text.no_calibration;
  return -1;
}

}  // namespace

int ParseFleetSimOptions(int argc, const char* const* argv, FleetSimOptions* options) {
  CLI::App app("spriteforge-fleet-sim: a real coordinator process against simulated workers that speak the worker "
               "protocol over gRPC, with a GPU that is a clock; prints a JSON report.",
               "spriteforge-fleet-sim");
  spriteforge::cli::Configure(app);
  // The text forms start from the options' defaults, so --help shows those.
  FlagText text{static_cast<double>(options->images), absl::StrJoin(options->priorities, ","),
                absl::StrCat(options->width, "x", options->height),
                options->render_width ? absl::StrCat(options->render_width, "x", options->render_height) : "",
                !options->calibrate};
  AddFlags(app, options, &text);
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  return ReadFlagText(text, options);
}

}  // namespace spriteforge::fleet
