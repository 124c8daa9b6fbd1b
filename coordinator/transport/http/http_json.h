// JSON replies of the HTTP API: proto messages in their canonical JSON mapping (field names
// as in the .proto, enums by name, 64-bit integers as strings), and errors as
// {"error": {"code": "INVALID_ARGUMENT", "message": "..."}} with the HTTP status that
// matches the gRPC code.
#pragma once

#include <string>

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace httplib {
struct Response;
}

namespace spriteforge::coordinator::http {

int HttpStatusFor(absl::StatusCode code);

std::string ProtoJson(const google::protobuf::Message& message);

void ReplyJson(httplib::Response& res, const nlohmann::json& body, int status = 200);
// `json` is a serialized document (e.g. ProtoJson's).
void ReplyJsonText(httplib::Response& res, const std::string& json, int status = 200);
void ReplyError(httplib::Response& res, const absl::Status& status);

// Parses a request body as a JSON object; a clear error otherwise.
absl::Status ParseJsonObject(const std::string& body, nlohmann::json* out);

}  // namespace spriteforge::coordinator::http
