#include "coordinator/transport/http/comfyui.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include <openssl/sha.h>

#include <deque>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/comfyui/workflow.h"

namespace spriteforge::coordinator::http {
namespace {

using json = nlohmann::json;

// One input as ComfyUI describes it: ["INT", {default, min, max}], [[choices]] or ["MODEL"].
json InputInfo(const comfyui::InputSpec& input, const std::vector<std::string>& models) {
  const std::string type = input.type;
  if (type == "INT") return json::array({"INT", {{"default", 0}, {"min", 0}, {"max", std::numeric_limits<uint64_t>::max()}}});
  if (type == "FLOAT") return json::array({"FLOAT", {{"default", 1.0}, {"min", 0.0}, {"max", 100.0}, {"step", 0.01}}});
  if (type == "SAMPLER") return json::array({comfyui::SamplerNames()});
  if (type == "SCHEDULER") return json::array({comfyui::SchedulerNames()});
  if (type == "ENABLE") return json::array({json::array({"enable", "disable"})});
  if (type == "STRING" && std::string(input.name) == "ckpt_name") {
    json names = json::array();
    for (const std::string& m : models) names.push_back(m + ".safetensors");
    return json::array({names});
  }
  if (type == "STRING") return json::array({"STRING", {{"multiline", std::string(input.name).find("text") == 0}}});
  return json::array({type});
}

// The sampler a SaveImage node saves: the first KSampler* up its links (through VAEDecode).
std::string SamplerOf(const json& workflow, const std::string& save) {
  std::deque<std::string> next = {save};
  std::set<std::string> seen;
  while (!next.empty()) {
    const std::string id = next.front();
    next.pop_front();
    if (!seen.insert(id).second || !workflow.contains(id) || !workflow[id].is_object()) continue;
    const json& node = workflow[id];
    if (id != save && node.value("class_type", "").rfind("KSampler", 0) == 0) return id;
    if (!node.contains("inputs") || !node["inputs"].is_object()) continue;
    for (const auto& [name, value] : node["inputs"].items()) {
      if (value.is_array() && value.size() == 2 && value[0].is_string()) next.push_back(value[0].get<std::string>());
    }
  }
  return save;
}

json Message(const std::string& type, json data) { return {{"type", type}, {"data", std::move(data)}}; }

}  // namespace

json ObjectInfo(const std::vector<std::string>& models) {
  json info = json::object();
  for (const comfyui::NodeSpec& node : comfyui::SupportedNodes()) {
    json required = json::object(), optional = json::object();
    json order_required = json::array(), order_optional = json::array();
    for (const comfyui::InputSpec& input : node.inputs) {
      (input.required ? required : optional)[input.name] = InputInfo(input, models);
      (input.required ? order_required : order_optional).push_back(input.name);
    }
    json outputs = json::array(), names = json::array(), lists = json::array();
    for (const char* out : node.outputs) {
      outputs.push_back(out);
      names.push_back(out);
      lists.push_back(false);
    }
    json inputs = {{"required", required}};
    if (!optional.empty()) inputs["optional"] = optional;
    info[node.class_type] = {{"input", inputs},
                             {"input_order", {{"required", order_required}, {"optional", order_optional}}},
                             {"output", outputs},
                             {"output_is_list", lists},
                             {"output_name", names},
                             {"name", node.class_type},
                             {"display_name", node.class_type},
                             {"description", ""},
                             {"python_module", "spriteforge"},
                             {"category", node.category},
                             {"output_node", node.output_node}};
  }
  return info;
}

json PromptError(const absl::Status& status) {
  const std::string message(status.message());
  json error = {{"type", "prompt_outputs_failed_validation"},
                {"message", "Prompt outputs failed validation"},
                {"details", message},
                {"extra_info", json::object()}};
  json node_errors = json::object();
  // "origin: node 5 (KSampler).sampler_name: ..." names node 5.
  const size_t at = message.find("node ");
  const size_t open = message.find(" (", at);
  const size_t close = message.find(')', open);
  if (at != std::string::npos && open != std::string::npos && close != std::string::npos) {
    const std::string id = message.substr(at + 5, open - at - 5);
    const std::string class_type = message.substr(open + 2, close - open - 2);
    std::string input;
    if (close + 1 < message.size() && message[close + 1] == '.') input = message.substr(close + 2, message.find(':', close) - close - 2);
    node_errors[id] = {{"errors", json::array({{{"type", "value_not_valid"},
                                                {"message", message.substr(at)},
                                                {"details", message},
                                                {"extra_info", {{"input_name", input}}}}})},
                       {"dependent_outputs", json::array()},
                       {"class_type", class_type}};
  }
  return {{"error", error}, {"node_errors", node_errors}};
}

std::string ViewFilename(const std::string& job_id, int index) { return absl::StrCat(job_id, "_", index, ".png"); }

bool ParseViewFilename(const std::string& filename, std::string* job_id, int* index) {
  const size_t sep = filename.rfind('_');
  if (sep == std::string::npos || sep == 0 || filename.size() < 5 || filename.substr(filename.size() - 4) != ".png") {
    return false;
  }
  *job_id = filename.substr(0, sep);
  return absl::SimpleAtoi(filename.substr(sep + 1, filename.size() - 4 - sep - 1), index) && *index >= 0 &&
         job_id->find_first_of("/\\.") == std::string::npos;
}

json QueueEntry(const ComfyPrompt& p) {
  json outputs = json::array();
  for (const auto& [id, count] : p.saves) outputs.push_back(id);
  return json::array({p.number, p.job_id, p.workflow, {{"client_id", p.client_id}}, outputs});
}

bool JobFinished(const v1::Job& job) {
  return job.state() == v1::JOB_DONE || job.state() == v1::JOB_FAILED || job.state() == v1::JOB_CANCELLED;
}

json HistoryEntry(const ComfyPrompt& p, const v1::Job& job, const std::vector<v1::Item>& items) {
  json outputs = json::object();
  size_t next = 0;  // the job's items in index order, each SaveImage's images in turn
  for (const auto& [id, count] : p.saves) {
    json images = json::array();
    for (int k = 0; k < count && next < items.size(); ++k, ++next) {
      if (items[next].state() != v1::ITEM_DONE) continue;
      images.push_back({{"filename", ViewFilename(p.job_id, items[next].index())}, {"subfolder", ""}, {"type", "output"}});
    }
    outputs[id] = {{"images", images}};
  }
  const bool success = job.state() == v1::JOB_DONE;
  json messages = json::array({json::array({"execution_start", {{"prompt_id", p.job_id}, {"timestamp", job.created_unix_ms()}}})});
  messages.push_back(json::array({success ? "execution_success" : (job.state() == v1::JOB_CANCELLED ? "execution_interrupted" : "execution_error"),
                                  {{"prompt_id", p.job_id}, {"timestamp", job.finished_unix_ms()}}}));
  return {{"prompt", QueueEntry(p)},
          {"outputs", outputs},
          {"status", {{"status_str", success ? "success" : "error"}, {"completed", success}, {"messages", messages}}},
          {"meta", json::object()}};
}

std::string WebSocketAccept(const std::string& key) {
  const std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::Base64Escape(std::string(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string WebSocketFrame(int opcode, const std::string& payload) {
  std::string frame(1, static_cast<char>(0x80 | opcode));
  const uint64_t size = payload.size();
  if (size < 126) {
    frame.push_back(static_cast<char>(size));
  } else if (size <= 0xFFFF) {
    frame.push_back(126);
    for (int shift = 8; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((size >> shift) & 0xFF));
  } else {
    frame.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((size >> shift) & 0xFF));
  }
  return frame + payload;
}

std::vector<WebSocketMessage> TakeClientFrames(std::string* buffer) {
  std::vector<WebSocketMessage> messages;
  size_t at = 0;
  while (buffer->size() - at >= 2) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>((*buffer)[at + i]); };
    const bool masked = byte(1) & 0x80;
    uint64_t size = byte(1) & 0x7F;
    size_t header = 2;
    const size_t extended = size == 126 ? 2 : (size == 127 ? 8 : 0);
    if (buffer->size() - at < header + extended) break;
    if (extended) {
      size = 0;
      for (size_t i = 0; i < extended; ++i) size = (size << 8) | byte(2 + i);
    }
    header += extended;
    const size_t mask_at = header;
    if (masked) header += 4;
    if (buffer->size() - at < header || buffer->size() - at - header < size) break;
    WebSocketMessage message{byte(0) & 0x0F, buffer->substr(at + header, size)};
    for (size_t i = 0; masked && i < message.payload.size(); ++i) message.payload[i] ^= byte(mask_at + i % 4);
    messages.push_back(std::move(message));
    at += header + size;
  }
  buffer->erase(0, at);
  return messages;
}

json StatusMessage(int queue_remaining, const std::string& client_id) {
  return Message("status", {{"status", {{"exec_info", {{"queue_remaining", queue_remaining}}}}}, {"sid", client_id}});
}

ComfyProgress::ComfyProgress(ComfyPrompt prompt) : prompt_(std::move(prompt)) {
  for (const auto& [save, count] : prompt_.saves) samplers_.push_back(SamplerOf(prompt_.workflow, save));
}

std::string ComfyProgress::SamplerOfItem(int index) const {
  for (size_t i = 0; i < prompt_.saves.size(); ++i) {
    if (index < prompt_.saves[i].second) return samplers_[i];
    index -= prompt_.saves[i].second;
  }
  return samplers_.empty() ? "" : samplers_.back();
}

void ComfyProgress::Start(std::vector<json>& out) {
  if (started_) return;
  started_ = true;
  out.push_back(Message("execution_start", {{"prompt_id", prompt_.job_id}}));
  out.push_back(Message("execution_cached", {{"nodes", json::array()}, {"prompt_id", prompt_.job_id}}));
}

void ComfyProgress::Executing(const std::string& node, std::vector<json>& out) {
  if (node == executing_) return;
  executing_ = node;
  out.push_back(Message("executing", {{"node", node}, {"prompt_id", prompt_.job_id}}));
}

std::vector<json> ComfyProgress::On(const v1::JobEvent& event, const std::vector<v1::Item>& items) {
  std::vector<json> out;
  if (finished_ || event.has_queued() || event.has_waiting()) return out;
  Start(out);
  if (event.has_started() && event.started().indices_size() > 0) {
    Executing(SamplerOfItem(event.started().indices(0)), out);
  } else if (event.has_progress() && event.progress().indices_size() > 0) {
    const std::string node = SamplerOfItem(event.progress().indices(0));
    Executing(node, out);
    out.push_back(Message("progress", {{"value", event.progress().step()},
                                       {"max", event.progress().total_steps()},
                                       {"prompt_id", prompt_.job_id},
                                       {"node", node}}));
  } else if (event.has_job_done()) {
    finished_ = true;
    const json outputs = HistoryEntry(prompt_, event.job(), items)["outputs"];
    const v1::JobState state = event.job_done().state();
    for (const auto& [save, count] : prompt_.saves) {
      if (state != v1::JOB_DONE) break;
      Executing(save, out);
      out.push_back(Message("executed", {{"node", save}, {"output", outputs[save]}, {"prompt_id", prompt_.job_id}}));
    }
    const char* end = state == v1::JOB_DONE ? "execution_success"
                      : state == v1::JOB_CANCELLED ? "execution_interrupted" : "execution_error";
    out.push_back(Message(end, {{"prompt_id", prompt_.job_id}}));
    out.push_back(Message("executing", {{"node", nullptr}, {"prompt_id", prompt_.job_id}}));
  }
  return out;
}

}  // namespace spriteforge::coordinator::http
