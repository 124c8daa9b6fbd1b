// spriteforge-fleet-sim: a real coordinator process against N simulated workers that speak
// the worker protocol over gRPC, with a GPU that is a clock. Prints a JSON report: images
// committed per second, assignments per second, the coordinator's CPU per image and memory,
// how long ready workers wait for their next batch, the share of GPU time lost waiting, and
// whether jobs got their share by priority and round-robin.
//
//   spriteforge-fleet-sim --coordinator BIN --workers 100 --images 20000 [--jobs 5
//       --priorities 0,1] [--time-scale 10] [--report FILE] ...   (--help lists all)
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator_process.h"
#include "event_loop.h"
#include "fleet_stats.h"
#include "sim_worker.h"
#include "spriteforge/common/flags.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace fleet = spriteforge::fleet;
namespace v1 = spriteforge::v1;

namespace {

constexpr char kUsage[] =
    "usage: spriteforge-fleet-sim --coordinator BIN [options]\n"
    "  --workers N            simulated workers (default 10)\n"
    "  --channels N           gRPC connections the workers share (default one per 50 workers)\n"
    "  --images N             images in all (default 1000), split over --jobs N (default 1)\n"
    "  --priorities P,P,...   job i gets the (i mod count)-th priority (default 0)\n"
    "  --size WxH --steps N   image shape (default 1024x1024, 30 steps)\n"
    "  --render-size WxH      GPU time as for this size (default --size); results keep --size\n"
    "  --time-scale S         simulated seconds per real second (default 1)\n"
    "  --batch-seconds S      render time of a batch of 8 at 1024x1024 (default 7.0)\n"
    "  --package-seconds S    PNG encoding per batch, beside the GPU (default 0.23)\n"
    "  --max-batch N --prefetch N      what workers register with (default 8, 1)\n"
    "  --gpu-memory-gb G      device memory per worker (default 141); --no-calibration\n"
    "  --oom-rate P --crash-rate P     per-batch failure probabilities (default 0)\n"
    "  --reconnect-seconds S  simulated restart time after a crash (default 30)\n"
    "  --link-delay-ms N      added to every worker message (default 0)\n"
    "  --progress-every N     step reports every N steps (default: the time scale, so the\n"
    "                         message rate per worker stays as in real time)\n"
    "  --duration S           stop after S seconds (default: when all jobs finished)\n"
    "  --warmup S             seconds after submission before measuring (default 0)\n"
    "  --work-dir DIR         coordinator database, results and log (default: a new /tmp folder)\n"
    "  --coordinator-arg X    extra argument for the coordinator (repeatable)\n"
    "  --report FILE          also write the JSON report here\n";

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge-fleet-sim: error: %s\n", message.c_str());
  return code;
}

struct JobPlan {
  std::string name;
  int priority = 0;
  int64_t images = 0;
};

std::string ManifestOf(const JobPlan& job, int index, int width, int height, int steps) {
  std::string text = absl::StrCat("name: ", job.name, "\nmodel: sim-sdxl\npriority: ", job.priority,
                                  "\ndefaults: {width: ", width, ", height: ", height, ", steps: ", steps,
                                  ", cfg: 5.0}\nitems:\n");
  constexpr int64_t kPerEntry = 10000;  // the manifest's largest count per item
  for (int64_t done = 0, part = 0; done < job.images; done += kPerEntry, ++part) {
    absl::StrAppend(&text, "  - {prompt: \"simulated sprite ", index, " part ", part,
                    "\", count: ", std::min(kPerEntry, job.images - done), ", seed: ", index * 100000000LL + done,
                    "}\n");
  }
  return text;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

double Since(fleet::Clock::time_point start) {
  return std::chrono::duration<double>(fleet::Clock::now() - start).count();
}

// The workers and their clock, stopped in order on every way out: streams first (their
// last reactions call back into the workers), then the clock, then the workers.
struct Fleet {
  std::unique_ptr<fleet::EventLoop> loop = std::make_unique<fleet::EventLoop>();
  std::vector<std::unique_ptr<fleet::SimWorker>> workers;
  void Stop() {
    for (auto& w : workers) w->Stop();
    for (auto& w : workers) w->WaitStopped();
    loop.reset();
    workers.clear();
  }
  ~Fleet() { Stop(); }
};

struct Sample {
  double t;
  double cpu_s, rss_mb, peak_rss_mb;
  int64_t images_total, queue_depth, running;
};

}  // namespace

