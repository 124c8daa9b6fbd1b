#include "coordinator/transport/http/sync_jobs.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator::http {

absl::StatusOr<std::string> ChooseModel(Coordinator* core, const std::string& requested) {
  std::set<std::string> served;
  const v1::ListWorkersResponse workers = core->ListWorkers();
  for (const v1::WorkerView& w : workers.workers()) {
    if (w.connected()) served.insert(w.models().begin(), w.models().end());
  }
  if (served.empty()) return absl::UnavailableError("no worker is connected to generate images");
  if (requested.empty()) return *served.begin();
  if (!served.count(requested)) {
    return absl::InvalidArgumentError(absl::StrCat("model '", requested, "' is not served by any connected worker (",
                                                   absl::StrJoin(served, ", "), ")"));
  }
  return requested;
}

uint64_t DrawSeed() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return rng() & 0xffffffffu;
}

absl::StatusOr<std::map<std::string, std::string>> UploadFiles(HttpApi& api, const httplib::Request& req,
                                                               const std::map<std::string, std::string>& files,
                                                               ManifestFileKind kind) {
  std::map<std::string, std::string> stored;
  if (files.empty()) return stored;
  ASSIGN_OR_RETURN(auto who, api.Caller(req));
  for (const auto& [path, bytes] : files) {
    ASSIGN_OR_RETURN(auto upload, api.core()->BeginUpload(kind, bytes.size(), who.name, who.limits));
    RETURN_IF_ERROR(upload->Append(bytes));
    ASSIGN_OR_RETURN(auto ref, upload->Finish());
    stored[path] = ref.sha256;
  }
  return stored;
}

absl::StatusOr<FinishedJob> SubmitAndWait(HttpApi& api, const httplib::Request& req, Manifest manifest,
                                          const std::string& idempotency_key,
                                          std::function<void(const v1::JobEvent&)> on_event) {
  ASSIGN_OR_RETURN(auto slot, api.TakeSyncSlot());
  ASSIGN_OR_RETURN(auto who, api.Caller(req));
  ASSIGN_OR_RETURN(auto submitted, api.core()->SubmitManifest(std::move(manifest), idempotency_key, who.name, who.limits));
  const std::string job_id = submitted.job().id();

  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
  };
  auto done = std::make_shared<Done>();
  auto handle = api.core()->Watch(job_id, [done, on_event](const v1::JobEvent& event) {
    if (on_event) on_event(event);
    if (!event.has_job_done()) return;
    {
      std::lock_guard<std::mutex> lock(done->mu);
      done->finished = true;
    }
    done->cv.notify_all();
  });
  if (!handle.ok()) return handle.status();
  const auto deadline = std::chrono::steady_clock::now() + api.options().sync_timeout;
  bool finished = false;
  {
    std::unique_lock<std::mutex> lock(done->mu);
    while (!done->finished && !api.stopping() && std::chrono::steady_clock::now() < deadline) {
      done->cv.wait_for(lock, std::chrono::milliseconds(500));
    }
    finished = done->finished;
  }
  api.core()->Unwatch(*handle);
  if (!finished) {
    if (api.stopping()) return absl::UnavailableError(absl::StrCat("the coordinator is stopping; job ", job_id, " stays queued"));
    return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " did not finish within ",
                                                    api.options().sync_timeout.count(), " s; follow it at /v1/jobs/",
                                                    job_id));
  }

  v1::GetJobRequest get;
  get.set_job_id(job_id);
  get.set_include_items(true);
  ASSIGN_OR_RETURN(const v1::GetJobResponse job, api.core()->GetJob(get));
  if (job.job().state() == v1::JOB_CANCELLED) return absl::AbortedError(absl::StrCat("job ", job_id, " was cancelled"));
  FinishedJob out;
  out.job = job.job();
  out.items.assign(job.items().begin(), job.items().end());
  std::sort(out.items.begin(), out.items.end(), [](const v1::Item& a, const v1::Item& b) { return a.index() < b.index(); });
  for (const v1::Item& item : out.items) {
    if (item.state() != v1::ITEM_DONE) {
      return absl::InternalError(absl::StrCat("job ", job_id, ": image ", item.index(), " failed: ",
                                              item.failure_message().empty() ? v1::FailureReason_Name(item.failure())
                                                                             : item.failure_message()));
    }
    auto png = ReadFile(item.sprite_path().empty() ? item.image_path() : item.sprite_path());
    if (!png.ok()) return absl::InternalError(absl::StrCat("job ", job_id, ": cannot read image ", item.index()));
    out.pngs.push_back(std::move(*png));
  }
  return out;
}

}  // namespace spriteforge::coordinator::http
