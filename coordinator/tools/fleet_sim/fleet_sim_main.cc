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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/tools/fleet_sim/coordinator_process.h"
#include "coordinator/tools/fleet_sim/event_loop.h"
#include "coordinator/tools/fleet_sim/fleet_sim_options.h"
#include "coordinator/tools/fleet_sim/fleet_stats.h"
#include "coordinator/tools/fleet_sim/sim_worker.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace fleet = spriteforge::fleet;
namespace v1 = spriteforge::v1;

namespace {

using fleet::FleetSimOptions;

struct JobPlan {
  std::string name;
  int priority = 0;
  int64_t images = 0;
};

// The coordinator's side of the run, sampled once a second.
struct Sample {
  double t;
  double cpu_s, rss_mb, peak_rss_mb;
  int64_t images_total, queue_depth, running;
};

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

struct Submission {
  std::vector<std::string> job_ids;
  double seconds = 0, slowest_job_s = 0;
  absl::StatusOr<fleet::ProcessSample> before, after;  // the coordinator's memory around it
};

struct Measurement {
  std::vector<Sample> samples;
  int stats_timeouts = 0;  // GetStats calls the coordinator did not answer in time
  bool timed_out = false;  // stopped by --duration before every job finished
};

double Since(fleet::Clock::time_point start) {
  return std::chrono::duration<double>(fleet::Clock::now() - start).count();
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

double OwnCpuSeconds() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// --work-dir, or a new /tmp folder; emptied of a previous run's store and results, which
// would change the figures.
absl::StatusOr<std::string> PrepareWorkDir(std::string dir) {
  if (dir.empty()) {
    char tmpl[] = "/tmp/spriteforge-fleet-XXXXXX";
    if (!mkdtemp(tmpl)) return absl::InternalError("cannot create a work folder in /tmp");
    dir = tmpl;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const char* stale : {"coordinator.db", "coordinator.db-wal", "coordinator.db-shm", "out"}) {
    std::filesystem::remove_all(std::filesystem::path(dir) / stale, ec);
  }
  return dir;
}

// The jobs: the images split evenly, priorities taken in turn.
std::vector<JobPlan> PlanJobs(const FleetSimOptions& options) {
  std::vector<JobPlan> plan(options.jobs);
  for (int i = 0; i < options.jobs; ++i) {
    plan[i].name = absl::StrCat("fleet-sim-", i);
    plan[i].priority = options.priorities[i % options.priorities.size()];
    plan[i].images = options.images / options.jobs + (i < options.images % options.jobs ? 1 : 0);
  }
  return plan;
}

// The coordinator's arguments: the user's, and a cap on job size the largest job fits.
std::vector<std::string> CoordinatorArgs(const FleetSimOptions& options, const std::vector<JobPlan>& plan) {
  std::vector<std::string> args = options.coordinator_args;
  int64_t largest_job = 0;
  for (const JobPlan& job : plan) largest_job = std::max(largest_job, job.images);
  if (largest_job > 100000) {
    args.push_back("--max-images-per-job");
    args.push_back(absl::StrCat(largest_job));
  }
  return args;
}

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

fleet::WorkerSpec WorkerSpecOf(const FleetSimOptions& options) {
  fleet::WorkerSpec spec;
  spec.max_batch = options.max_batch;
  spec.prefetch = options.prefetch;
  spec.time_scale = options.time_scale;
  spec.progress_every = options.progress_every > 0 ? options.progress_every
                                                   : std::max(1, static_cast<int>(std::ceil(options.time_scale)));
  spec.calibrate = options.calibrate;
  spec.shapes = {{options.width, options.height}};
  spec.render_width = options.render_width;
  spec.render_height = options.render_height;
  spec.gpu.batch_seconds = options.batch_seconds;
  spec.gpu.package_seconds = options.package_seconds;
  spec.gpu.total_bytes = static_cast<uint64_t>(options.gpu_memory_gb * (1ull << 30));
  spec.failures.oom_rate = options.oom_rate;
  spec.failures.crash_rate = options.crash_rate;
  spec.failures.reconnect_seconds = options.reconnect_seconds;
  spec.failures.link_delay_ms = options.link_delay_ms;
  return spec;
}

// The workers, not yet started. They share a few connections, one HTTP/2 stream each, as
// many GPU processes on one host would not; distinct connections keep one socket from
// serialising them all.
void AddWorkers(const FleetSimOptions& options, const std::string& address, const fleet::WorkerSpec* spec,
                fleet::FleetStats* stats, const fleet::PngCache* pngs, Fleet* sim_fleet) {
  const int channels = std::max(1, options.channels > 0 ? options.channels : (options.workers + 49) / 50);
  std::vector<std::shared_ptr<grpc::Channel>> pool;
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    pool.push_back(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  for (int i = 0; i < options.workers; ++i) {
    sim_fleet->workers.push_back(std::make_unique<fleet::SimWorker>(
        absl::StrCat("sim-", i), pool[i % channels], spec, sim_fleet->loop.get(), stats, pngs, 1000003ull * (i + 1)));
  }
}

// Every job, one after the other, each call timed.
absl::StatusOr<Submission> SubmitJobs(const std::vector<JobPlan>& plan, const FleetSimOptions& options,
                                      v1::SpriteForge::Stub* client, fleet::CoordinatorProcess* coordinator,
                                      fleet::FleetStats* stats) {
  Submission submission;
  submission.before = coordinator->Sample();
  const fleet::Clock::time_point start = fleet::Clock::now();
  for (size_t i = 0; i < plan.size(); ++i) {
    v1::SubmitJobRequest request;
    request.set_manifest(ManifestOf(plan[i], static_cast<int>(i), options.width, options.height, options.steps));
    request.set_manifest_name(plan[i].name + ".yaml");
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    const fleet::Clock::time_point t0 = fleet::Clock::now();
    const grpc::Status status = client->SubmitJob(&context, request, &response);
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("submitting ", plan[i].name, ": ", status.error_message()));
    }
    submission.slowest_job_s = std::max(submission.slowest_job_s, Since(t0));
    stats->AddJob(response.job().id(), plan[i].priority, plan[i].images);
    submission.job_ids.push_back(response.job().id());
  }
  submission.seconds = Since(start);
  submission.after = coordinator->Sample();
  return submission;
}

// Starts every worker and waits (two minutes at most) until all registered; returns how
// long that took.
absl::StatusOr<double> JoinWorkers(Fleet& sim_fleet, const fleet::FleetStats& stats, int workers) {
  const fleet::Clock::time_point start = fleet::Clock::now();
  for (auto& w : sim_fleet.workers) w->Start();
  while (stats.registered() < workers && Since(start) < 120) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (stats.registered() < workers) {
    return absl::DeadlineExceededError(absl::StrCat("only ", stats.registered(), " of ", workers, " workers registered"));
  }
  return Since(start);
}

// Samples the coordinator every second until the queue is empty and every image was
// assigned, or --duration passed since the workers joined (`joined`).
absl::StatusOr<Measurement> Measure(const FleetSimOptions& options, fleet::Clock::time_point start,
                                    fleet::Clock::time_point joined, fleet::CoordinatorProcess* coordinator,
                                    v1::SpriteForge::Stub* client, const fleet::FleetStats& stats) {
  Measurement m;
  auto sample = [&]() -> bool {
    auto proc = coordinator->Sample();
    v1::GetStatsResponse s;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!proc.ok() || !client->GetStats(&context, v1::GetStatsRequest(), &s).ok()) return false;
    m.samples.push_back({Since(start), proc->cpu_seconds, proc->rss_mb, proc->peak_rss_mb, s.images_total(),
                         s.queue_depth(), s.running_items()});
    return true;
  };
  const auto duration_passed = [&] { return options.duration_s > 0 && Since(joined) >= options.duration_s; };
  bool finished = options.workers == 0;
  while (!finished) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (!sample()) {
      // A coordinator too busy to answer within the deadline is a result, not an error.
      if (!coordinator->Sample().ok()) {
        return absl::InternalError(absl::StrCat("the coordinator died; see ", options.work_dir, "/coordinator.log"));
      }
      ++m.stats_timeouts;
      finished = duration_passed();
      continue;
    }
    const Sample& s = m.samples.back();
    finished = (s.queue_depth == 0 && s.running == 0 && stats.items_assigned() >= options.images) || duration_passed();
  }
  if (options.workers == 0) sample();
  m.timed_out = duration_passed();
  return m;
}

