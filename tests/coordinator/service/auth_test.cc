// The token table, the roles' permissions and the submission rate limiter, without RPC.
#include "coordinator/transport/access/auth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/sha256.h"

namespace spriteforge::coordinator {
namespace {

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kAuthFile[] = R"(
tokens:
  - {name: alice, token: alice-token-0123456789, role: submitter, max_queued_images: 50}
  - {name: ops, token_sha256: %SHA%, role: admin}
  - {name: dash, token: dash-token-0123456789, role: viewer}
  - {name: gpu, token: gpu-token-01234567890, role: worker}
defaults: {max_running_jobs: 3, submits_per_minute: 10}
)";

TokenTable Table() {
  std::string text = kAuthFile;
  text.replace(text.find("%SHA%"), 5, Sha256Hex("ops-token-0123456789"));
  auto table = TokenTable::Parse(text, "auth.yaml");
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *table : TokenTable{};
}

TEST(TokenTableTest, ClearAndHashedTokensAuthenticateWithTheirLimits) {
  const TokenTable table = Table();
  EXPECT_EQ(table.size(), 4u);
  auto alice = table.Authenticate(std::string("Bearer ") + kAliceToken);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kSubmitter);
  EXPECT_FALSE(alice->anonymous);
  EXPECT_EQ(alice->limits.max_queued_images, 50);
  EXPECT_EQ(alice->limits.max_running_jobs, 3);  // from defaults
  EXPECT_EQ(alice->limits.submits_per_minute, 10);
  auto ops = table.Authenticate("Bearer ops-token-0123456789");
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_EQ(ops->role, Role::kAdmin);
}

TEST(TokenTableTest, MissingMalformedAndUnknownTokensAreUnauthenticated) {
  const TokenTable table = Table();
  EXPECT_EQ(table.Authenticate("").status().message(),
            "this coordinator needs a token: pass --token or set SPRITEFORGE_TOKEN");
  EXPECT_EQ(table.Authenticate(kAliceToken).status().message(), "authorization must be 'Bearer TOKEN'");
  EXPECT_EQ(table.Authenticate("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(table.Authenticate("Bearer alice-token-012345678").status().message(), "unknown token");
  // The hash is not the token.
  EXPECT_EQ(table.Authenticate("Bearer " + Sha256Hex("ops-token-0123456789")).status().message(), "unknown token");
}

TEST(TokenTableTest, BadFilesAreRefusedWithWhereAndWhat) {
  auto error = [](const std::string& text) {
    auto t = TokenTable::Parse(text, "auth.yaml");
    return t.ok() ? std::string("ok") : std::string(t.status().message());
  };
  EXPECT_EQ(error("tokens: []\n"), "auth.yaml: 'tokens' must be a non-empty list of {name, token or token_sha256, role}");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: root}]\n"),
            "auth.yaml: tokens[0].role: must be submitter, viewer, admin or worker");
  EXPECT_EQ(error("tokens: [{name: a, token: short, role: admin}]\n"),
            "auth.yaml: tokens[0].token: must be at least 16 characters");
  EXPECT_EQ(error("tokens: [{name: a, token_sha256: abc, role: admin}]\n"),
            "auth.yaml: tokens[0].token_sha256: must be 64 hex digits");
  EXPECT_EQ(error("tokens: [{name: a, role: admin}]\n"),
            "auth.yaml: tokens[0]: exactly one of token or token_sha256 is required");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin, colour: red}]\n"),
            "auth.yaml: tokens[0].colour: unknown key");
  EXPECT_EQ(error("tokens: [{name: 'a b', token: 0123456789abcdefg, role: admin}]\n"),
            "auth.yaml: tokens[0].name: letters, digits, '-', '_', '.', '@' only, at most 64");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin},"
                  " {name: b, token: 0123456789abcdefg, role: viewer}]\n"),
            "auth.yaml: tokens[1]: the same token appears twice");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin},"
                  " {name: a, token: 0123456789abcdefgh, role: viewer}]\n"),
            "auth.yaml: tokens[1]: name 'a' already has role admin");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin, max_running_jobs: -1}]\n"),
            "auth.yaml: tokens[0].max_running_jobs: must be a non-negative integer (0: no limit)");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin}]\nusers: []\n"),
            "auth.yaml: unknown key 'users'");
  EXPECT_EQ(error("tokens: [{name: a, token: 0123456789abcdefg, role: admin, name: b}]\n").rfind("auth.yaml:1:", 0),
            0u);
}

Principal Who(const std::string& name, Role role) {
  Principal p;
  p.name = name;
  p.role = role;
  p.anonymous = false;
  return p;
}

