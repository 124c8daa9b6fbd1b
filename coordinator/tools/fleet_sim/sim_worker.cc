#include "coordinator/tools/fleet_sim/sim_worker.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/png.h"

namespace spriteforge::fleet {
namespace {

constexpr size_t kMaxWaitingToPackage = 2;  // as the real worker: rendering pauses beyond it

int64_t UnixMs(Clock::time_point t) {
  const auto offset = std::chrono::system_clock::now().time_since_epoch() - Clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch() + offset).count();
}

Clock::duration Real(double simulated_seconds, double scale) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(simulated_seconds / scale));
}

}  // namespace

void PngCache::Add(int width, int height) {
  if (pngs_.count({width, height})) return;
  RasterImage image;
  image.width = width;
  image.height = height;
  image.channels = 3;
  image.pixels.assign(static_cast<size_t>(width) * height * 3, 0);
  // A gradient row so the file is a real image, yet compresses to a few kilobytes.
  for (int x = 0; x < width; ++x) image.at(x, 0)[0] = static_cast<uint8_t>(x);
  auto png = EncodePng(image, {{"parameters", "spriteforge-fleet-sim"}});
  if (!png.ok()) throw std::runtime_error(std::string(png.status().message()));
  pngs_[{width, height}] = std::move(*png);
}

const std::string& PngCache::For(int width, int height) const {
  static const std::string none;
  auto it = pngs_.find({width, height});
  return it == pngs_.end() ? none : it->second;
}

