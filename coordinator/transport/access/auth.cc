#include "coordinator/transport/access/auth.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/yaml_check.h"

namespace spriteforge::coordinator {
namespace {

constexpr size_t kMinTokenChars = 16;  // shorter tokens are guessable

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<int64_t> NonNegative(const YAML::Node& node, const std::string& where) {
  int64_t v = -1;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, v) || v < 0) {
    return Invalid(where, "must be a non-negative integer (0: no limit)");
  }
  return v;
}

// Reads the limit keys of `node` over `limits`; other keys must be in `allowed`.
absl::Status ReadLimits(const YAML::Node& node, const std::string& where, const std::set<std::string>& allowed,
                        ClientLimits* limits) {
  if (!node.IsMap()) return Invalid(where, "must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string at = absl::StrCat(where, ".", key);
    if (key == "max_queued_images" || key == "max_running_jobs" || key == "submits_per_minute" ||
        key == "max_upload_mb" || key == "uploads_per_minute") {
      ASSIGN_OR_RETURN(auto v, NonNegative(kv.second, at));
      if (key == "max_queued_images") limits->max_queued_images = v;
      else if (key == "max_upload_mb" && v > (1 << 30)) return Invalid(at, "must be at most 1073741824");
      else if (key == "max_upload_mb") limits->max_upload_bytes = static_cast<uint64_t>(v) << 20;
      else if (v > 1'000'000) return Invalid(at, "must be at most 1000000");
      else if (key == "max_running_jobs") limits->max_running_jobs = static_cast<int>(v);
      else if (key == "uploads_per_minute") limits->uploads_per_minute = static_cast<int>(v);
      else limits->submits_per_minute = static_cast<int>(v);
    } else if (!allowed.count(key)) {
      return Invalid(at, "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Role> ParseRole(const YAML::Node& node, const std::string& where) {
  const std::string name = node.IsScalar() ? node.as<std::string>() : "";
  if (name == "submitter") return Role::kSubmitter;
  if (name == "viewer") return Role::kViewer;
  if (name == "admin") return Role::kAdmin;
  if (name == "worker") return Role::kWorker;
  return Invalid(where, "must be submitter, viewer, admin or worker");
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSubmitter: return "submitter";
    case Role::kViewer: return "viewer";
    case Role::kAdmin: return "admin";
    case Role::kWorker: return "worker";
  }
  return "unknown";
}

absl::StatusOr<TokenTable> TokenTable::Parse(const std::string& yaml, const std::string& file) {
  RETURN_IF_ERROR(CheckYamlShape(yaml, file));
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return Invalid(file, e.what());
  }
  if (!root.IsMap()) return Invalid(file, "expected a mapping with a 'tokens' list");
  ClientLimits defaults;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key != "tokens" && key != "defaults") return Invalid(file, absl::StrCat("unknown key '", key, "'"));
  }
  if (root["defaults"]) {
    RETURN_IF_ERROR(ReadLimits(root["defaults"], file + ": defaults", {}, &defaults));
  }
  const YAML::Node tokens = root["tokens"];
  if (!tokens || !tokens.IsSequence() || tokens.size() == 0) {
    return Invalid(file, "'tokens' must be a non-empty list of {name, token or token_sha256, role}");
  }
  auto by_hash = std::make_shared<ByHash>();
  std::map<std::string, Role> roles;  // a name keeps one role across its tokens
  for (size_t i = 0; i < tokens.size(); ++i) {
    const YAML::Node t = tokens[i];
    const std::string where = absl::StrCat(file, ": tokens[", i, "]");
    Principal p;
    p.anonymous = false;
    p.limits = defaults;
    RETURN_IF_ERROR(ReadLimits(t, where, {"name", "token", "token_sha256", "role"}, &p.limits));
    if (!t["name"] || !t["name"].IsScalar() || t["name"].as<std::string>().empty()) {
      return Invalid(where, "name is required");
    }
    p.name = t["name"].as<std::string>();
    if (p.name.size() > 64 || !std::all_of(p.name.begin(), p.name.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@';
        })) {
      return Invalid(where + ".name", "letters, digits, '-', '_', '.', '@' only, at most 64");
    }
    if (!t["role"]) return Invalid(where, "role is required");
    ASSIGN_OR_RETURN(p.role, ParseRole(t["role"], where + ".role"));
    if (auto [it, fresh] = roles.emplace(p.name, p.role); !fresh && it->second != p.role) {
      return Invalid(where, absl::StrCat("name '", p.name, "' already has role ", RoleName(it->second)));
    }
    const bool clear = t["token"].IsDefined(), hashed = t["token_sha256"].IsDefined();
    if (clear == hashed) return Invalid(where, "exactly one of token or token_sha256 is required");
    std::string hash;
    if (clear) {
      const std::string token = t["token"].IsScalar() ? t["token"].as<std::string>() : "";
      if (token.size() < kMinTokenChars) {
        return Invalid(where + ".token", absl::StrCat("must be at least ", kMinTokenChars, " characters"));
      }
      hash = Sha256Hex(token);
    } else {
      hash = t["token_sha256"].IsScalar() ? absl::AsciiStrToLower(t["token_sha256"].as<std::string>()) : "";
      if (!IsSha256Hex(hash)) return Invalid(where + ".token_sha256", "must be 64 hex digits");
    }
    if (!by_hash->emplace(hash, p).second) return Invalid(where, "the same token appears twice");
  }
  TokenTable table;
  table.by_hash_ = std::move(by_hash);
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--auth: ", text.status().message()));
  return Parse(*text, path);
}

