#include "commands.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "progress.h"
#include "spriteforge/common/files.h"
#include "spriteforge/common/flags.h"

namespace spriteforge::client {
namespace {

int Error(const std::string& command, const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge %s: %s\n", command.c_str(), message.c_str());
  return code;
}

int RpcError(const std::string& command, const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return Error(command, "coordinator unavailable: " + status.error_message());
  }
  // A coordinator resets streams that would take more memory than its client calls may hold.
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      status.error_message().find("RST_STREAM") != std::string::npos) {
    return Error(command, "the coordinator refused the request: too large, or too many large requests at once");
  }
  return Error(command, status.error_message());
}

const char* JobStateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_QUEUED: return "queued";
    case v1::JOB_RUNNING: return "running";
    case v1::JOB_DONE: return "done";
    case v1::JOB_FAILED: return "failed";
    case v1::JOB_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

nlohmann::json JobJson(const v1::Job& job) {
  const v1::ItemCounts& c = job.counts();
  return {{"id", job.id()},
          {"name", job.name()},
          {"model", job.model()},
          {"priority", job.priority()},
          {"state", JobStateName(job.state())},
          {"counts",
           {{"total", c.total()},
            {"queued", c.queued()},
            {"running", c.running()},
            {"done", c.done()},
            {"failed", c.failed()},
            {"cancelled", c.cancelled()}}},
          {"images_per_second", job.images_per_second()},
          {"eta_seconds", job.eta_seconds()},
          {"output_dir", job.output_dir()},
          {"created_unix_ms", job.created_unix_ms()},
          {"finished_unix_ms", job.finished_unix_ms()}};
}

std::string JobLine(const v1::Job& job) {
  const v1::ItemCounts& c = job.counts();
  return absl::StrFormat("%-18s %-10s %-16s %5d/%-5d done  %d running  %d queued  %d failed  %.2f img/s", job.id(),
                         JobStateName(job.state()), job.name(), c.done(), c.total(), c.running(), c.queued(),
                         c.failed(), job.images_per_second());
}

bool Finished(v1::JobState s) { return s == v1::JOB_DONE || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED; }

}  // namespace

int Submit(Stub& stub, const Args& args) {
  auto flags = Flags::Parse(args, {"--idempotency-key", "--model"}, {"--wait", "--quiet"});
  if (!flags.ok()) return Error("submit", std::string(flags.status().message()), 2);
  if (flags->positional().size() != 1) return Error("submit", "usage: spriteforge submit MANIFEST [--wait]", 2);
  const std::string path = flags->positional()[0];
  auto text = ReadFile(path);
  if (!text.ok()) return Error("submit", std::string(text.status().message()));
  v1::SubmitJobRequest request;
  request.set_manifest(*text);
  request.set_manifest_name(path);
  request.set_idempotency_key(flags->Get("--idempotency-key"));
  request.set_model_override(flags->Get("--model"));
  v1::SubmitJobResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.SubmitJob(&ctx, request, &response); !s.ok()) return RpcError("submit", s);
  std::printf("%s\n", response.job().id().c_str());
  std::fflush(stdout);
  if (response.deduplicated()) std::fprintf(stderr, "spriteforge submit: same idempotency key: existing job\n");
  if (!flags->Has("--wait")) return 0;
  return WatchJob(stub, response.job().id(), flags->Has("--quiet"));
}

int WatchJob(Stub& stub, const std::string& job_id, bool quiet) {
  grpc::ClientContext ctx;
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = stub.WatchJob(&ctx, request);
  ProgressView view(isatty(STDERR_FILENO));
  v1::JobEvent event;
  v1::Job last;
  while (reader->Read(&event)) {
    if (event.has_job()) last = event.job();
    const std::string text = view.Update(event);
    if (!quiet && !text.empty()) std::fputs(text.c_str(), stderr);
    if (event.has_job_done()) break;
  }
  ctx.TryCancel();
  const grpc::Status status = reader->Finish();
  if (!Finished(last.state())) {
    return status.ok() ? Error("watch", "stream ended before the job finished") : RpcError("watch", status);
  }
  std::fprintf(stderr, "%s: %s, %d of %d images in %s\n", job_id.c_str(), JobStateName(last.state()),
               last.counts().done(), last.counts().total(), last.output_dir().c_str());
  return last.state() == v1::JOB_DONE ? 0 : 1;
}

int Watch(Stub& stub, const Args& args) {
  auto flags = Flags::Parse(args, {}, {"--quiet"});
  if (!flags.ok() || flags->positional().size() != 1) return Error("watch", "usage: spriteforge watch JOB", 2);
  return WatchJob(stub, flags->positional()[0], flags->Has("--quiet"));
}

