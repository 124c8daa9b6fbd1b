#include "client/commands.h"

#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/progress.h"
#include "common/comfyui/workflow.h"
#include "common/files.h"
#include "common/manifest_files.h"
#include "common/status_macros.h"

namespace spriteforge::client {
namespace {

int Error(const std::string& command, const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge %s: %s\n", command.c_str(), message.c_str());
  return code;
}

int RpcError(const std::string& command, const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return Error(command, "coordinator unavailable: " + status.error_message());
  }
  // A coordinator resets streams that would take more memory than its client calls may hold.
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      status.error_message().find("RST_STREAM") != std::string::npos) {
    return Error(command, "the coordinator refused the request: too large, or too many large requests at once");
  }
  return Error(command, status.error_message());
}

const char* JobStateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_QUEUED: return "queued";
    case v1::JOB_RUNNING: return "running";
    case v1::JOB_DONE: return "done";
    case v1::JOB_FAILED: return "failed";
    case v1::JOB_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

// --json prints the API's own messages in protobuf's JSON mapping, as the HTTP API does:
// .proto field names, enums by name, 64-bit integers as strings.
int PrintJson(const std::string& command, const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  if (auto s = google::protobuf::util::MessageToJsonString(message, &out, options); !s.ok()) {
    return Error(command, "cannot print JSON: " + std::string(s.message()));
  }
  std::printf("%s", out.c_str());
  return 0;
}

std::string JobLine(const v1::Job& job) {
  const v1::ItemCounts& c = job.counts();
  const std::string waiting = job.waiting_reason().empty() ? "" : "  waiting: " + job.waiting_reason();
  return absl::StrFormat("%-18s %-10s %-16s %5d/%-5d done  %d running  %d queued  %d failed  %.2f img/s%s",
                         job.id(), JobStateName(job.state()), job.name(), c.done(), c.total(), c.running(),
                         c.queued(), c.failed(), job.images_per_second(), waiting);
}

bool Finished(v1::JobState s) { return s == v1::JOB_DONE || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED; }

// Sends one file in chunks of 1 MiB; returns the coordinator's hash of what arrived.
absl::StatusOr<std::string> Upload(Stub& stub, const std::string& path, ManifestFileKind kind, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  grpc::ClientContext ctx;
  v1::FileRef ref;
  auto writer = stub.UploadFile(&ctx, &ref);
  v1::FileChunk chunk;
  switch (kind) {
    case ManifestFileKind::kLora: chunk.set_kind(v1::FILE_LORA); break;
    case ManifestFileKind::kImage: chunk.set_kind(v1::FILE_IMAGE); break;
    case ManifestFileKind::kWeights: chunk.set_kind(v1::FILE_WEIGHTS); break;
    case ManifestFileKind::kConfig: chunk.set_kind(v1::FILE_CONFIG); break;
  }
  chunk.set_size(size);
  std::string buffer(1 << 20, '\0');
  bool first = true;
  while (in || first) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n == 0 && !first) break;
    chunk.set_data(buffer.data(), n);
    if (!writer->Write(chunk)) break;  // the coordinator refused it: Finish says why
    chunk.clear_kind();
    chunk.clear_size();
    first = false;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  return ref.sha256();
}

