#include "coordinator/core/result_pipeline.h"

#include <chrono>
#include <future>
#include <optional>

#include <nlohmann/json.hpp>

#include "coordinator/core/result_check.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

ResultPipeline::ResultPipeline(std::string output_dir, int checkers, size_t max_waiting_bytes, Commit commit,
                               Observe observe)
    : output_dir_(std::move(output_dir)),
      max_waiting_bytes_(max_waiting_bytes),
      commit_(std::move(commit)),
      observe_(observe ? std::move(observe) : [](const std::string&, double) {}) {
  if (checkers <= 0) return;
  item_pool_ = std::make_unique<ThreadPool>(checkers, ThreadPriority::kBackground);
  for (int i = 0; i < checkers; ++i) {
    checkers_.emplace_back([this] {
      SetThisThreadPriority(ThreadPriority::kBackground);  // a one-image result is checked right here
      CheckLoop();
    });
  }
  committer_ = std::thread([this] { CommitLoop(); });
}

ResultPipeline::~ResultPipeline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  room_cv_.notify_all();
  for (std::thread& t : checkers_) t.join();
  staged_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
}

static size_t BytesOf(const ResultWork& work) {
  size_t n = 0;
  for (const v1::ItemResult& r : work.result.items()) n += r.png().size() + r.sprite_png().size();
  return n;
}

void ResultPipeline::Submit(ResultWork work) {
  if (checkers_.empty()) {
    std::vector<StagedResult> group;
    group.push_back(Stage(work));
    SyncAndCommit(group);
    return;
  }
  const size_t bytes = BytesOf(work);
  std::unique_lock<std::mutex> lock(mu_);
  // Backpressure: a gRPC thread waits here rather than the coordinator holding unbounded
  // images in memory; one result alone always gets in.
  room_cv_.wait(lock, [&] { return stopping_ || waiting_bytes_ == 0 || waiting_bytes_ + bytes <= max_waiting_bytes_; });
  waiting_bytes_ += bytes;
  waiting_.push_back(std::move(work));
  work_cv_.notify_one();
}

struct ResultPipeline::ItemOutcome {
  enum class Kind { kNotInBatch, kInvalid, kUnstored, kStaged } kind = Kind::kNotInBatch;
  std::optional<StagedItem> staged;
  std::string error;
  std::pair<std::string, int> item;  // (job, index)
};

ResultPipeline::ItemOutcome ResultPipeline::StageItem(const ResultWork& work, const v1::ItemResult& r) const {
  using Kind = ItemOutcome::Kind;
  const v1::BatchResultMsg& result = work.result;
  const ItemRecord* item = nullptr;
  for (const ItemRecord& it : work.items) {
    if (it.job_id == r.job_id() && it.index == r.index()) item = &it;
  }
  if (!item || r.seed() != item->image.seed()) return {};
  if (auto s = CheckItemResult(r, item->sampling, work.postprocessed_jobs.count(item->job_id) > 0); !s.ok()) {
    std::string error(s.message());
    spdlog::warn("worker {}: job {} item {}: {}", work.worker_id, item->job_id, item->index, error);
    return {Kind::kInvalid, std::nullopt, error, {item->job_id, item->index}};
  }
  nlohmann::json sidecar = {{"worker", work.worker_id},
                            {"batch_id", work.batch_id},
                            {"batch_size", work.batch_size},
                            {"timings_ms",
                             {{"encode", result.encode_ms()},
                              {"denoise", result.denoise_ms()},
                              {"decode", result.decode_ms()},
                              {"total", result.total_ms()},
                              {"package", result.package_ms()}}},
                            {"render_unix_ms",
                             {{"start", result.render_start_unix_ms()}, {"end", result.render_end_unix_ms()}}},
                            {"peak_memory_bytes",
                             {{"allocated", result.memory().peak_allocated_bytes()},
                              {"reserved", result.memory().peak_reserved_bytes()}}}};
  if (!r.postprocess_error().empty()) sidecar["postprocess_error"] = r.postprocess_error();
  std::vector<std::string> notes(r.notes().begin(), r.notes().end());
  auto staged = StageItemFiles(output_dir_, work.model, *item, notes, r.png(), r.sprite_png(), sidecar);
  if (!staged.ok()) {
    std::string error(staged.status().message());
    spdlog::error("job {} item {}: {}", item->job_id, item->index, error);
    return {Kind::kUnstored, std::nullopt, error, {item->job_id, item->index}};
  }
  return {Kind::kStaged, StagedItem{*item, std::move(*staged)}, {}, {item->job_id, item->index}};
}