// The coordinator's figures over the fleet's measurement window [w0, w1], from the samples
// nearest its ends, and its state at the last sample.
nlohmann::json CoordinatorWindow(const std::vector<Sample>& samples, double w0, double w1) {
  const Sample* first = nullptr;
  const Sample* last = nullptr;
  for (const Sample& s : samples) {
    if (!first && s.t >= w0) first = &s;
    if (s.t <= w1 + 0.5) last = &s;
  }
  nlohmann::json report;
  if (first && last && last->t > first->t) {
    const int64_t committed = last->images_total - first->images_total;
    report["window_s"] = {first->t, last->t};
    report["images_committed"] = committed;
    report["images_per_second"] = committed / (last->t - first->t);
    report["cpu_seconds"] = last->cpu_s - first->cpu_s;
    report["cpu_ms_per_image"] = committed > 0 ? 1000.0 * (last->cpu_s - first->cpu_s) / committed : 0.0;
    report["cpu_cores_busy"] = (last->cpu_s - first->cpu_s) / (last->t - first->t);
  }
  if (!samples.empty()) {
    report["rss_mb"] = samples.back().rss_mb;
    report["peak_rss_mb"] = samples.back().peak_rss_mb;
    report["images_total"] = samples.back().images_total;
  }
  return report;
}

