// The names of the engine's enums (engine.h), one table each.
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spriteforge/engine/engine.h"

namespace spriteforge::engine {
namespace {

template <typename E, size_t N>
using Table = std::array<std::pair<const char*, E>, N>;

// Canonical names first, in enum order; aliases after.
constexpr Table<SamplerKind, 6> kSamplers = {{{"euler", SamplerKind::kEuler},
                                              {"euler_ancestral", SamplerKind::kEulerAncestral},
                                              {"dpmpp_2m", SamplerKind::kDpmpp2m},
                                              {"lcm", SamplerKind::kLcm},
                                              {"tcd", SamplerKind::kTcd},
                                              {"euler_a", SamplerKind::kEulerAncestral}}};
constexpr Table<ScheduleKind, 5> kSchedules = {{{"normal", ScheduleKind::kNormal},
                                                {"trailing", ScheduleKind::kTrailing},
                                                {"sgm_uniform", ScheduleKind::kSgmUniform},
                                                {"karras", ScheduleKind::kKarras},
                                                {"leading", ScheduleKind::kNormal}}};
constexpr Table<Dtype, 4> kDtypes = {
    {{"fp32", Dtype::kFp32}, {"fp16", Dtype::kFp16}, {"bf16", Dtype::kBf16}, {"fp8", Dtype::kFp8}}};

// "a, b, c or d": the canonical names (the first `count`).
template <typename E, size_t N>
std::string Expected(const Table<E, N>& table, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) absl::StrAppend(&out, i == 0 ? "" : (i + 1 == count ? " or " : ", "), table[i].first);
  return out;
}

template <typename E, size_t N>
absl::StatusOr<E> Parse(const Table<E, N>& table, size_t canonical, const std::string& what, const std::string& name) {
  for (const auto& [n, value] : table) {
    if (n == name) return value;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", name, "' (expected ", Expected(table, canonical), ")"));
}

template <typename E, size_t N>
std::string Name(const Table<E, N>& table, E value) {
  for (const auto& [n, v] : table) {
    if (v == value) return n;
  }
  return "?";
}

}  // namespace

absl::StatusOr<SamplerKind> ParseSampler(const std::string& name) { return Parse(kSamplers, 5, "sampler", name); }
absl::StatusOr<ScheduleKind> ParseSchedule(const std::string& name) { return Parse(kSchedules, 4, "schedule", name); }
absl::StatusOr<Dtype> ParseDtype(const std::string& name) { return Parse(kDtypes, 4, "dtype", name); }
std::string SamplerName(SamplerKind sampler) { return Name(kSamplers, sampler); }
std::string ScheduleName(ScheduleKind schedule) { return Name(kSchedules, schedule); }
std::string DtypeName(Dtype dtype) { return Name(kDtypes, dtype); }

}  // namespace spriteforge::engine
