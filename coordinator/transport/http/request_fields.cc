#include "coordinator/transport/http/request_fields.h"

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator::http {
namespace {

const nlohmann::json* Field(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

absl::Status ReadInt(const nlohmann::json& body, const char* key, int64_t min, int64_t max, int64_t* out) {
  const nlohmann::json* v = Field(body, key);
  if (!v) return absl::OkStatus();
  if (!v->is_number_integer()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected an integer"));
  // Unsigned values above int64's range compare as negative; check them apart.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": must be ", min, "..", max));
  }
  const int64_t value = v->get<int64_t>();
  if (value < min || value > max) return absl::InvalidArgumentError(absl::StrCat(key, ": must be ", min, "..", max));
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadNumber(const nlohmann::json& body, const char* key, double min, double max, double* out) {
  const nlohmann::json* v = Field(body, key);
  if (!v) return absl::OkStatus();
  if (!v->is_number()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected a number"));
  const double value = v->get<double>();
  if (!(value >= min && value <= max)) return absl::InvalidArgumentError(absl::StrCat(key, ": must be ", min, "..", max));
  *out = value;
  return absl::OkStatus();
}

absl::Status ReadString(const nlohmann::json& body, const char* key, std::string* out) {
  const nlohmann::json* v = Field(body, key);
  if (!v) return absl::OkStatus();
  if (!v->is_string()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected a string"));
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadBool(const nlohmann::json& body, const char* key, bool* out) {
  const nlohmann::json* v = Field(body, key);
  if (!v) return absl::OkStatus();
  if (!v->is_boolean()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected true or false"));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status CheckSize(const char* what, int64_t value, int min, int max) {
  if (value < min || value > max || value % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", value, " is not a multiple of 8 in ", min, "..", max));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator::http