TEST(AuthorizeTest, SubmittersOwnTheirJobsViewersReadAdminsDoAllWorkersOnlyConnect) {
  const Principal alice = Who("alice", Role::kSubmitter), viewer = Who("dash", Role::kViewer),
                  admin = Who("ops", Role::kAdmin), worker = Who("gpu", Role::kWorker);
  EXPECT_TRUE(Authorize(alice, Action::kSubmit).ok());
  EXPECT_TRUE(Authorize(alice, Action::kReadJob, "alice", "job-1").ok());
  EXPECT_TRUE(Authorize(alice, Action::kCancelJob, "alice", "job-1").ok());
  const absl::Status other = Authorize(alice, Action::kReadJob, "bob", "job-2");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.message(), "token 'alice' (submitter) may not read job job-2: not its own");
  EXPECT_FALSE(Authorize(alice, Action::kCancelJob, "bob", "job-2").ok());
  EXPECT_FALSE(Authorize(alice, Action::kWorkerStream).ok());

  EXPECT_TRUE(Authorize(viewer, Action::kReadJob, "bob", "job-2").ok());
  EXPECT_EQ(Authorize(viewer, Action::kCancelJob, "bob", "job-2").message(), "token 'dash' (viewer) may not cancel job job-2");
  EXPECT_EQ(Authorize(viewer, Action::kSubmit).message(), "token 'dash' (viewer) may not submit jobs");

  for (Action a : {Action::kSubmit, Action::kReadJob, Action::kCancelJob, Action::kReadFleet}) {
    EXPECT_TRUE(Authorize(admin, a, "bob", "job-2").ok());
    EXPECT_FALSE(Authorize(worker, a, "gpu", "job-2").ok());
  }
  EXPECT_FALSE(Authorize(admin, Action::kWorkerStream).ok());
  EXPECT_TRUE(Authorize(worker, Action::kWorkerStream).ok());
  EXPECT_TRUE(SeesAllJobs(viewer) && SeesAllJobs(admin) && !SeesAllJobs(alice));
  EXPECT_TRUE(Authorize(Principal{}, Action::kCancelJob, "bob", "job-2").ok());  // no --auth
}

// SIGHUP's reload: the new file's tokens replace the old ones while other threads keep
// authenticating; a file that does not load keeps the table as it was.
TEST(TokenTableTest, ReloadSwapsTheTokensAndABadFileKeepsTheOldOnes) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "reload-auth.yaml").string();
  std::ofstream(path) << "tokens: [{name: alice, token: alice-token-0123456789, role: submitter}]\n";
  auto loaded = TokenTable::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  TokenTable& table = *loaded;

  std::atomic<bool> stop{false};
  std::atomic<int> lookups{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        // Either table may answer, but always whole: alice is a submitter in both.
        auto who = table.Authenticate(std::string("Bearer ") + kAliceToken);
        if (who.ok()) EXPECT_EQ(who->role, Role::kSubmitter);
        ++lookups;
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    std::ofstream(path) << "tokens:\n  - {name: alice, token: alice-token-0123456789, role: submitter}\n"
                        << "  - {name: bob, token: bob-token-0123456789ab, role: viewer}\n";
    ASSERT_TRUE(table.Reload(path).ok());
    std::ofstream(path) << "tokens: [{name: alice, token: alice-token-0123456789, role: submitter}]\n";
    ASSERT_TRUE(table.Reload(path).ok());
  }
  while (lookups < 100) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();

  // Bob added, alice's token rotated: the old token stops working at once.
  std::ofstream(path) << "tokens:\n  - {name: alice, token: alice-rotated-0123456789, role: submitter}\n"
                      << "  - {name: bob, token: bob-token-0123456789ab, role: viewer}\n";
  ASSERT_TRUE(table.Reload(path).ok());
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.Authenticate("Bearer bob-token-0123456789ab")->name, "bob");
  EXPECT_EQ(table.Authenticate("Bearer alice-rotated-0123456789")->name, "alice");
  EXPECT_EQ(table.Authenticate(std::string("Bearer ") + kAliceToken).status().message(), "unknown token");

  // A broken file, then a missing one: refused with where and what, nothing changes.
  std::ofstream(path) << "tokens: [{name: bob, token: short, role: viewer}]\n";
  const absl::Status broken = table.Reload(path);
  EXPECT_EQ(broken.message(), path + ": tokens[0].token: must be at least 16 characters");
  std::filesystem::remove(path);
  EXPECT_FALSE(table.Reload(path).ok());
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.Authenticate("Bearer bob-token-0123456789ab")->role, Role::kViewer);
}

TEST(RateLimiterTest, ABurstThenOnePerIntervalPerClient) {
  RateLimiter limiter;
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.Allow("alice", 6, 1000).ok()) << i;
  const absl::Status refused = limiter.Allow("alice", 6, 1000);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(), "submits_per_minute limit of 6 reached for 'alice'; retry in 10 s");
  EXPECT_TRUE(limiter.Allow("bob", 6, 1000).ok());      // another client has its own bucket
  EXPECT_FALSE(limiter.Allow("alice", 6, 10999).ok());  // one refill takes 10 s
  EXPECT_TRUE(limiter.Allow("alice", 6, 11000).ok());
  EXPECT_TRUE(limiter.Allow("alice", 0, 11000).ok());   // 0: no limit
}

}  // namespace
}  // namespace spriteforge::coordinator