// Where every image ended, from the coordinator's own counts.
nlohmann::json ItemCounts(v1::SpriteForge::Stub* client, const std::vector<std::string>& job_ids) {
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
  return items;
}

nlohmann::json ConfigReport(const FleetSimOptions& options, const fleet::WorkerSpec& spec,
                            const std::vector<std::string>& coordinator_args) {
  return {{"workers", options.workers},
          {"images", options.images},
          {"jobs", options.jobs},
          {"priorities", options.priorities},
          {"size", absl::StrCat(options.width, "x", options.height)},
          {"render_size", options.render_width ? absl::StrCat(options.render_width, "x", options.render_height) : ""},
          {"steps", options.steps},
          {"time_scale", options.time_scale},
          {"batch_seconds", options.batch_seconds},
          {"package_seconds", options.package_seconds},
          {"max_batch", options.max_batch},
          {"prefetch", options.prefetch},
          {"progress_every", spec.progress_every},
          {"oom_rate", options.oom_rate},
          {"crash_rate", options.crash_rate},
          {"link_delay_ms", options.link_delay_ms},
          {"coordinator_args", coordinator_args}};
}

nlohmann::json SubmitReport(const Submission& submission) {
  return {{"seconds", submission.seconds},
          {"slowest_job_s", submission.slowest_job_s},
          {"rss_mb_before", submission.before.ok() ? submission.before->rss_mb : 0},
          {"rss_mb_after", submission.after.ok() ? submission.after->rss_mb : 0},
          {"peak_rss_mb_after", submission.after.ok() ? submission.after->peak_rss_mb : 0}};
}

nlohmann::json SampleSeries(const std::vector<Sample>& samples) {
  nlohmann::json series = nlohmann::json::array();
  for (const Sample& s : samples) {
    series.push_back({{"t", s.t}, {"images_total", s.images_total}, {"queue_depth", s.queue_depth},
                      {"cpu_s", s.cpu_s}, {"rss_mb", s.rss_mb}});
  }
  return series;
}

// The report on stdout, and in --report when given.
absl::Status Publish(const nlohmann::json& report, const std::string& report_path) {
  const std::string text = report.dump(2);
  std::printf("%s\n", text.c_str());
  if (report_path.empty()) return absl::OkStatus();
  std::ofstream out(report_path);
  out << text << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", report_path));
  return absl::OkStatus();
}

