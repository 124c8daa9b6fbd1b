#include "coordinator/transport/grpc/worker_gateway.h"

#include <deque>
#include <fstream>
#include <mutex>

#include "coordinator/transport/grpc/client_service.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

class GatewayReactor;

// What the core holds: forwards to the reactor while the stream lives.
class Channel : public WorkerChannel {
 public:
  void Send(const v1::CoordinatorMessage& message) override;
  void Close(const std::string& reason) override;

  std::recursive_mutex mu;  // gRPC may run OnDone inline inside our StartWrite/Finish
  GatewayReactor* reactor = nullptr;
};

class GatewayReactor : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  GatewayReactor(Coordinator* core, std::string peer, std::string credential)
      : core_(core), peer_(std::move(peer)), credential_(std::move(credential)), channel_(std::make_shared<Channel>()) {
    channel_->reactor = this;
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker closed the stream or the connection broke
      EndStream(grpc::Status::OK);
      return;
    }
    if (!registered_) {
      if (incoming_.msg_case() != v1::WorkerMessage::kRegister) {
        EndStream(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Register"));
        return;
      }
      if (auto s = core_->Register(channel_, incoming_.register_(), credential_); !s.ok()) {
        spdlog::warn("worker at {} refused: {}", peer_, std::string(s.message()));
        EndStream(ToGrpc(s));
        return;
      }
      registered_ = true;
    } else {
      core_->OnMessage(channel_.get(), incoming_);
    }
    StartRead(&incoming_);
  }

  void Enqueue(const v1::CoordinatorMessage& message) {
    const v1::CoordinatorMessage* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      queue_.push_back(message);
      if (!writing_) {
        writing_ = true;
        next = &queue_.front();
      }
    }
    if (next) StartWrite(next);
  }

  void OnWriteDone(bool ok) override {
    const v1::CoordinatorMessage* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.pop_front();
      if (ok && !queue_.empty() && !finished_) {
        next = &queue_.front();
      } else {
        writing_ = false;
      }
    }
    if (next) StartWrite(next);
  }

  void EndStream(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(channel_->mu);
      channel_->reactor = nullptr;
    }
    if (registered_) core_->OnDisconnect(channel_.get());
    delete this;
  }

 private:
  Coordinator* core_;
  std::string peer_;
  std::string credential_;  // what admitted the stream: quarantine holds it too
  std::shared_ptr<Channel> channel_;
  v1::WorkerMessage incoming_;
  bool registered_ = false;
  std::mutex mu_;
  std::deque<v1::CoordinatorMessage> queue_;
  bool writing_ = false;
  bool finished_ = false;
};

// A worker stream refused before its Register is read.
class RefusedStream : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

void Channel::Send(const v1::CoordinatorMessage& message) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (reactor) reactor->Enqueue(message);
}

void Channel::Close(const std::string& reason) {
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (reactor) reactor->EndStream(grpc::Status(grpc::StatusCode::ABORTED, reason));
}

// Sends an uploaded file in chunks of 1 MiB, one in flight at a time.
// A blob fetch refused before it starts.
class RefusedBlob : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  void OnDone() override { delete this; }
};

class BlobReactor : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  BlobReactor(Coordinator* core, const std::string& sha256) : core_(core), sha256_(sha256) {
    auto path = core->blobs()->Path(sha256);
    if (!path.ok()) {
      Finish(ToGrpc(path.status()));
      return;
    }
    in_.open(*path, std::ios::binary);
    if (!in_) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot read uploaded file " + sha256));
      return;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker gone"));
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    std::string* data = chunk_.mutable_data();
    data->resize(kChunkBytes);
    in_.read(data->data(), static_cast<std::streamsize>(kChunkBytes));
    data->resize(static_cast<size_t>(in_.gcount()));
    if (in_.bad()) return Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot read uploaded file " + sha256_));
    if (data->empty()) {  // blobs are never empty: a LoRA or a PNG
      core_->CountBlobFetch(sha256_, sent_);
      return Finish(grpc::Status::OK);
    }
    sent_ += data->size();
    StartWrite(&chunk_);
  }
  Coordinator* core_;
  std::string sha256_;
  std::ifstream in_;
  v1::FileChunk chunk_;
  uint64_t sent_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::FileChunk>* WorkerGatewayService::FetchBlob(grpc::CallbackServerContext* ctx,
                                                                         const v1::BlobRequest* request) {
  // Uploaded LoRAs and images go to workers only, as the prompts do.
  if (gate_) {
    if (auto admitted = gate_->AdmitWorker(*ctx); !admitted.ok()) {
      auto* refused = new RefusedBlob();
      refused->Finish(ToGrpc(admitted.status()));
      return refused;
    }
  }
  return new BlobReactor(core_, request->sha256());
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerGatewayService::Connect(
    grpc::CallbackServerContext* ctx) {
  std::string credential = "host " + PeerHost(ctx->peer());  // without a gate: the host is all we know
  if (gate_) {
    auto admitted = gate_->AdmitWorker(*ctx);
    if (!admitted.ok()) {
      spdlog::warn("worker stream from {} refused: {}", ctx->peer(), std::string(admitted.status().message()));
      return new RefusedStream(admitted.status());
    }
    credential = *admitted;
  }
  return new GatewayReactor(core_, ctx->peer(), std::move(credential));
}

}  // namespace spriteforge::coordinator