int Status(Stub& stub, const Args& args) {
  auto flags = Flags::Parse(args, {}, {"--json"});
  if (!flags.ok() || flags->positional().size() > 1) return Error("status", "usage: spriteforge status [JOB] [--json]", 2);
  const bool json = flags->Has("--json");
  if (flags->positional().size() == 1) {
    v1::GetJobRequest request;
    request.set_job_id(flags->positional()[0]);
    v1::GetJobResponse response;
    grpc::ClientContext ctx;
    if (auto s = stub.GetJob(&ctx, request, &response); !s.ok()) return RpcError("status", s);
    std::printf("%s\n", json ? JobJson(response.job()).dump(2).c_str() : JobLine(response.job()).c_str());
    return 0;
  }
  v1::ListJobsResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.ListJobs(&ctx, v1::ListJobsRequest(), &response); !s.ok()) return RpcError("status", s);
  nlohmann::json all = nlohmann::json::array();
  for (const v1::Job& job : response.jobs()) {
    if (json) all.push_back(JobJson(job));
    else std::printf("%s\n", JobLine(job).c_str());
  }
  if (json) std::printf("%s\n", all.dump(2).c_str());
  return 0;
}

int Cancel(Stub& stub, const Args& args) {
  if (args.size() != 1) return Error("cancel", "usage: spriteforge cancel JOB", 2);
  v1::CancelJobRequest request;
  request.set_job_id(args[0]);
  v1::CancelJobResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.CancelJob(&ctx, request, &response); !s.ok()) return RpcError("cancel", s);
  std::printf("%s\n", JobLine(response.job()).c_str());
  return 0;
}

int Workers(Stub& stub, const Args& args) {
  auto flags = Flags::Parse(args, {}, {"--json"});
  if (!flags.ok() || !flags->positional().empty()) return Error("workers", "usage: spriteforge workers [--json]", 2);
  v1::ListWorkersResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.ListWorkers(&ctx, v1::ListWorkersRequest(), &response); !s.ok()) return RpcError("workers", s);
  nlohmann::json all = nlohmann::json::array();
  for (const v1::WorkerView& w : response.workers()) {
    if (flags->Has("--json")) {
      all.push_back({{"id", w.id()},
                     {"device", w.device_name()},
                     {"compute_capability", w.compute_capability()},
                     {"unified_memory", w.unified_memory()},
                     {"connected", w.connected()},
                     {"models", std::vector<std::string>(w.models().begin(), w.models().end())},
                     {"max_batch", w.max_batch()},
                     {"memory_total_bytes", w.total_bytes()},
                     {"memory_used_bytes", w.used_bytes()},
                     {"memory_peak_bytes", w.peak_bytes()},
                     {"memory_budget_bytes", w.budget_bytes()},
                     {"running_items", w.running_items()},
                     {"images_done", w.images_done()},
                     {"images_per_second", w.images_per_second()}});
      continue;
    }
    std::printf("%-28s %-9s %-24s used %6.2f GB  peak %6.2f GB  budget %6.2f GB  %5lld images  %.2f img/s\n",
                w.id().c_str(), w.connected() ? "connected" : "gone", w.device_name().c_str(), w.used_bytes() / 1e9,
                w.peak_bytes() / 1e9, w.budget_bytes() / 1e9, static_cast<long long>(w.images_done()),
                w.images_per_second());
  }
  if (flags->Has("--json")) std::printf("%s\n", all.dump(2).c_str());
  return 0;
}

int Results(Stub& stub, const Args& args) {
  auto flags = Flags::Parse(args, {"--out"}, {"--renders"});
  if (!flags.ok() || flags->positional().size() != 1 || !flags->Has("--out")) {
    return Error("results", "usage: spriteforge results JOB --out DIR [--renders]", 2);
  }
  const std::string out = flags->Get("--out");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) return Error("results", "cannot create " + out + ": " + ec.message());
  v1::FetchResultsRequest request;
  request.set_job_id(flags->positional()[0]);
  request.set_include_renders(flags->Has("--renders"));
  grpc::ClientContext ctx;
  auto reader = stub.FetchResults(&ctx, request);
  v1::ResultFile file;
  int images = 0, files = 0;
  while (reader->Read(&file)) {
    // Names come from the server: keep only the last path component.
    const std::string name = std::filesystem::path(file.name()).filename().string();
    if (name.empty() || name == "." || name == "..") continue;
    if (auto s = WriteFileAtomic(out + "/" + name, file.data()); !s.ok()) {
      ctx.TryCancel();
      reader->Finish();
      return Error("results", std::string(s.message()));
    }
    ++files;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".png") == 0) ++images;
  }
  if (auto s = reader->Finish(); !s.ok()) return RpcError("results", s);
  std::printf("%d images (%d files) in %s\n", images, files, out.c_str());
  return 0;
}

}  // namespace spriteforge::client