StagedResult ResultPipeline::Stage(ResultWork& work) {
  const auto start = std::chrono::steady_clock::now();
  const v1::BatchResultMsg& result = work.result;
  std::vector<ItemOutcome> outcomes(result.items_size());
  if (item_pool_ && result.items_size() > 1) {
    std::vector<std::future<void>> done;
    for (int i = 0; i < result.items_size(); ++i) {
      done.push_back(item_pool_->Submit([&, i] { outcomes[i] = StageItem(work, result.items(i)); }));
    }
    for (std::future<void>& f : done) f.get();
  } else {
    for (int i = 0; i < result.items_size(); ++i) outcomes[i] = StageItem(work, result.items(i));
  }
  // Merged in the result's order, as if staged one after another.
  StagedResult out{work.batch_id, work.worker_id, work.batch_size, result.total_ms(),
                   result.memory().peak_allocated_bytes(), {}, {}, {}};
  for (ItemOutcome& o : outcomes) {
    switch (o.kind) {
      case ItemOutcome::Kind::kNotInBatch: break;
      case ItemOutcome::Kind::kInvalid: out.invalid_error = o.error; break;
      case ItemOutcome::Kind::kUnstored:
        out.storage_error = o.error;
        out.storage_errors[o.item] = o.error;
        break;
      case ItemOutcome::Kind::kStaged: out.written.push_back(std::move(*o.staged)); break;
    }
  }
  observe_("check", SecondsSince(start));
  return out;
}

void ResultPipeline::SyncAndCommit(std::vector<StagedResult>& group) {
  auto start = std::chrono::steady_clock::now();
  Publish(group);
  observe_("sync", SecondsSince(start));
  start = std::chrono::steady_clock::now();
  commit_(group);
  observe_("record", SecondsSince(start));
}

// One sync makes the whole group's data durable; only then do names appear (inside the
// store's transaction), so a file under its final name is always complete.
void ResultPipeline::Publish(std::vector<StagedResult>& group) {
  bool any = false;
  for (const StagedResult& r : group) any = any || !r.written.empty();
  if (!any) return;
  absl::Status synced = SyncOutput(output_dir_);
  if (synced.ok()) return;
  for (StagedResult& r : group) {
    for (StagedItem& w : r.written) {
      DiscardStaged(w.staged);
      r.storage_error = std::string(synced.message());
      r.storage_errors[{w.item.job_id, w.item.index}] = r.storage_error;
      spdlog::error("job {} item {}: {}", w.item.job_id, w.item.index, r.storage_error);
    }
    r.written.clear();
  }
}

Store::PlaceResults PlaceResultFiles(std::vector<StagedResult>& group) {
  return [&group](const std::vector<bool>& accepted, std::chrono::steady_clock::time_point deadline) {
    std::vector<bool> placed;
    placed.reserve(accepted.size());
    size_t next = 0;
    for (StagedResult& r : group) {
      for (StagedItem& w : r.written) {
        const bool take = next < accepted.size() && accepted[next++];
        absl::Status s = absl::OkStatus();
        if (take && std::chrono::steady_clock::now() >= deadline) {
          s = absl::UnavailableError("the result transaction was idle too long to place its files");
        } else if (take) {
          s = PublishStaged(w.staged);
        }
        DiscardStaged(w.staged);  // what was not renamed
        placed.push_back(take && s.ok());
        if (s.ok()) continue;
        r.storage_error = std::string(s.message());
        r.storage_errors[{w.item.job_id, w.item.index}] = r.storage_error;
        spdlog::error("job {} item {}: {}", w.item.job_id, w.item.index, r.storage_error);
      }
    }
    return placed;
  };
}

void DiscardUnplaced(const std::vector<StagedResult>& group) {
  for (const StagedResult& r : group) {
    for (const StagedItem& w : r.written) DiscardStaged(w.staged);
  }
}

void ResultPipeline::CheckLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, and nothing left
    ResultWork work = std::move(waiting_.front());
    waiting_.pop_front();
    ++checking_;
    lock.unlock();
    const size_t bytes = BytesOf(work);
    StagedResult staged = Stage(work);
    lock.lock();
    --checking_;
    waiting_bytes_ -= bytes;
    room_cv_.notify_all();
    staged_.push_back(std::move(staged));
    staged_cv_.notify_one();
  }
}

void ResultPipeline::CommitLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    staged_cv_.wait(lock, [&] {
      return !staged_.empty() || (stopping_ && waiting_.empty() && checking_ == 0);
    });
    if (staged_.empty()) return;
    std::vector<StagedResult> group = std::move(staged_);
    staged_.clear();
    lock.unlock();
    SyncAndCommit(group);
    lock.lock();
  }
}

}  // namespace spriteforge::coordinator
