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
#include "common/cli.h"
#include "coordinator/tools/fleet_sim/coordinator_process.h"
#include "coordinator/tools/fleet_sim/event_loop.h"
#include "coordinator/tools/fleet_sim/fleet_stats.h"
#include "coordinator/tools/fleet_sim/sim_worker.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace fleet = spriteforge::fleet;
namespace v1 = spriteforge::v1;

namespace {

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

// "WxH", each side 8..4096.
bool ParseSize(const std::string& text, int* width, int* height) {
  std::vector<std::string> wh = absl::StrSplit(text, 'x');
  return wh.size() == 2 && absl::SimpleAtoi(wh[0], width) && absl::SimpleAtoi(wh[1], height) && *width >= 8 &&
         *height >= 8 && *width <= 4096 && *height <= 4096;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("spriteforge-fleet-sim: a real coordinator process against simulated workers that speak the worker "
               "protocol over gRPC, with a GPU that is a clock; prints a JSON report.",
               "spriteforge-fleet-sim");
  spriteforge::cli::Configure(app);
  std::string coordinator_bin, dir, report_path, size_text = "1024x1024", render_size_text, priorities_text = "0";
  std::vector<std::string> extra;
  int workers = 10, channels_flag = 0, jobs = 1, steps = 30, max_batch = 8, prefetch = 1, link_ms = 0,
      progress_every = 0;
  double images_d = 1000, time_scale = 1, batch_s = 7.0, package_s = 0.23, memory_gb = 141, oom = 0, crash = 0,
         reconnect_s = 30, duration_s = 0, warmup_s = 0;
  bool no_calibration = false;
  app.add_option("--coordinator", coordinator_bin, "The spriteforge-coordinator program to run")->required();
  app.add_option("--workers", workers, "Simulated workers")->check(CLI::Range(0, 100000));
  app.add_option("--channels", channels_flag, "gRPC connections the workers share (0: one per 50 workers)")
      ->check(CLI::Range(0, 10000));
  app.add_option("--images", images_d, "Images in all, split over the jobs")->check(CLI::Range(1.0, 1e8));
  app.add_option("--jobs", jobs, "Jobs submitted, one after the other")->check(CLI::Range(1, 100000));
  app.add_option("--priorities", priorities_text, "P,P,...: job i gets the (i mod count)-th priority");
  app.add_option("--size", size_text, "Image size WxH");
  app.add_option("--render-size", render_size_text,
                 "GPU time as for images of this size WxH (default --size); results keep --size");
  app.add_option("--steps", steps, "Denoising steps per image")->check(CLI::Range(1, 1000));
  app.add_option("--time-scale", time_scale, "Simulated seconds per real second")->check(CLI::Range(0.01, 1000.0));
  app.add_option("--batch-seconds", batch_s, "Render time of a batch of 8 at 1024x1024")
      ->check(CLI::Range(0.001, 3600.0));
  app.add_option("--package-seconds", package_s, "PNG encoding per batch, beside the GPU")->check(CLI::Range(0.0, 3600.0));
  app.add_option("--max-batch", max_batch, "Largest batch the workers register with")->check(CLI::Range(1, 256));
  app.add_option("--prefetch", prefetch, "Batches the workers hold beyond the one rendering")->check(CLI::Range(0, 4));
  app.add_option("--gpu-memory-gb", memory_gb, "Device memory per worker")->check(CLI::Range(1.0, 100000.0));
  app.add_flag("--no-calibration", no_calibration, "Register without measured peaks (the coordinator guesses)");
  app.add_option("--oom-rate", oom, "Probability that a batch runs out of memory")->check(CLI::Range(0.0, 1.0));
  app.add_option("--crash-rate", crash, "Probability that a worker dies during a batch")->check(CLI::Range(0.0, 1.0));
  app.add_option("--reconnect-seconds", reconnect_s, "Simulated restart time of a crashed worker")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--link-delay-ms", link_ms, "Added to every message a worker sends")->check(CLI::Range(0, 60000));
  app.add_option("--progress-every", progress_every,
                 "Step reports every N steps (0: the time scale, so each worker's message rate stays as in real time)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--duration", duration_s, "Stop this many seconds after the workers join (0: when all jobs finished)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--warmup", warmup_s, "Seconds after the workers joined before measuring")->check(CLI::Range(0.0, 1e6));
  std::string db;
  app.add_option("--db", db, "The coordinator's --db: a postgresql:// URL (default: a SQLite file in --work-dir)");
  app.add_option("--work-dir", dir, "Coordinator database, results and log (default: a new /tmp folder)");
  app.add_option("--coordinator-arg", extra, "Extra argument for the coordinator (repeatable)")->allow_extra_args(false);
  app.add_option("--report", report_path, "Also write the JSON report here");
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;

  const int64_t images = static_cast<int64_t>(images_d);
  if (images < jobs) return Fail("--images must be at least --jobs", 2);
  int width = 0, height = 0, render_width = 0, render_height = 0;
  if (!ParseSize(size_text, &width, &height)) return Fail("--size must be WxH, each 8..4096", 2);
  if (!render_size_text.empty() && !ParseSize(render_size_text, &render_width, &render_height)) {
    return Fail("--render-size must be WxH, each 8..4096", 2);
  }
  std::vector<int> priorities;
  for (absl::string_view p : absl::StrSplit(priorities_text, ',')) {
    int v;
    if (!absl::SimpleAtoi(p, &v)) return Fail("--priorities must be integers separated by commas", 2);
    priorities.push_back(v);
  }

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
  if (largest_job > 100000) {
    extra.push_back("--max-images-per-job");
    extra.push_back(absl::StrCat(largest_job));
  }
  auto coordinator = fleet::CoordinatorProcess::Start(coordinator_bin, dir, extra, db);
  if (!coordinator.ok()) return Fail(std::string(coordinator.status().message()));
  std::fprintf(stderr, "fleet-sim: coordinator pid %d, work folder %s\n", coordinator->pid(), dir.c_str());

  fleet::WorkerSpec spec;
  spec.max_batch = max_batch;
  spec.prefetch = prefetch;
  spec.time_scale = time_scale;
  spec.progress_every = progress_every > 0 ? progress_every : std::max(1, static_cast<int>(std::ceil(time_scale)));
  spec.calibrate = !no_calibration;
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
  // Submission, timed per job.
  auto client = v1::SpriteForge::NewStub(
      grpc::CreateChannel(coordinator->client_address(), grpc::InsecureChannelCredentials()));
  const auto before_submit = coordinator->Sample();
  const fleet::Clock::time_point submit_start = fleet::Clock::now();
  double slowest_submit = 0;
  std::vector<std::string> job_ids;
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
    job_ids.push_back(response.job().id());
  }
  const double submit_s = Since(submit_start);
  const auto after_submit = coordinator->Sample();
  // Workers join once every job is queued, so jobs compete from the first batch on (and a
  // thousand registrations meet a full queue, as after a coordinator restart).
  const fleet::Clock::time_point register_start = fleet::Clock::now();
  for (auto& w : fleet_workers) w->Start();
  while (stats.registered() < workers && Since(register_start) < 120) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (stats.registered() < workers) {
    return Fail(absl::StrCat("only ", stats.registered(), " of ", workers, " workers registered"));
  }
  const double register_s = Since(register_start);
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
                       s.queue_depth(), s.running_items()});
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
      finished = duration_s > 0 && Since(register_start) >= duration_s;
      continue;
    }
    const Sample& s = samples.back();
    finished = (s.queue_depth == 0 && s.running == 0 && stats.items_assigned() >= images) ||
               (duration_s > 0 && Since(register_start) >= duration_s);
  }
  if (workers == 0) sample();
  const bool timed_out = duration_s > 0 && Since(register_start) >= duration_s;
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
  // Where every image ended, from the coordinator's own counts.
  nlohmann::json items = {{"total", 0}, {"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}, {"cancelled", 0}};
  for (const std::string& id : job_ids) {
    v1::GetJobRequest get;
    get.set_job_id(id);
    v1::GetJobResponse job;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!client->GetJob(&context, get, &job).ok()) continue;
    const v1::ItemCounts& c = job.job().counts();
    for (auto [key, n] : {std::pair<const char*, int>{"total", c.total()}, {"queued", c.queued()},
                          {"running", c.running()}, {"done", c.done()}, {"failed", c.failed()},
                          {"cancelled", c.cancelled()}}) {
      items[key] = items[key].get<int64_t>() + n;
    }
  }
  coordinator_report["items"] = items;
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
  if (!report_path.empty()) {
    std::ofstream out(report_path);
    out << text << "\n";
    if (!out) return Fail(absl::StrCat("cannot write ", report_path));
  }
  return 0;
}
