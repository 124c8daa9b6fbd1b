// The client API over gRPC's callback interface: each call becomes one Coordinator call.
#pragma once

#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::coordinator {

class ClientService final : public v1::SpriteForge::CallbackService {
 public:
  // `gate` decides who may do what; null: every call is allowed (no --auth).
  explicit ClientService(Coordinator* core, Gatekeeper* gate = nullptr) : core_(core), gate_(gate ? gate : &open_) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx, const v1::SubmitJobRequest* request,
                                      v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* request,
                                   v1::GetJobResponse* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx, const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx, const v1::CancelJobRequest* request,
                                      v1::CancelJobResponse* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx, const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx, const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::ResultFile>* FetchResults(grpc::CallbackServerContext* ctx,
                                                         const v1::FetchResultsRequest* request) override;
  grpc::ServerReadReactor<v1::FileChunk>* UploadFile(grpc::CallbackServerContext* ctx, v1::FileRef* response) override;

 private:
  // The caller, if it may do `action` (to `job_id`, for job actions).
  absl::StatusOr<Principal> Check(grpc::CallbackServerContext* ctx, Action action, const std::string& job_id = "");

  Coordinator* core_;
  Gatekeeper open_;
  Gatekeeper* gate_;
};

// absl::Status to grpc::Status, keeping the code and the one-line message.
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace spriteforge::coordinator