int main(int argc, char** argv) {
  auto flags = spriteforge::Flags::Parse(
      std::vector<std::string>(argv + 1, argv + argc),
      {"--coordinator", "--workers", "--channels", "--images", "--jobs", "--priorities", "--size", "--render-size", "--steps",
       "--time-scale", "--batch-seconds", "--package-seconds", "--max-batch", "--prefetch", "--gpu-memory-gb",
       "--oom-rate", "--crash-rate", "--reconnect-seconds", "--link-delay-ms", "--progress-every", "--duration",
       "--warmup", "--work-dir", "--coordinator-arg", "--report"},
      {"--help", "--no-calibration"});
  if (!flags.ok()) return Fail(absl::StrCat(flags.status().message(), "\n", kUsage), 2);
  if (flags->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!flags->Has("--coordinator")) return Fail(absl::StrCat("--coordinator is required\n", kUsage), 2);

  auto int_flag = [&](const char* name, int fallback, int lo, int hi, int* out) -> bool {
    auto v = flags->GetInt(name, fallback);
    if (!v.ok() || *v < lo || *v > hi) {
      Fail(absl::StrCat(name, " must be an integer in ", lo, "..", hi), 2);
      return false;
    }
    *out = *v;
    return true;
  };
  auto num_flag = [&](const char* name, double fallback, double lo, double hi, double* out) -> bool {
    auto v = flags->GetDouble(name, fallback);
    if (!v.ok() || !(*v >= lo && *v <= hi)) {
      Fail(absl::StrCat(name, " must be a number in ", lo, "..", hi), 2);
      return false;
    }
    *out = *v;
    return true;
  };
  int workers, channels_flag, jobs, steps, max_batch, prefetch, link_ms, progress_every;
  double images_d, time_scale, batch_s, package_s, memory_gb, oom, crash, reconnect_s, duration_s, warmup_s;
  if (!int_flag("--workers", 10, 0, 100000, &workers) || !int_flag("--channels", 0, 0, 10000, &channels_flag) ||
      !int_flag("--jobs", 1, 1, 100000, &jobs) || !int_flag("--steps", 30, 1, 1000, &steps) ||
      !int_flag("--max-batch", 8, 1, 256, &max_batch) || !int_flag("--prefetch", 1, 0, 4, &prefetch) ||
      !int_flag("--link-delay-ms", 0, 0, 60000, &link_ms) || !int_flag("--progress-every", 0, 0, 1000, &progress_every) ||
      !num_flag("--images", 1000, 1, 1e8, &images_d) || !num_flag("--time-scale", 1, 0.01, 1000, &time_scale) ||
      !num_flag("--batch-seconds", 7.0, 0.001, 3600, &batch_s) ||
      !num_flag("--package-seconds", 0.23, 0, 3600, &package_s) ||
      !num_flag("--gpu-memory-gb", 141, 1, 100000, &memory_gb) || !num_flag("--oom-rate", 0, 0, 1, &oom) ||
      !num_flag("--crash-rate", 0, 0, 1, &crash) || !num_flag("--reconnect-seconds", 30, 0, 3600, &reconnect_s) ||
      !num_flag("--duration", 0, 0, 1e6, &duration_s) || !num_flag("--warmup", 0, 0, 1e6, &warmup_s)) {
    return 2;
  }
  const int64_t images = static_cast<int64_t>(images_d);
  if (images < jobs) return Fail("--images must be at least --jobs", 2);
  auto size_flag = [&](const char* name, const std::string& fallback, int* w, int* h) -> bool {
    std::vector<std::string> wh = absl::StrSplit(flags->Get(name, fallback), 'x');
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], w) || !absl::SimpleAtoi(wh[1], h) || *w < 8 || *h < 8 ||
        *w > 4096 || *h > 4096) {
      Fail(absl::StrCat(name, " must be WxH, each 8..4096"), 2);
      return false;
    }
    return true;
  };
  int width = 0, height = 0, render_width = 0, render_height = 0;
  if (!size_flag("--size", "1024x1024", &width, &height)) return 2;
  if (flags->Has("--render-size") && !size_flag("--render-size", "", &render_width, &render_height)) return 2;
  std::vector<int> priorities;
  for (absl::string_view p : absl::StrSplit(flags->Get("--priorities", "0"), ',')) {
    int v;
    if (!absl::SimpleAtoi(p, &v)) return Fail("--priorities must be integers separated by commas", 2);
    priorities.push_back(v);
  }

  std::string dir = flags->Get("--work-dir");
  if (dir.empty()) {
    char tmpl[] = "/tmp/spriteforge-fleet-XXXXXX";
    if (!mkdtemp(tmpl)) return Fail("cannot create a work folder in /tmp");
    dir = tmpl;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  // Every run starts from an empty store: a previous run's queue would change the figures.
  for (const char* stale : {"coordinator.db", "coordinator.db-wal", "coordinator.db-shm", "out"}) {
    std::filesystem::remove_all(std::filesystem::path(dir) / stale, ec);
  }

  // The plan: jobs, their sizes and priorities.
  std::vector<JobPlan> plan(jobs);
  int64_t largest_job = 0;
  for (int i = 0; i < jobs; ++i) {
    plan[i].name = absl::StrCat("fleet-sim-", i);
    plan[i].priority = priorities[i % priorities.size()];
    plan[i].images = images / jobs + (i < images % jobs ? 1 : 0);
    largest_job = std::max(largest_job, plan[i].images);
  }
  std::vector<std::string> extra = flags->All("--coordinator-arg");
  if (largest_job > 100000) {
    extra.push_back("--max-images-per-job");
    extra.push_back(absl::StrCat(largest_job));
  }
  auto coordinator = fleet::CoordinatorProcess::Start(flags->Get("--coordinator"), dir, extra);
  if (!coordinator.ok()) return Fail(std::string(coordinator.status().message()));
  std::fprintf(stderr, "fleet-sim: coordinator pid %d, work folder %s\n", coordinator->pid(), dir.c_str());

  fleet::WorkerSpec spec;
  spec.max_batch = max_batch;
  spec.prefetch = prefetch;
  spec.time_scale = time_scale;
  spec.progress_every = progress_every > 0 ? progress_every : std::max(1, static_cast<int>(std::ceil(time_scale)));
  spec.calibrate = !flags->Has("--no-calibration");
  spec.shapes = {{width, height}};
  spec.render_width = render_width;
  spec.render_height = render_height;
  spec.gpu.batch_seconds = batch_s;
  spec.gpu.package_seconds = package_s;
  spec.gpu.total_bytes = static_cast<uint64_t>(memory_gb * (1ull << 30));
  spec.failures.oom_rate = oom;
  spec.failures.crash_rate = crash;
  spec.failures.reconnect_seconds = reconnect_s;
  spec.failures.link_delay_ms = link_ms;
  fleet::PngCache pngs;
  pngs.Add(width, height);

  const fleet::Clock::time_point start = fleet::Clock::now();
  fleet::FleetStats stats(start);
  Fleet sim_fleet;
  auto& loop = sim_fleet.loop;
  auto& fleet_workers = sim_fleet.workers;
  {
    // Workers share a few connections, one HTTP/2 stream each, as many GPU processes on
    // one host would not; distinct connections keep one socket from serialising them all.
    const int channels = std::max(1, channels_flag > 0 ? channels_flag : (workers + 49) / 50);
    std::vector<std::shared_ptr<grpc::Channel>> pool;
    for (int c = 0; c < channels; ++c) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetMaxReceiveMessageSize(64 << 20);
      args.SetMaxSendMessageSize(256 << 20);
      pool.push_back(grpc::CreateCustomChannel(coordinator->worker_address(), grpc::InsecureChannelCredentials(), args));
    }
    for (int i = 0; i < workers; ++i) {
      fleet_workers.push_back(std::make_unique<fleet::SimWorker>(absl::StrCat("sim-", i), pool[i % channels], &spec,
                                                                 loop.get(), &stats, &pngs, 1000003ull * (i + 1)));
    }
  }
  for (auto& w : fleet_workers) w->Start();
  while (stats.registered() < workers && Since(start) < 120) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (stats.registered() < workers) return Fail(absl::StrCat("only ", stats.registered(), " of ", workers, " workers registered"));
  const double register_s = Since(start);

  // Submission, timed per job.
  auto client = v1::SpriteForge::NewStub(
      grpc::CreateChannel(coordinator->client_address(), grpc::InsecureChannelCredentials()));
  const auto before_submit = coordinator->Sample();
  const fleet::Clock::time_point submit_start = fleet::Clock::now();
  double slowest_submit = 0;
  for (int i = 0; i < jobs; ++i) {
    v1::SubmitJobRequest request;
    request.set_manifest(ManifestOf(plan[i], i, width, height, steps));
    request.set_manifest_name(plan[i].name + ".yaml");
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    const fleet::Clock::time_point t0 = fleet::Clock::now();
    const grpc::Status status = client->SubmitJob(&context, request, &response);
    if (!status.ok()) return Fail(absl::StrCat("submitting ", plan[i].name, ": ", status.error_message()));
    slowest_submit = std::max(slowest_submit, Since(t0));
    stats.AddJob(response.job().id(), plan[i].priority, plan[i].images);
  }
  const double submit_s = Since(submit_start);
  const auto after_submit = coordinator->Sample();
  // Measured until the queue is about to run dry: from then on idle workers wait for work
  // that does not exist, not for the coordinator.
  const int64_t tail = static_cast<int64_t>(workers) * max_batch * (1 + prefetch);
  stats.OpenWindow(fleet::Clock::now() + std::chrono::duration_cast<fleet::Clock::duration>(
                                             std::chrono::duration<double>(warmup_s)),
                   images - tail);

  std::vector<Sample> samples;
  auto sample = [&]() -> bool {
    auto proc = coordinator->Sample();
    v1::GetStatsResponse s;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!proc.ok() || !client->GetStats(&context, v1::GetStatsRequest(), &s).ok()) return false;
    samples.push_back({Since(start), proc->cpu_seconds, proc->rss_mb, proc->peak_rss_mb, s.images_total(),
                       s.queue_depth(), 0});
    nlohmann::json j = nlohmann::json::parse(s.json(), nullptr, false);
    if (!j.is_discarded() && j.contains("running_items")) samples.back().running = j["running_items"].get<int64_t>();
    return true;
  };
  bool finished = workers == 0;
  int stats_timeouts = 0;
  while (!finished) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (!sample()) {
      // A coordinator too busy to answer within the deadline is a result, not an error.
      if (!coordinator->Sample().ok()) return Fail(absl::StrCat("the coordinator died; see ", dir, "/coordinator.log"));
      ++stats_timeouts;
      finished = duration_s > 0 && Since(submit_start) >= duration_s;
      continue;
    }
    const Sample& s = samples.back();
    finished = (s.queue_depth == 0 && s.running == 0 && stats.items_assigned() >= images) ||
               (duration_s > 0 && Since(submit_start) >= duration_s);
  }
  if (workers == 0) sample();
  const bool timed_out = duration_s > 0 && Since(submit_start) >= duration_s;
  stats.CloseWindow(fleet::Clock::now());
  const double end_s = Since(start);

  sim_fleet.Stop();

  nlohmann::json fleet_report = stats.Report();
  const double w0 = fleet_report["window_s"][0].get<double>(), w1 = fleet_report["window_s"][1].get<double>();
  // The samples nearest the window's ends give the coordinator's side of it.
  const Sample* first = nullptr;
  const Sample* last = nullptr;
  for (const Sample& s : samples) {
    if (!first && s.t >= w0) first = &s;
    if (s.t <= w1 + 0.5) last = &s;
  }
  nlohmann::json coordinator_report;
  if (first && last && last->t > first->t) {
    const int64_t committed = last->images_total - first->images_total;
    coordinator_report["window_s"] = {first->t, last->t};
    coordinator_report["images_committed"] = committed;
    coordinator_report["images_per_second"] = committed / (last->t - first->t);
    coordinator_report["cpu_seconds"] = last->cpu_s - first->cpu_s;
    coordinator_report["cpu_ms_per_image"] = committed > 0 ? 1000.0 * (last->cpu_s - first->cpu_s) / committed : 0.0;
    coordinator_report["cpu_cores_busy"] = (last->cpu_s - first->cpu_s) / (last->t - first->t);
  }
  if (!samples.empty()) {
    coordinator_report["rss_mb"] = samples.back().rss_mb;
    coordinator_report["peak_rss_mb"] = samples.back().peak_rss_mb;
    coordinator_report["images_total"] = samples.back().images_total;
  }
  const int exit_code = coordinator->Stop();
  coordinator_report["db_mb"] = coordinator->DbBytes() / 1048576.0;
  coordinator_report["exit_code"] = exit_code;
  coordinator_report["stats_calls_timed_out"] = stats_timeouts;

  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const double sim_cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  nlohmann::json series = nlohmann::json::array();
  for (const Sample& s : samples) {
    series.push_back({{"t", s.t}, {"images_total", s.images_total}, {"queue_depth", s.queue_depth},
                      {"cpu_s", s.cpu_s}, {"rss_mb", s.rss_mb}});
  }
  nlohmann::json report = {
      {"machine", {{"cpus", std::thread::hardware_concurrency()}, {"cpu", CpuModel()}}},
      {"config",
       {{"workers", workers}, {"images", images}, {"jobs", jobs}, {"priorities", priorities},
        {"size", absl::StrCat(width, "x", height)},
        {"render_size", render_width ? absl::StrCat(render_width, "x", render_height) : ""}, {"steps", steps}, {"time_scale", time_scale},
        {"batch_seconds", batch_s}, {"package_seconds", package_s}, {"max_batch", max_batch},
        {"prefetch", prefetch}, {"progress_every", spec.progress_every}, {"oom_rate", oom},
        {"crash_rate", crash}, {"link_delay_ms", link_ms}, {"coordinator_args", extra}}},
      {"register_s", register_s},
      {"submit",
       {{"seconds", submit_s},
        {"slowest_job_s", slowest_submit},
        {"rss_mb_before", before_submit.ok() ? before_submit->rss_mb : 0},
        {"rss_mb_after", after_submit.ok() ? after_submit->rss_mb : 0},
        {"peak_rss_mb_after", after_submit.ok() ? after_submit->peak_rss_mb : 0}}},
      {"run_s", end_s},
      {"finished", !timed_out},
      {"coordinator", coordinator_report},
      {"fleet", fleet_report},
      {"sim_cpu_seconds", sim_cpu},
      {"work_dir", dir},
      {"samples", series}};
  const std::string text = report.dump(2);
  std::printf("%s\n", text.c_str());
  if (flags->Has("--report")) {
    std::ofstream out(flags->Get("--report"));
    out << text << "\n";
    if (!out) return Fail(absl::StrCat("cannot write ", flags->Get("--report")));
  }
  return 0;
}
