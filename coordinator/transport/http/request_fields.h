// Typed reads of JSON request fields with one-line errors that name the field, shared by
// the A1111 and OpenAI translations.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace spriteforge::coordinator::http {

// Each leaves `out` untouched when the field is absent or null.
absl::Status ReadInt(const nlohmann::json& body, const char* key, int64_t min, int64_t max, int64_t* out);
absl::Status ReadNumber(const nlohmann::json& body, const char* key, double min, double max, double* out);
absl::Status ReadString(const nlohmann::json& body, const char* key, std::string* out);
absl::Status ReadBool(const nlohmann::json& body, const char* key, bool* out);

// Width and height as the manifest takes them: multiples of 8 within the limits.
absl::Status CheckSize(const char* what, int64_t value, int min, int max);

}  // namespace spriteforge::coordinator::http
