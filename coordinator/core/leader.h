// Active/standby coordinators on one shared database (PostgreSQL): the leader lease row in
// the store says who leads until when, on the database's clock. The leader renews it every
// `renew_ms`; a standby polls it and, once it has lapsed, claims it (compare and set, so of
// two standbys one wins), then runs the same recovery a restart runs and serves. A leader
// that cannot renew before its lease would lapse, or finds another holder, must stop at once
// (the coordinator exits), so two never act on the queue together for longer than the
// database takes to answer one statement.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

enum class LeaderMove { kRenew, kTakeOver, kFollow };

// What `me` does on seeing `lease`: renew its own, take a free or lapsed one, or follow.
LeaderMove DecideLeaderMove(const LeaderLease& lease, const std::string& me);

struct LeaderOptions {
  std::string id;       // this coordinator, unique among those sharing the database
  std::string address;  // where it serves clients, told to them by standbys
  int64_t lease_ms = 5000;
  int64_t renew_ms = 1000;  // also the standby's poll interval
};

class LeaderLeaseKeeper {
 public:
  // `store`: a connection of its own, so renewals never wait behind the coordinator's work.
  LeaderLeaseKeeper(std::unique_ptr<Store> store, LeaderOptions options);

  // Polls until this coordinator holds the lease (OK) or `stop` is set (Cancelled).
  // `following` is called with each lease seen held by another coordinator.
  absl::Status WaitToLead(const std::atomic<bool>& stop, const std::function<void(const LeaderLease&)>& following);
  // One renewal. Error once the lease is lost: another coordinator holds it, or it could
  // not be renewed for lease_ms since the last success (database unreachable).
  absl::Status Renew();
  // On a clean shutdown: ends this coordinator's lease now, so a standby takes over at its
  // next poll instead of after the lease.
  void Release();
  const LeaderOptions& options() const { return options_; }
  // The epoch this coordinator leads in (after WaitToLead): the coordinator's store is
  // fenced with it (Store::SetFencingEpoch), so once another takes over it writes nothing.
  int64_t epoch() const { return epoch_; }

 private:
  std::unique_ptr<Store> store_;
  LeaderOptions options_;
  std::chrono::steady_clock::time_point renewed_at_;
  int64_t epoch_ = 0;
};

}  // namespace spriteforge::coordinator
