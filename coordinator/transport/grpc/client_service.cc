#include "coordinator/transport/grpc/client_service.h"

#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>

#include "common/files.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

template <typename Response>
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, absl::StatusOr<Response> result,
                                Response* response) {
  auto* reactor = ctx->DefaultReactor();
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpc(result.status()));
  return reactor;
}

// A stream refused before it starts (not authenticated, not allowed).
template <typename Message>
class Refused : public grpc::ServerWriteReactor<Message> {
 public:
  explicit Refused(const absl::Status& status) { this->Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

// An upload refused before its first chunk is read.
class RefusedUpload : public grpc::ServerReadReactor<v1::FileChunk> {
 public:
  void OnDone() override { delete this; }
};

// Streams a job's events until it finishes or the client goes away. Events arrive from
// the core's outbox thread through a Relay that outlives this reactor, so a late event
// never touches a deleted reactor.
class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  static constexpr size_t kMaxQueuedForPreview = 64;

  struct Relay {
    std::recursive_mutex mu;  // gRPC may run OnDone inline inside Push's StartWrite
    WatchReactor* reactor = nullptr;
  };

  WatchReactor(Coordinator* core, const std::string& job_id) : core_(core), relay_(std::make_shared<Relay>()) {
    relay_->reactor = this;
    auto handle = core_->Watch(job_id, [relay = relay_](const v1::JobEvent& event) {
      std::lock_guard<std::recursive_mutex> lock(relay->mu);
      if (relay->reactor) relay->reactor->Push(event);
    });
    if (!handle.ok()) {
      relay_->reactor = nullptr;
      Finish(ToGrpc(handle.status()));
      return;
    }
    handle_ = *handle;
  }

  void OnWriteDone(bool ok) override {
    const v1::JobEvent* next = nullptr;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const bool last = queue_.front().has_job_done();
      queue_.pop_front();
      if (!ok || last) {
        finish = !finished_;
        finished_ = true;
      } else if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
      }
    }
    if (finish) Finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, "client gone"));
    else if (next) StartWrite(next);
  }

  // The client went away while nothing was being written: end the call now.
  void OnCancel() override {
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!finished_ && !writing_) finish = finished_ = true;
    }
    if (finish) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(relay_->mu);
      relay_->reactor = nullptr;
    }
    if (handle_) core_->Unwatch(handle_);
    delete this;
  }

 private:
  void Push(const v1::JobEvent& event) {
    const v1::JobEvent* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      // A slow client loses previews (superseded a few steps later), never other events.
      if (event.has_preview() && queue_.size() >= kMaxQueuedForPreview) return;
      queue_.push_back(event);
      if (!writing_) {
        writing_ = true;
        next = &queue_.front();
      }
    }
    if (next) StartWrite(next);  // nothing of `this` is touched after this call
  }

  Coordinator* core_;
  std::shared_ptr<Relay> relay_;
  int64_t handle_ = 0;
  std::mutex mu_;
  std::deque<v1::JobEvent> queue_;  // front: the event being written
  bool writing_ = false;
  bool finished_ = false;
};

// Sends the job's result files one after another.
class FetchReactor : public grpc::ServerWriteReactor<v1::ResultFile> {
 public:
  FetchReactor(Coordinator* core, const v1::FetchResultsRequest& request) {
    auto files = core->ResultFiles(request.job_id(), request.include_renders());
    if (!files.ok()) {
      Finish(ToGrpc(files.status()));
      return;
    }
    files_ = std::move(*files);
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client gone"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    while (next_ < files_.size()) {
      const std::string& path = files_[next_++];
      auto data = ReadFile(path);
      if (!data.ok()) {
        Finish(ToGrpc(data.status()));
        return;
      }
      current_.set_name(std::filesystem::path(path).filename().string());
      current_.set_data(std::move(*data));
      StartWrite(&current_);
      return;
    }
    Finish(grpc::Status::OK);
  }
  std::vector<std::string> files_;
  size_t next_ = 0;
  v1::ResultFile current_;
};

