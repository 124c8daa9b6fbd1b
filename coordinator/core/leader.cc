#include "coordinator/core/leader.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {

LeaderMove DecideLeaderMove(const LeaderLease& lease, const std::string& me) {
  if (lease.holder == me) return LeaderMove::kRenew;
  if (lease.holder.empty() || lease.now_ms > lease.expires_ms) return LeaderMove::kTakeOver;
  return LeaderMove::kFollow;
}

LeaderLeaseKeeper::LeaderLeaseKeeper(std::unique_ptr<Store> store, LeaderOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

absl::Status LeaderLeaseKeeper::WaitToLead(const std::atomic<bool>& stop,
                                           const std::function<void(const LeaderLease&)>& following) {
  while (!stop) {
    auto lease = store_->ReadLeader();
    if (!lease.ok()) {
      spdlog::warn("standby: cannot read the leader lease: {}", std::string(lease.status().message()));
    } else if (DecideLeaderMove(*lease, options_.id) == LeaderMove::kFollow) {
      following(*lease);
    } else {
      auto won = store_->ClaimLeader(*lease, options_.id, options_.address, options_.lease_ms);
      if (won.ok() && *won) {
        renewed_at_ = std::chrono::steady_clock::now();
        // The claim matched the epoch seen, and moves it on when the holder changes.
        epoch_ = lease->holder == options_.id ? lease->epoch : lease->epoch + 1;
        if (!lease->holder.empty() && lease->holder != options_.id) {
          spdlog::warn("taking over from {} ({}), whose lease lapsed {} ms ago", lease->holder, lease->address,
                       lease->now_ms - lease->expires_ms);
        }
        return absl::OkStatus();
      }
      if (!won.ok()) spdlog::warn("standby: cannot claim the leader lease: {}", std::string(won.status().message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.renew_ms));
  }
  return absl::CancelledError("stopped while standing by");
}

absl::Status LeaderLeaseKeeper::Renew() {
  const auto now = std::chrono::steady_clock::now();
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - renewed_at_).count();
  auto lease = store_->ReadLeader();
  absl::Status error;
  if (lease.ok()) {
    if (DecideLeaderMove(*lease, options_.id) != LeaderMove::kRenew) {
      return absl::AbortedError(absl::StrCat("lost the leader lease to ", lease->holder, " (", lease->address, ")"));
    }
    auto won = store_->ClaimLeader(*lease, options_.id, options_.address, options_.lease_ms);
    if (won.ok() && *won) {
      renewed_at_ = now;
      return absl::OkStatus();
    }
    error = won.ok() ? absl::AbortedError("the leader lease changed while renewing") : won.status();
  } else {
    error = lease.status();
  }
  // Measured from the last success on this machine's monotonic clock, and less a renewal
  // interval: the lease is considered gone before the database would let another take it.
  if (since + options_.renew_ms >= options_.lease_ms) {
    return absl::AbortedError(absl::StrCat("could not renew the leader lease for ", since, " ms: ", error.message()));
  }
  spdlog::warn("cannot renew the leader lease ({} ms since the last renewal): {}", since,
               std::string(error.message()));
  return absl::OkStatus();
}

void LeaderLeaseKeeper::Release() {
  auto lease = store_->ReadLeader();
  if (!lease.ok() || DecideLeaderMove(*lease, options_.id) != LeaderMove::kRenew) return;
  // Expired a millisecond ago on the database's clock.
  if (auto released = store_->ClaimLeader(*lease, options_.id, options_.address, -1); released.ok() && *released) {
    spdlog::info("leader lease released");
  }
}

}  // namespace spriteforge::coordinator
