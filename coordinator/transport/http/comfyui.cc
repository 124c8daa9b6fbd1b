#include "coordinator/transport/http/comfyui.h"

#include <algorithm>
#include <cstdint>
#include <limits>

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

}  // namespace spriteforge::coordinator::http
