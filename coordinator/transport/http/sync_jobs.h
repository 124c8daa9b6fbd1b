// Blocking generation for the A1111 and OpenAI routes: the typed manifest built from the
// request (common/manifest_builder.h) is submitted as an ordinary job, and the call waits
// for that job to finish.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "coordinator/transport/http/http_api.h"

namespace spriteforge::coordinator::http {

struct FinishedJob {
  v1::Job job;
  std::vector<v1::Item> items;     // in index order
  std::vector<std::string> pngs;   // the image of each item (the sprite when one was made)
};

// `requested` when non-empty, else the first model a connected worker serves. A model no
// connected worker serves is refused: the blocking call would only wait for its timeout.
absl::StatusOr<std::string> ChooseModel(Coordinator* core, const std::string& requested);

// Submits `manifest` and waits until its job finishes, fails (INTERNAL, naming the first
// failed item), is cancelled (ABORTED) or the API's timeout passes (DEADLINE_EXCEEDED,
// naming the job so it can be fetched later).
// The job belongs to the request's caller, and the uploads it names must be the caller's
// (UploadFiles stores a request's inline images first).
// `on_event`, when set, sees each of the job's events as the wait does (for progress
// reports); it runs on the core's event thread and must be quick.
absl::StatusOr<FinishedJob> SubmitAndWait(HttpApi& api, const httplib::Request& req, Manifest manifest,
                                          const std::string& idempotency_key,
                                          std::function<void(const v1::JobEvent&)> on_event = nullptr);

// Stores files a request carries inline (path -> bytes) as the caller's uploads, under the
// same kind limits, quotas and upload rate as the client's UploadFile; returns path -> sha256.
absl::StatusOr<std::map<std::string, std::string>> UploadFiles(HttpApi& api, const httplib::Request& req,
                                                               const std::map<std::string, std::string>& files,
                                                               ManifestFileKind kind);

// Random seed base for requests that ask for one (A1111 draws below 2^32 too).
uint64_t DrawSeed();

}  // namespace spriteforge::coordinator::http