// Reads the files the manifest names (relative paths from the manifest's folder), uploads
// each once and lists them in the request. Problems with the files are reported here with
// the manifest's file, line and field; any other problem is left to the coordinator.
absl::Status UploadManifestFiles(Stub& stub, const std::string& manifest_path, const std::string& text,
                                 v1::SubmitJobRequest* request) {
  const std::filesystem::path base = std::filesystem::path(manifest_path).parent_path();
  std::map<std::pair<std::string, int>, ManifestFile> described;
  std::map<std::string, std::pair<std::string, ManifestFileKind>> to_upload;  // sha256 -> local path, kind
  bool file_problem = false;
  FileResolver resolve = [&](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
    const auto key = std::make_pair(path, static_cast<int>(kind));
    if (auto it = described.find(key); it != described.end()) return it->second;
    const std::filesystem::path local = std::filesystem::path(path).is_absolute() ? std::filesystem::path(path) : base / path;
    auto file = DescribeManifestFile(local.string(), kind);
    if (!file.ok()) {
      file_problem = true;
      return file.status();
    }
    described[key] = *file;
    to_upload[file->sha256] = {local.string(), kind};
    (*request->mutable_files())[path] = file->sha256;
    return file;
  };
  auto manifest = comfyui::IsWorkflow(text)
                      ? comfyui::ImportWorkflowText(text, manifest_path, ManifestLimits{}, resolve)
                      : ParseManifest(text, manifest_path, [] { return uint64_t{0}; }, ManifestLimits{}, resolve);
  if (!manifest.ok() && file_problem) return manifest.status();
  for (const auto& [sha, source] : to_upload) {
    auto size = std::filesystem::file_size(source.first);
    auto uploaded = Upload(stub, source.first, source.second, size);
    if (!uploaded.ok()) return absl::Status(uploaded.status().code(), absl::StrCat(source.first, ": ", uploaded.status().message()));
    if (*uploaded != sha) return absl::DataLossError(absl::StrCat(source.first, " changed while it was uploaded"));
  }
  return absl::OkStatus();
}

// A ComfyUI workflow with the command line's settings written into it, as the job's text.
absl::StatusOr<std::string> PrepareWorkflow(const std::string& text, const SubmitArgs& args) {
  ASSIGN_OR_RETURN(auto workflow, comfyui::ParseWorkflow(text));
  for (const std::string& mapping : args.model_maps) RETURN_IF_ERROR(comfyui::ApplyModelMap(workflow, mapping));
  for (const std::string& setting : args.settings) RETURN_IF_ERROR(comfyui::ApplySetting(workflow, setting));
  if (args.count > 0) RETURN_IF_ERROR(comfyui::SetImageCount(workflow, args.count));
  return workflow.dump();
}

}  // namespace

int Submit(Stub& stub, const SubmitArgs& args) {
  auto text = ReadFile(args.manifest);
  if (!text.ok()) return Error("submit", std::string(text.status().message()));
  if (comfyui::IsWorkflow(*text)) {
    text = PrepareWorkflow(*text, args);
    if (!text.ok()) return Error("submit", std::string(text.status().message()));
  } else if (!args.settings.empty() || !args.model_maps.empty() || args.count > 0) {
    return Error("submit", "--set, --model-map and --count apply to ComfyUI workflows (API format)");
  }
  v1::SubmitJobRequest request;
  if (auto s = UploadManifestFiles(stub, args.manifest, *text, &request); !s.ok()) {
    if (s.code() == absl::StatusCode::kUnavailable) return Error("submit", "coordinator unavailable: " + std::string(s.message()));
    return Error("submit", std::string(s.message()));
  }
  request.set_manifest(*text);
  request.set_manifest_name(args.manifest);
  request.set_idempotency_key(args.idempotency_key);
  request.set_model_override(args.model);
  v1::SubmitJobResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.SubmitJob(&ctx, request, &response); !s.ok()) return RpcError("submit", s);
  std::printf("%s\n", response.job().id().c_str());
  std::fflush(stdout);
  if (response.deduplicated()) std::fprintf(stderr, "spriteforge submit: same idempotency key: existing job\n");
  if (!args.wait) return 0;
  WatchArgs watch = args.watch;
  watch.job_id = response.job().id();
  return Watch(stub, watch);
}

namespace {

// Whether a watch stream that ended with `status` is worth opening again: the coordinator
// went away (restart, network) rather than refusing the call.
bool Reconnectable(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:  // not reachable, or the connection broke
    case grpc::StatusCode::CANCELLED:    // the server shut down with the stream open
    case grpc::StatusCode::OK:           // the stream ended before the job did
      return true;
    default:
      return false;
  }
}

// Waits up to `limit` for the coordinator to answer: a call that waits for the channel to
// connect, so the next stream starts as soon as a restarted coordinator serves (a plain
// call would fail at once while the channel backs off).
void WaitForCoordinator(Stub& stub, const std::string& job_id, std::chrono::seconds limit) {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() + limit);
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::GetJobResponse response;
  stub.GetJob(&ctx, request, &response);
}

