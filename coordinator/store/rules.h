// The store's decisions, apart from any SQL, so both backends decide alike.
#pragma once

#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

// A released item fails for good when the release names a fault and it has had its tries;
// otherwise it returns to the queue.
inline ItemState ReleasedItemState(int fail_reason, int attempts, int max_attempts) {
  return fail_reason != 0 && attempts >= max_attempts ? ItemState::kFailed : ItemState::kQueued;
}

// A job whose items are all finished failed if any failed.
inline JobState FinishedJobState(const ItemCounts& counts) {
  return counts.failed > 0 ? JobState::kFailed : JobState::kDone;
}

}  // namespace spriteforge::coordinator
