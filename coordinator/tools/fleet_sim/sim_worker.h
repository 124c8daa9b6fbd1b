// One simulated worker: the WorkerGateway protocol of worker/worker_session.cc over
// a real gRPC stream, with the engine replaced by a clock. It registers with a prefetch,
// holds the batches the coordinator sends, "renders" one at a time for the time the GPU
// model gives, reports steps, says "rendered" as soon as the GPU part is done, then sends
// the result after the encoding time (PNGs of the item's size, valid, tiny). Heartbeats
// report memory and the batches held. Failures come from the failure model: out of memory
// early in a batch, or a crash halfway through (the stream dies; the worker comes back
// after a while, as a restarted process would).
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "coordinator/tools/fleet_sim/event_loop.h"
#include "coordinator/tools/fleet_sim/fleet_stats.h"
#include "coordinator/tools/fleet_sim/gpu_model.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::fleet {

// One valid PNG per image size, encoded once and shared by every worker.
class PngCache {
 public:
  void Add(int width, int height);  // before the workers start
  const std::string& For(int width, int height) const;

 private:
  std::map<std::pair<int, int>, std::string> pngs_;
};

struct WorkerSpec {
  std::string model = "sim-sdxl";
  int max_batch = 8;
  int prefetch = 1;
  double time_scale = 1;    // simulated seconds per real second
  int progress_every = 1;   // a step report every this many steps
  bool calibrate = true;    // register with measured peaks (else the coordinator guesses)
  std::vector<std::pair<int, int>> shapes;  // image sizes calibrated at registration
  // Nonzero: GPU time as for images of this size, whatever the items' size (results stay
  // of the item's size, so small items keep the coordinator's PNG checks cheap).
  int render_width = 0, render_height = 0;
  GpuModel gpu;
  FailureModel failures;
};

class SimWorker {
 public:
  SimWorker(std::string id, std::shared_ptr<grpc::Channel> channel, const WorkerSpec* spec, EventLoop* loop,
            FleetStats* stats, const PngCache* pngs, uint64_t seed);
  ~SimWorker();

  void Start();
  void Stop();  // ends the stream; no reconnect
  void WaitStopped();  // until the stream's last reaction ran

  class Session;

 private:
  friend class Session;
  void OnSessionEnded(bool crashed);

  const std::string id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  const WorkerSpec* spec_;
  EventLoop* loop_;
  FleetStats* stats_;
  const PngCache* pngs_;
  uint64_t seed_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Session> session_;
  bool stopping_ = false;
  int sessions_ = 0;
  int live_ = 0;
};

}  // namespace spriteforge::fleet