// Whether something accepts TCP connections at HOST:PORT now. Addresses that gRPC resolves
// itself (unix:, dns:///...), names that do not resolve and connects that neither succeed nor
// are refused within a second count as yes: the call that follows reports on them.
bool Listening(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || address.find('/') != std::string::npos || address.rfind("unix:", 0) == 0) {
    return true;
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), address.substr(colon + 1).c_str(), &hints, &found) != 0) return true;
  bool refused = true;
  for (addrinfo* a = found; a != nullptr && refused; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      refused = false;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int error = 0;
      socklen_t size = sizeof(error);
      if (poll(&p, 1, 1000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0 || error != ECONNREFUSED) {
        refused = false;
      }
    } else if (errno != ECONNREFUSED) {
      refused = false;
    }
    close(fd);
  }
  freeaddrinfo(found);
  return !refused;
}

}  // namespace

void WaitForListener(const std::string& address, int seconds) {
  const auto start = std::chrono::steady_clock::now();
  bool said = false;
  while (!Listening(address)) {
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited >= std::chrono::seconds(seconds)) return;
    if (!said && waited >= std::chrono::seconds(1)) {
      std::fprintf(stderr, "spriteforge: no coordinator at %s yet; waiting up to %d s (--wait-for)\n", address.c_str(),
                   seconds);
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int Watch(Stub& first, const WatchArgs& args) {
  const std::string& job_id = args.job_id;
  Stub* stub = &first;
  ProgressView view(isatty(STDERR_FILENO));
  v1::Job last;
  // Backoff between attempts: 0.25 s doubling to 2 s (the channel's own reconnect backoff
  // is capped alike in main), reset by a stream that delivered.
  int backoff_ms = 250;
  bool lost = false;  // said that the coordinator went away
  auto down_since = std::chrono::steady_clock::now();
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = stub->WatchJob(&ctx, request);
    v1::JobEvent event;
    bool delivered = false, finished = false;
    while (reader->Read(&event)) {
      if (lost && !args.quiet) std::fprintf(stderr, "spriteforge watch: reconnected\n");
      lost = false;
      delivered = true;
      if (event.has_job()) last = event.job();
      const std::string text = view.Update(event);
      if (!args.quiet && !text.empty()) std::fputs(text.c_str(), stderr);
      if (event.has_job_done()) {
        finished = true;
        break;
      }
    }
    if (finished) ctx.TryCancel();  // nothing more is wanted; the server may still be writing
    const grpc::Status status = reader->Finish();
    if (finished || Finished(last.state())) break;
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) return Error("watch", "no job " + job_id);
    if (!Reconnectable(status)) return RpcError("watch", status);
    const auto now = std::chrono::steady_clock::now();
    if (delivered) {
      backoff_ms = 250;
      down_since = now;
    }
    const std::string why = status.ok() ? "the stream ended" : status.error_message();
    if (now - down_since > std::chrono::seconds(args.reconnect_seconds)) {
      return Error("watch", absl::StrCat("coordinator unavailable for ", args.reconnect_seconds, " s: ", why));
    }
    if (!lost) {
      std::fprintf(stderr, "spriteforge watch: lost the coordinator (%s); reconnecting for up to %d s\n",
                   why.c_str(), args.reconnect_seconds);
      lost = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, 2000);
    if (args.leader) stub = args.leader();  // a standby may lead by now
    WaitForCoordinator(*stub, job_id, std::chrono::seconds(5));
  }
  std::fprintf(stderr, "%s: %s, %d of %d images in %s\n", job_id.c_str(), JobStateName(last.state()),
               last.counts().done(), last.counts().total(), last.output_dir().c_str());
  return last.state() == v1::JOB_DONE ? 0 : 1;
}