absl::Status TokenTable::Reload(const std::string& path) {
  ASSIGN_OR_RETURN(auto fresh, Load(path));
  std::lock_guard<std::mutex> lock(*mu_);
  by_hash_ = std::move(fresh.by_hash_);
  return absl::OkStatus();
}

std::shared_ptr<const TokenTable::ByHash> TokenTable::Current() const {
  std::lock_guard<std::mutex> lock(*mu_);
  return by_hash_;
}

size_t TokenTable::size() const { return Current()->size(); }

absl::StatusOr<Principal> TokenTable::Authenticate(const std::string& authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError("this coordinator needs a token: pass --token or set SPRITEFORGE_TOKEN");
  }
  constexpr char kBearer[] = "Bearer ";
  if (authorization.rfind(kBearer, 0) != 0 || authorization.size() == sizeof kBearer - 1) {
    return absl::UnauthenticatedError("authorization must be 'Bearer TOKEN'");
  }
  // The table holds hashes, so the lookup compares digests, never the secret itself.
  const std::shared_ptr<const ByHash> by_hash = Current();
  auto it = by_hash->find(Sha256Hex(authorization.substr(sizeof kBearer - 1)));
  if (it == by_hash->end()) return absl::UnauthenticatedError("unknown token");
  return it->second;
}

absl::Status Authorize(const Principal& who, Action action, const std::string& owner, const std::string& job_id) {
  if (who.anonymous) return absl::OkStatus();
  const bool admin = who.role == Role::kAdmin;
  const bool own = who.role == Role::kSubmitter && owner == who.name;
  bool ok = false;
  const char* what = "";
  switch (action) {
    case Action::kSubmit:
      ok = admin || who.role == Role::kSubmitter;
      what = "submit jobs";
      break;
    case Action::kReadJob:
      ok = admin || who.role == Role::kViewer || own;
      what = "read";
      break;
    case Action::kCancelJob:
      ok = admin || own;
      what = "cancel";
      break;
    case Action::kReadFleet:
      ok = who.role != Role::kWorker;
      what = "call the client API";
      break;
    case Action::kWorkerStream:
      ok = who.role == Role::kWorker;
      what = "connect as a worker";
      break;
  }
  if (ok) return absl::OkStatus();
  const std::string subject = absl::StrCat("token '", who.name, "' (", RoleName(who.role), ")");
  if (!job_id.empty() && who.role == Role::kSubmitter) {
    return absl::PermissionDeniedError(absl::StrCat(subject, " may not ", what, " job ", job_id, ": not its own"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(subject, " may not ", what, job_id.empty() ? "" : " job ", job_id));
}

bool SeesAllJobs(const Principal& who) {
  return who.anonymous || who.role == Role::kAdmin || who.role == Role::kViewer;
}
}  // namespace spriteforge::coordinator
