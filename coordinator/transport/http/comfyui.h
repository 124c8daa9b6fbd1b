// ComfyUI's HTTP API in spriteforge's terms, as pure functions tested without a server: the
// /object_info of the nodes common/comfyui reads, /prompt's validation errors as node_errors,
// and /history and /queue entries of a prompt, which is a job (prompt_id = job id).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator::http {

// A prompt queued through POST /prompt: its workflow and, per SaveImage node (in node id
// order, as the job's entries are), how many of the job's images it saves.
struct ComfyPrompt {
  int64_t number = 0;
  std::string job_id;
  std::string client_id;
  nlohmann::json workflow;
  std::vector<std::pair<std::string, int>> saves;  // SaveImage node id -> images
};

// /object_info: each supported node with ComfyUI's input and output description; checkpoint
// names are the served models as "<model>.safetensors".
nlohmann::json ObjectInfo(const std::vector<std::string>& models);

// POST /prompt's 400 body for an import error: {"error": {...}, "node_errors": {id: {...}}},
// the node named by the message's "node N (Class)." when it has one.
nlohmann::json PromptError(const absl::Status& status);

// The file name /view serves an image of a job by, and back.
std::string ViewFilename(const std::string& job_id, int index);
bool ParseViewFilename(const std::string& filename, std::string* job_id, int* index);

// [number, prompt_id, prompt, extra_data, outputs to execute], as /queue and /history list it.
nlohmann::json QueueEntry(const ComfyPrompt& prompt);
// /history's entry of a finished job: outputs per SaveImage node, and its status.
nlohmann::json HistoryEntry(const ComfyPrompt& prompt, const v1::Job& job, const std::vector<v1::Item>& items);

bool JobFinished(const v1::Job& job);

// The /ws websocket (RFC 6455), server side: the handshake's Sec-WebSocket-Accept for the
// client's Sec-WebSocket-Key, and frames as a server sends them (unmasked, unfragmented).
std::string WebSocketAccept(const std::string& key);
std::string WebSocketFrame(int opcode, const std::string& payload);
constexpr int kWsText = 0x1, kWsClose = 0x8, kWsPing = 0x9, kWsPong = 0xA;
// The client's complete frames at the start of `buffer` (masked, as clients send them),
// unmasked and taken out of it; an incomplete one stays for the next read.
struct WebSocketMessage {
  int opcode = 0;
  std::string payload;
};
std::vector<WebSocketMessage> TakeClientFrames(std::string* buffer);

// {"type": "status", ...}: the first message of a socket and the queue's length.
nlohmann::json StatusMessage(int queue_remaining, const std::string& client_id);

// ComfyUI's websocket messages for one prompt, made from its job's events in order:
// execution_start once it starts, executing (the sampler node) and progress per step,
// executed per SaveImage with its images, then executing with node null when it ends.
class ComfyProgress {
 public:
  explicit ComfyProgress(ComfyPrompt prompt);
  // The messages `event` makes; `items` (by index) are the finished job's, for "executed".
  std::vector<nlohmann::json> On(const v1::JobEvent& event, const std::vector<v1::Item>& items);
  bool finished() const { return finished_; }
  const std::string& job_id() const { return prompt_.job_id; }

 private:
  void Start(std::vector<nlohmann::json>& out);
  void Executing(const std::string& node, std::vector<nlohmann::json>& out);
  std::string SamplerOfItem(int index) const;

  ComfyPrompt prompt_;
  std::vector<std::string> samplers_;  // per SaveImage, the sampler it saves
  bool started_ = false, finished_ = false;
  std::string executing_;
};

}  // namespace spriteforge::coordinator::http
