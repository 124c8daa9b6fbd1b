#include "coordinator/transport/http/http_json.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator::http {

// The mapping gRPC gateways use, so HTTP and gRPC clients see the same failure classes.
int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

std::string ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

void ReplyJson(httplib::Response& res, const nlohmann::json& body, int status) {
  // Prompts may hold anything; invalid UTF-8 is replaced rather than failing the reply.
  ReplyJsonText(res, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status);
}

void ReplyJsonText(httplib::Response& res, const std::string& json, int status) {
  res.status = status;
  res.set_content(json + "\n", "application/json");
}

void ReplyError(httplib::Response& res, const absl::Status& status) {
  ReplyJson(res,
            {{"error",
              {{"code", absl::StatusCodeToString(status.code())}, {"message", std::string(status.message())}}}},
            HttpStatusFor(status.code()));
}

absl::Status ParseJsonObject(const std::string& body, nlohmann::json* out) {
  *out = nlohmann::json::parse(body, nullptr, false);
  if (out->is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!out->is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator::http