// Starts the coordinator, submits every job, lets the workers join, measures until the
// jobs are done (or --duration), stops the fleet and the coordinator, and reports.
absl::Status Run(FleetSimOptions options) {
  ASSIGN_OR_RETURN(options.work_dir, PrepareWorkDir(options.work_dir));
  const std::vector<JobPlan> plan = PlanJobs(options);
  const std::vector<std::string> coordinator_args = CoordinatorArgs(options, plan);
  ASSIGN_OR_RETURN(fleet::CoordinatorProcess coordinator,
                   fleet::CoordinatorProcess::Start(options.coordinator_bin, options.work_dir, coordinator_args,
                                                    options.db));
  std::fprintf(stderr, "fleet-sim: coordinator pid %d, work folder %s\n", coordinator.pid(), options.work_dir.c_str());

  // Declared before the fleet, so they outlive its workers on every way out.
  const fleet::WorkerSpec spec = WorkerSpecOf(options);
  fleet::PngCache pngs;
  pngs.Add(options.width, options.height);
  const fleet::Clock::time_point start = fleet::Clock::now();
  fleet::FleetStats stats(start);
  Fleet sim_fleet;
  AddWorkers(options, coordinator.worker_address(), &spec, &stats, &pngs, &sim_fleet);

  auto client = v1::SpriteForge::NewStub(
      grpc::CreateChannel(coordinator.client_address(), grpc::InsecureChannelCredentials()));
  ASSIGN_OR_RETURN(const Submission submission, SubmitJobs(plan, options, client.get(), &coordinator, &stats));
  // Workers join once every job is queued, so jobs compete from the first batch on (and a
  // thousand registrations meet a full queue, as after a coordinator restart).
  const fleet::Clock::time_point joining = fleet::Clock::now();
  ASSIGN_OR_RETURN(const double register_s, JoinWorkers(sim_fleet, stats, options.workers));
  // Measured until the queue is about to run dry: from then on idle workers wait for work
  // that does not exist, not for the coordinator.
  const int64_t tail = static_cast<int64_t>(options.workers) * options.max_batch * (1 + options.prefetch);
  stats.OpenWindow(fleet::Clock::now() + std::chrono::duration_cast<fleet::Clock::duration>(
                                             std::chrono::duration<double>(options.warmup_s)),
                   options.images - tail);
  ASSIGN_OR_RETURN(const Measurement measured, Measure(options, start, joining, &coordinator, client.get(), stats));
  stats.CloseWindow(fleet::Clock::now());
  const double run_s = Since(start);
  sim_fleet.Stop();

  const nlohmann::json fleet_report = stats.Report();
  nlohmann::json coordinator_report = CoordinatorWindow(
      measured.samples, fleet_report["window_s"][0].get<double>(), fleet_report["window_s"][1].get<double>());
  coordinator_report["items"] = ItemCounts(client.get(), submission.job_ids);
  coordinator_report["exit_code"] = coordinator.Stop();
  coordinator_report["db_mb"] = coordinator.DbBytes() / 1048576.0;
  coordinator_report["stats_calls_timed_out"] = measured.stats_timeouts;
  const nlohmann::json report = {
      {"machine", {{"cpus", std::thread::hardware_concurrency()}, {"cpu", CpuModel()}}},
      {"config", ConfigReport(options, spec, coordinator_args)},
      {"register_s", register_s},
      {"submit", SubmitReport(submission)},
      {"run_s", run_s},
      {"finished", !measured.timed_out},
      {"coordinator", coordinator_report},
      {"fleet", fleet_report},
      {"sim_cpu_seconds", OwnCpuSeconds()},
      {"work_dir", options.work_dir},
      {"samples", SampleSeries(measured.samples)}};
  return Publish(report, options.report_path);
}

}  // namespace

int main(int argc, char** argv) {
  FleetSimOptions options;
  if (int code = fleet::ParseFleetSimOptions(argc, argv, &options); code >= 0) return code;
  if (absl::Status status = Run(std::move(options)); !status.ok()) {
    std::fprintf(stderr, "spriteforge-fleet-sim: error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
