// The worker gateway: one bidirectional stream per worker. The first message must be a
// Register; after that every message goes to the core, and the core's messages come back
// through a WorkerChannel that stays valid (and silent) after the stream ends.
#pragma once

#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::coordinator {

class WorkerGatewayService final : public v1::WorkerGateway::CallbackService {
 public:
  // `gate` decides who may connect as a worker; null: anyone (no --auth, no client CA).
  explicit WorkerGatewayService(Coordinator* core, const Gatekeeper* gate = nullptr) : core_(core), gate_(gate) {}
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerWriteReactor<v1::FileChunk>* FetchBlob(grpc::CallbackServerContext* ctx,
                                                     const v1::BlobRequest* request) override;

 private:
  Coordinator* core_;
  const Gatekeeper* gate_;
};

}  // namespace spriteforge::coordinator