// One stream. State changes happen under mu_; messages to send are collected and written
// after it is released, because gRPC may run reactions inline.
class SimWorker::Session : public grpc::ClientBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>,
                           public std::enable_shared_from_this<Session> {
 public:
  Session(SimWorker* worker, uint64_t seed) : worker_(worker), spec_(*worker->spec_), rng_(seed) {}

  void Start() {
    self_ = shared_from_this();
    worker_->stub_->async()->Connect(&context_, this);
    v1::WorkerMessage hello;
    v1::Register* reg = hello.mutable_register_();
    reg->set_worker_id(worker_->id_);
    reg->set_device_name("simulated H200");
    reg->set_compute_capability("9.0");
    *reg->mutable_memory() = Memory(0);
    reg->add_models(spec_.model);
    reg->set_max_batch(spec_.max_batch);
    reg->set_prefetch(spec_.prefetch);
    reg->set_version("spriteforge-fleet-sim");
    if (spec_.calibrate) {
      for (const auto& [w, h] : spec_.shapes) {
        for (int b : {1, spec_.max_batch}) {
          v1::Calibration* c = reg->add_calibrations();
          c->set_batch(b);
          c->set_width(w);
          c->set_height(h);
          c->set_peak_bytes(spec_.gpu.PeakBytes(b, w, h));
        }
      }
    }
    StartRead(&incoming_);
    Send({hello}, /*delay=*/false);
    // Held until no read or write can start any more (ReleasableLocked): otherwise a
    // cancel could finish the stream (OnDone) between a write being chosen and started.
    AddHold();
    StartCall();
  }

  // Counts the render or the wait still under way, then ends the stream.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Clock::time_point now = Clock::now();
      if (!ended_ && rendering_) worker_->stats_->OnGpuBusy(rendering_->start, now);
      if (!ended_ && gpu_free_since_) worker_->stats_->OnGpuIdle(*gpu_free_since_, now);
      ended_ = true;
    }
    context_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool release;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ended_ = true;
        read_ended_ = true;
        release = ReleasableLocked();
      }
      if (release) RemoveHold();
      return;
    }
    std::vector<v1::WorkerMessage> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Clock::time_point now = Clock::now();
      switch (incoming_.msg_case()) {
        case v1::CoordinatorMessage::kRegistered:
          worker_->stats_->OnRegistered();
          heartbeat_ms_ = std::max(100, incoming_.registered().heartbeat_interval_ms());
          for (int i = 0; i <= spec_.prefetch; ++i) ready_.push_back(now);
          gpu_free_since_ = now;
          ScheduleHeartbeat();
          break;
        case v1::CoordinatorMessage::kAssignment: {
          std::optional<Clock::time_point> since;
          if (!ready_.empty()) {
            since = ready_.front();
            ready_.pop_front();
          }
          worker_->stats_->OnAssignment(incoming_.assignment(), now, since);
          queued_.push_back(incoming_.assignment());
          TryRenderLocked(now, &out);
          break;
        }
        case v1::CoordinatorMessage::kCancel:
          CancelLocked(incoming_.cancel().batch_id(), now, &out);
          break;
        default:
          break;
      }
    }
    Send(std::move(out));
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    const v1::WorkerMessage* next = nullptr;
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      outbox_.pop_front();
      if (ok && !ended_ && !outbox_.empty()) {
        next = &outbox_.front();
      } else {
        writing_ = false;
        if (!ok) ended_ = true;
        release = ReleasableLocked();
      }
    }
    if (next) StartWrite(next);
    if (release) RemoveHold();
  }

  void OnDone(const grpc::Status&) override {
    bool crashed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
      crashed = crashed_;
    }
    worker_->OnSessionEnded(crashed);
    std::shared_ptr<Session> keep = std::move(self_);  // timers may still hold it
  }

 private:
  // True once: the read chain has ended and no write is in flight, so nothing more starts.
  bool ReleasableLocked() {
    if (hold_released_ || !read_ended_ || writing_) return false;
    hold_released_ = true;
    return true;
  }

  struct Rendering {
    v1::Assignment batch;
    Clock::time_point start;
    uint64_t token;
  };
  struct Rendered {
    v1::Assignment batch;
    Clock::time_point start, end;
  };

  v1::MemoryReport Memory(uint64_t peak) const {
    v1::MemoryReport m;
    m.set_total_bytes(spec_.gpu.total_bytes);
    m.set_weights_bytes(spec_.gpu.weights_bytes);
    m.set_free_bytes(spec_.gpu.total_bytes - spec_.gpu.weights_bytes);
    m.set_budget_bytes(spec_.gpu.BudgetBytes());
    m.set_peak_allocated_bytes(peak);
    m.set_peak_reserved_bytes(peak);
    return m;
  }

  // Messages leave in order; a slow link delays each by the same amount.
  void Send(std::vector<v1::WorkerMessage> messages, bool delay = true) {
    if (messages.empty()) return;
    const int delay_ms = spec_.failures.link_delay_ms;
    if (delay && delay_ms > 0) {
      worker_->loop_->After(std::chrono::milliseconds(delay_ms),
                            [self = shared_from_this(), messages = std::move(messages)]() mutable {
                              self->Send(std::move(messages), false);
                            });
      return;
    }
    const v1::WorkerMessage* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_ && started_) return;
      started_ = true;
      for (v1::WorkerMessage& m : messages) {
        bool merged = false;
        // As the real worker's outbox: a step report replaces an older one still waiting.
        if (m.has_progress()) {
          for (size_t i = writing_ ? 1 : 0; i < outbox_.size() && !merged; ++i) {
            if (outbox_[i].has_progress() && outbox_[i].progress().batch_id() == m.progress().batch_id()) {
              outbox_[i] = std::move(m);
              merged = true;
            }
          }
        }
        if (!merged) outbox_.push_back(std::move(m));
      }
      if (!writing_ && !outbox_.empty()) {
        writing_ = true;
        next = &outbox_.front();
      }
    }
    if (next) StartWrite(next);
  }

  template <typename F>
  void Later(Clock::time_point when, F f) {
    worker_->loop_->At(when, [self = shared_from_this(), f = std::move(f)]() mutable {
      std::vector<v1::WorkerMessage> out;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (self->ended_) return;
        f(self.get(), Clock::now(), &out);
      }
      self->Send(std::move(out));
      if (self->crashed_now_.exchange(false)) self->context_.TryCancel();  // outside mu_: may react inline
    });
  }

  void ScheduleHeartbeat() {
    Later(Clock::now() + std::chrono::milliseconds(heartbeat_ms_),
          [](Session* s, Clock::time_point, std::vector<v1::WorkerMessage>* out) {
            v1::WorkerMessage beat;
            v1::Heartbeat* h = beat.mutable_heartbeat();
            *h->mutable_memory() = s->Memory(0);
            if (s->rendering_) h->add_running_batches(s->rendering_->batch.batch_id());
            for (const v1::Assignment& a : s->queued_) h->add_running_batches(a.batch_id());
            for (const Rendered& r : s->to_package_) h->add_running_batches(r.batch.batch_id());
            out->push_back(std::move(beat));
            s->ScheduleHeartbeat();
          });
  }

  void TryRenderLocked(Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    if (ended_ || rendering_ || queued_.empty() || to_package_.size() >= kMaxWaitingToPackage) return;
    if (gpu_free_since_) {
      worker_->stats_->OnGpuIdle(*gpu_free_since_, now);
      gpu_free_since_.reset();
    }
    rendering_ = Rendering{std::move(queued_.front()), now, ++render_token_};
    queued_.pop_front();
    const v1::Assignment& a = rendering_->batch;
    const v1::SamplingParams& p = a.sampling();
    const int batch = a.items_size();
    const Clock::duration length =
        Real(spec_.render_width > 0 ? spec_.gpu.RenderSeconds(batch, spec_.render_width, spec_.render_height)
                                    : spec_.gpu.RenderSeconds(batch, p.width(), p.height()),
             spec_.time_scale);
    const uint64_t token = rendering_->token;
    const double fate = std::uniform_real_distribution<double>(0, 1)(rng_);
    const bool too_big = spec_.gpu.PeakBytes(batch, p.width(), p.height()) > spec_.gpu.BudgetBytes();
    if (too_big || fate < spec_.failures.oom_rate) {
      Later(now + length / 10, [token](Session* s, Clock::time_point t, std::vector<v1::WorkerMessage>* o) {
        if (s->rendering_ && s->rendering_->token == token) s->OutOfMemoryLocked(t, o);
      });
      return;
    }
    if (fate < spec_.failures.oom_rate + spec_.failures.crash_rate) {
      Later(now + length / 2, [token](Session* s, Clock::time_point t, std::vector<v1::WorkerMessage>*) {
        if (s->rendering_ && s->rendering_->token == token) s->CrashLocked(t);
      });
      return;
    }
    const int steps = std::max(1, p.steps());
    for (int step = spec_.progress_every; step < steps; step += spec_.progress_every) {
      Later(now + length * step / steps, [token, step, steps](Session* s, Clock::time_point, std::vector<v1::WorkerMessage>* o) {
        if (!s->rendering_ || s->rendering_->token != token) return;
        v1::WorkerMessage m;
        m.mutable_progress()->set_batch_id(s->rendering_->batch.batch_id());
        m.mutable_progress()->set_step(step);
        m.mutable_progress()->set_total_steps(steps);
        o->push_back(std::move(m));
      });
    }
    Later(now + length, [token](Session* s, Clock::time_point t, std::vector<v1::WorkerMessage>* o) {
      if (s->rendering_ && s->rendering_->token == token) s->RenderedLocked(t, o);
    });
  }

  // The GPU is done with a batch: room for another, and the result once encoded.
  void RenderedLocked(Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    worker_->stats_->OnGpuBusy(rendering_->start, now);
    v1::WorkerMessage done;
    done.mutable_rendered()->set_batch_id(rendering_->batch.batch_id());
    out->push_back(std::move(done));
    to_package_.push_back({std::move(rendering_->batch), rendering_->start, now});
    rendering_.reset();
    ready_.push_back(now);
    TryPackageLocked(now);
    GpuFreeLocked(now, out);
  }

  void GpuFreeLocked(Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    TryRenderLocked(now, out);
    if (!rendering_ && !gpu_free_since_) gpu_free_since_ = now;
  }

  void TryPackageLocked(Clock::time_point now) {
    if (packaging_ || to_package_.empty()) return;
    packaging_ = true;
    Later(now + Real(spec_.gpu.package_seconds, spec_.time_scale),
          [](Session* s, Clock::time_point t, std::vector<v1::WorkerMessage>* o) { s->PackagedLocked(t, o); });
  }

  void PackagedLocked(Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    Rendered r = std::move(to_package_.front());
    to_package_.pop_front();
    packaging_ = false;
    const v1::SamplingParams& p0 = r.batch.sampling();
    v1::WorkerMessage m;
    v1::BatchResultMsg* result = m.mutable_result();
    result->set_batch_id(r.batch.batch_id());
    for (const v1::AssignedItem& item : r.batch.items()) {
      v1::ItemResult* ir = result->add_items();
      ir->set_index(item.index());
      ir->set_job_id(item.job_id());
      ir->set_seed(item.params().seed());
      ir->set_png(worker_->pngs_->For(p0.width(), p0.height()));
    }
    const double render_ms = std::chrono::duration<double, std::milli>(r.end - r.start).count();
    result->set_denoise_ms(render_ms);
    result->set_total_ms(render_ms);
    result->set_render_start_unix_ms(UnixMs(r.start));
    result->set_render_end_unix_ms(UnixMs(r.end));
    result->set_package_ms(std::chrono::duration<double, std::milli>(now - r.end).count());
    *result->mutable_memory() = Memory(spec_.gpu.PeakBytes(r.batch.items_size(), p0.width(), p0.height()));
    worker_->stats_->OnResultSent(r.batch.items_size());
    out->push_back(std::move(m));
    TryPackageLocked(now);
    GpuFreeLocked(now, out);  // rendering may have waited for the packager
  }

  void OutOfMemoryLocked(Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    worker_->stats_->OnOutOfMemory();
    worker_->stats_->OnGpuBusy(rendering_->start, now);
    v1::WorkerMessage m;
    v1::BatchFailure* f = m.mutable_failure();
    f->set_batch_id(rendering_->batch.batch_id());
    f->set_reason(v1::FAILURE_OUT_OF_MEMORY);
    f->set_message("CUDA out of memory (simulated)");
    const v1::SamplingParams& p = rendering_->batch.sampling();
    *f->mutable_memory() = Memory(spec_.gpu.PeakBytes(rendering_->batch.items_size(), p.width(), p.height()));
    out->push_back(std::move(m));
    rendering_.reset();
    ready_.push_back(now);
    GpuFreeLocked(now, out);
  }

  void CrashLocked(Clock::time_point now) {
    worker_->stats_->OnCrash();
    worker_->stats_->OnGpuBusy(rendering_->start, now);
    rendering_.reset();
    crashed_ = true;
    ended_ = true;
    crashed_now_ = true;
  }

  void CancelLocked(const std::string& batch_id, Clock::time_point now, std::vector<v1::WorkerMessage>* out) {
    worker_->stats_->OnCancel();
    auto failure = [&](const char* message) {
      v1::WorkerMessage m;
      m.mutable_failure()->set_batch_id(batch_id);
      m.mutable_failure()->set_reason(v1::FAILURE_CANCELLED);
      m.mutable_failure()->set_message(message);
      out->push_back(std::move(m));
      ready_.push_back(now);
    };
    if (rendering_ && rendering_->batch.batch_id() == batch_id) {
      worker_->stats_->OnGpuBusy(rendering_->start, now);
      rendering_.reset();
      failure("cancelled");
      GpuFreeLocked(now, out);
    }
    for (auto it = queued_.begin(); it != queued_.end();) {
      if (it->batch_id() != batch_id) {
        ++it;
        continue;
      }
      it = queued_.erase(it);
      failure("cancelled before it started");
    }
  }

  SimWorker* worker_;
  const WorkerSpec& spec_;
  std::shared_ptr<Session> self_;  // alive until OnDone
  grpc::ClientContext context_;
  v1::CoordinatorMessage incoming_;

  std::mutex mu_;
  std::mt19937_64 rng_;
  std::deque<v1::WorkerMessage> outbox_;
  bool writing_ = false;
  bool started_ = false;
  bool ended_ = false;
  bool read_ended_ = false;     // OnReadDone(false): no read starts again
  bool hold_released_ = false;
  bool crashed_ = false;
  std::atomic<bool> crashed_now_{false};
  int heartbeat_ms_ = 1000;
  std::deque<v1::Assignment> queued_;
  std::optional<Rendering> rendering_;
  uint64_t render_token_ = 0;
  std::deque<Rendered> to_package_;
  bool packaging_ = false;
  std::optional<Clock::time_point> gpu_free_since_;
  std::deque<Clock::time_point> ready_;  // when each free slot opened, oldest first
};