// Receives one file in chunks into the blob store. The first chunk says what the file is
// and how large, so an upload over a limit or quota is refused before its bytes are
// written. An upload that stalls is expired by the store, which cancels the call here.
class UploadReactor : public grpc::ServerReadReactor<v1::FileChunk> {
 public:
  // The context, while the call lasts, for the store's expiry (from another thread).
  struct Call {
    std::recursive_mutex mu;  // gRPC may run OnDone inline inside TryCancel
    grpc::CallbackServerContext* ctx = nullptr;
  };

  UploadReactor(Coordinator* core, grpc::CallbackServerContext* ctx, std::string owner, ClientLimits limits,
                v1::FileRef* response)
      : core_(core), owner_(std::move(owner)), limits_(limits), response_(response), call_(std::make_shared<Call>()) {
    call_->ctx = ctx;
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client has sent everything
      if (!upload_) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "an upload needs at least one chunk"));
      auto ref = upload_->Finish();
      upload_.reset();
      if (!ref.ok()) return Finish(ToGrpc(ref.status()));
      spdlog::info("stored upload {} ({} bytes)", ref->sha256, ref->size);
      response_->set_sha256(ref->sha256);
      response_->set_size(ref->size);
      return Finish(grpc::Status::OK);
    }
    if (!upload_) {
      ManifestFileKind kind;
      switch (chunk_.kind()) {
        case v1::FILE_LORA: kind = ManifestFileKind::kLora; break;
        case v1::FILE_IMAGE: kind = ManifestFileKind::kImage; break;
        case v1::FILE_WEIGHTS: kind = ManifestFileKind::kWeights; break;
        case v1::FILE_CONFIG: kind = ManifestFileKind::kConfig; break;
        default:
          return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first chunk must say the file's kind"));
      }
      auto upload = core_->BeginUpload(kind, chunk_.size(), owner_, limits_);
      if (!upload.ok()) return Finish(ToGrpc(upload.status()));
      upload_ = std::move(*upload);
      upload_->OnExpired([call = call_] {
        std::lock_guard<std::recursive_mutex> lock(call->mu);
        if (call->ctx) call->ctx->TryCancel();
      });
    }
    if (auto s = upload_->Append(chunk_.data()); !s.ok()) {
      upload_.reset();
      return Finish(ToGrpc(s));
    }
    StartRead(&chunk_);
  }
  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(call_->mu);
      call_->ctx = nullptr;
    }
    delete this;
  }

 private:
  Coordinator* core_;
  const std::string owner_;
  const ClientLimits limits_;
  v1::FileRef* response_;
  std::shared_ptr<Call> call_;
  v1::FileChunk chunk_;
  std::unique_ptr<BlobStore::Upload> upload_;
};