int Status(Stub& stub, const StatusArgs& args) {
  if (!args.job_id.empty()) {
    v1::GetJobRequest request;
    request.set_job_id(args.job_id);
    request.set_include_items(true);
    v1::GetJobResponse response;
    grpc::ClientContext ctx;
    if (auto s = stub.GetJob(&ctx, request, &response); !s.ok()) return RpcError("status", s);
    // Running items by worker, so one sees what runs where.
    std::map<std::string, std::vector<int>> running;
    for (const v1::Item& it : response.items()) {
      if (it.state() == v1::ITEM_RUNNING) running[it.worker_id()].push_back(it.index());
    }
    if (args.json) {
      // GET /v1/jobs/JOB?items=true, of the items only those running.
      auto* items = response.mutable_items();
      items->erase(std::remove_if(items->begin(), items->end(),
                                  [](const v1::Item& it) { return it.state() != v1::ITEM_RUNNING; }),
                   items->end());
      return PrintJson("status", response);
    }
    std::printf("%s\n", JobLine(response.job()).c_str());
    for (const auto& [worker, indices] : running) {
      std::printf("  running on %s: items %s\n", worker.c_str(), absl::StrJoin(indices, ", ").c_str());
    }
    return 0;
  }
  v1::ListJobsResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.ListJobs(&ctx, v1::ListJobsRequest(), &response); !s.ok()) return RpcError("status", s);
  if (args.json) return PrintJson("status", response);
  for (const v1::Job& job : response.jobs()) std::printf("%s\n", JobLine(job).c_str());
  return 0;
}

int Cancel(Stub& stub, const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  v1::CancelJobResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.CancelJob(&ctx, request, &response); !s.ok()) return RpcError("cancel", s);
  std::printf("%s\n", JobLine(response.job()).c_str());
  return 0;
}

int Workers(Stub& stub, bool json) {
  v1::ListWorkersResponse response;
  grpc::ClientContext ctx;
  if (auto s = stub.ListWorkers(&ctx, v1::ListWorkersRequest(), &response); !s.ok()) return RpcError("workers", s);
  if (json) return PrintJson("workers", response);
  for (const v1::WorkerView& w : response.workers()) {
    std::printf("%-28s %-9s %-24s used %6.2f GB  peak %6.2f GB  budget %6.2f GB  %5lld images  %.2f img/s\n",
                w.id().c_str(), w.connected() ? "connected" : "gone", w.device_name().c_str(), w.used_bytes() / 1e9,
                w.peak_bytes() / 1e9, w.budget_bytes() / 1e9, static_cast<long long>(w.images_done()),
                w.images_per_second());
  }
  return 0;
}

int Results(Stub& stub, const ResultsArgs& args) {
  const std::string& out = args.out;
  // Made once the coordinator sends the job's first file (or knows the job): a mistyped
  // job id leaves no empty folder behind.
  auto make_out = [&]() -> std::string {
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    return ec ? "cannot create " + out + ": " + ec.message() : "";
  };
  v1::FetchResultsRequest request;
  request.set_job_id(args.job_id);
  request.set_include_renders(args.renders);
  grpc::ClientContext ctx;
  auto reader = stub.FetchResults(&ctx, request);
  v1::ResultFile file;
  int images = 0, files = 0;
  while (reader->Read(&file)) {
    // Names come from the server: keep only the last path component.
    const std::string name = std::filesystem::path(file.name()).filename().string();
    if (name.empty() || name == "." || name == "..") continue;
    if (files == 0) {
      if (std::string why = make_out(); !why.empty()) {
        ctx.TryCancel();
        reader->Finish();
        return Error("results", why);
      }
    }
    if (auto s = WriteFileAtomic(out + "/" + name, file.data()); !s.ok()) {
      ctx.TryCancel();
      reader->Finish();
      return Error("results", std::string(s.message()));
    }
    ++files;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".png") == 0) ++images;
  }
  if (auto s = reader->Finish(); !s.ok()) return RpcError("results", s);
  if (std::string why = make_out(); !why.empty()) return Error("results", why);
  std::printf("%d images (%d files) in %s\n", images, files, out.c_str());
  return 0;
}

}  // namespace spriteforge::client