SimWorker::SimWorker(std::string id, std::shared_ptr<grpc::Channel> channel, const WorkerSpec* spec,
                     EventLoop* loop, FleetStats* stats, const PngCache* pngs, uint64_t seed)
    : id_(std::move(id)),
      channel_(std::move(channel)),
      stub_(v1::WorkerGateway::NewStub(channel_)),
      spec_(spec),
      loop_(loop),
      stats_(stats),
      pngs_(pngs),
      seed_(seed) {}

SimWorker::~SimWorker() { Stop(); }

void SimWorker::Start() {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    session = std::make_shared<Session>(this, seed_ + 7919 * static_cast<uint64_t>(++sessions_));
    session_ = session;
    ++live_;
  }
  session->Start();
}

void SimWorker::Stop() {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    session = session_;
  }
  if (session) session->Stop();
}

void SimWorker::WaitStopped() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return live_ == 0; });
}

void SimWorker::OnSessionEnded(bool crashed) {
  std::lock_guard<std::mutex> lock(mu_);
  session_.reset();
  --live_;
  cv_.notify_all();
  if (stopping_) return;
  // A crashed process restarts and loads its model; a dropped stream reconnects at once.
  const double seconds = crashed ? spec_->failures.reconnect_seconds / spec_->time_scale : 1.0;
  loop_->After(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)),
               [this] { Start(); });
}

}  // namespace spriteforge::fleet