// Whose quota an upload counts against: the token's name, or without tokens the client's
// host ("ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5"), as for the submission rate.
std::string UploaderOf(const Principal& who, const grpc::CallbackServerContext& ctx) {
  if (!who.anonymous) return who.name;
  const std::string peer = ctx.peer();
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::StatusOr<Principal> ClientService::Check(grpc::CallbackServerContext* ctx, Action action,
                                              const std::string& job_id) {
  ASSIGN_OR_RETURN(Principal who, gate_->Caller(*ctx));
  std::string owner;
  if (!who.anonymous && !job_id.empty()) {
    ASSIGN_OR_RETURN(auto job_owner, core_->JobOwner(job_id));
    owner = job_owner;
  }
  RETURN_IF_ERROR(job_id.empty() ? Authorize(who, action) : AuthorizeJob(who, action, owner, job_id));
  return who;
}

grpc::ServerUnaryReactor* ClientService::SubmitJob(grpc::CallbackServerContext* ctx,
                                                   const v1::SubmitJobRequest* request,
                                                   v1::SubmitJobResponse* response) {
  auto who = Check(ctx, Action::kSubmit);
  if (who.ok()) {
    if (auto s = gate_->AllowSubmit(*who, *ctx); !s.ok()) who = s;
  }
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::SubmitJobResponse>(who.status()), response);
  return Reply(ctx, core_->Submit(*request, who->name, who->limits), response);
}
grpc::ServerUnaryReactor* ClientService::GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* request,
                                                v1::GetJobResponse* response) {
  auto who = Check(ctx, Action::kReadJob, request->job_id());
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::GetJobResponse>(who.status()), response);
  return Reply(ctx, core_->GetJob(*request), response);
}
grpc::ServerUnaryReactor* ClientService::ListJobs(grpc::CallbackServerContext* ctx,
                                                  const v1::ListJobsRequest* request,
                                                  v1::ListJobsResponse* response) {
  auto who = Check(ctx, Action::kReadFleet);
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::ListJobsResponse>(who.status()), response);
  return Reply(ctx, core_->ListJobs(*request, SeesAllJobs(*who) ? std::nullopt : std::optional(who->name)),
               response);
}
grpc::ServerUnaryReactor* ClientService::CancelJob(grpc::CallbackServerContext* ctx,
                                                   const v1::CancelJobRequest* request,
                                                   v1::CancelJobResponse* response) {
  auto who = Check(ctx, Action::kCancelJob, request->job_id());
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::CancelJobResponse>(who.status()), response);
  return Reply(ctx, core_->Cancel(*request), response);
}
grpc::ServerUnaryReactor* ClientService::ListWorkers(grpc::CallbackServerContext* ctx,
                                                     const v1::ListWorkersRequest*,
                                                     v1::ListWorkersResponse* response) {
  auto who = Check(ctx, Action::kReadFleet);
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::ListWorkersResponse>(who.status()), response);
  return Reply(ctx, absl::StatusOr<v1::ListWorkersResponse>(core_->ListWorkers()), response);
}
grpc::ServerUnaryReactor* ClientService::GetStats(grpc::CallbackServerContext* ctx, const v1::GetStatsRequest*,
                                                  v1::GetStatsResponse* response) {
  auto who = Check(ctx, Action::kReadFleet);
  if (!who.ok()) return Reply(ctx, absl::StatusOr<v1::GetStatsResponse>(who.status()), response);
  return Reply(ctx, absl::StatusOr<v1::GetStatsResponse>(core_->Stats()), response);
}
grpc::ServerWriteReactor<v1::JobEvent>* ClientService::WatchJob(grpc::CallbackServerContext* ctx,
                                                                const v1::WatchJobRequest* request) {
  if (auto who = Check(ctx, Action::kReadJob, request->job_id()); !who.ok()) {
    return new Refused<v1::JobEvent>(who.status());
  }
  return new WatchReactor(core_, request->job_id());
}
grpc::ServerWriteReactor<v1::ResultFile>* ClientService::FetchResults(grpc::CallbackServerContext* ctx,
                                                                      const v1::FetchResultsRequest* request) {
  if (auto who = Check(ctx, Action::kReadJob, request->job_id()); !who.ok()) {
    return new Refused<v1::ResultFile>(who.status());
  }
  return new FetchReactor(core_, *request);
}
grpc::ServerReadReactor<v1::FileChunk>* ClientService::UploadFile(grpc::CallbackServerContext* ctx, v1::FileRef* response) {
  // Uploads are for jobs: only those who may submit may fill the coordinator's disk.
  auto who = Check(ctx, Action::kSubmit);
  if (!who.ok()) {
    auto* reactor = new RefusedUpload();
    reactor->Finish(ToGrpc(who.status()));
    return reactor;
  }
  return new UploadReactor(core_, ctx, UploaderOf(*who, *ctx), who->limits, response);
}

}  // namespace spriteforge::coordinator
