// Event streams and blocking calls each hold a server thread; their counts are capped.
#include <gtest/gtest.h>

#include "coordinator/transport/http/http_api.h"

namespace spriteforge::coordinator::http {
namespace {

TEST(HttpApiSlots, PastTheLimitNewStreamsAreRefusedUntilOneEnds) {
  HttpApiOptions options;
  options.max_event_streams = 2;
  HttpApi api(nullptr, options);
  auto first = api.TakeStreamSlot();
  auto second = api.TakeStreamSlot();
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = api.TakeStreamSlot();
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(third.status().message(), "too many open event streams (2); try again later");
  EXPECT_TRUE(api.TakeSyncSlot().ok());  // counted apart
  first->reset();
  EXPECT_TRUE(api.TakeStreamSlot().ok());
}

}  // namespace
}  // namespace spriteforge::coordinator::http
