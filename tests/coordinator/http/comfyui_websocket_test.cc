// ComfyUI's /ws websocket without a server: the handshake, frames both ways, and a job's
// events as the messages ComfyUI's scripts wait for.
#include <gtest/gtest.h>

#include "coordinator/transport/http/comfyui.h"

namespace spriteforge::coordinator::http {
namespace {

using json = nlohmann::json;

TEST(ComfyWebSocket, TheHandshakeAnswersTheKeyAsRfc6455Shows) {
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(ComfyWebSocket, FramesCarryTheirLengthInOneTwoOrEightBytes) {
  EXPECT_EQ(WebSocketFrame(kWsText, "hi"), std::string("\x81\x02hi"));
  const std::string medium = WebSocketFrame(kWsText, std::string(300, 'x'));
  EXPECT_EQ(medium.substr(0, 4), std::string("\x81\x7e\x01\x2c"));
  const std::string large = WebSocketFrame(kWsText, std::string(70000, 'x'));
  EXPECT_EQ(large.substr(0, 10), std::string("\x81\x7f\0\0\0\0\0\x01\x11\x70", 10));
  EXPECT_EQ(large.size(), 70010u);
}

TEST(ComfyWebSocket, MaskedClientFramesAreUnmaskedAndAPartialOneWaits) {
  // A masked "Hello" ping (RFC 6455, 5.7), then the first bytes of a close frame.
  std::string buffer("\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" "\x88\x82\x00", 14);
  auto frames = TakeClientFrames(&buffer);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kWsPing);
  EXPECT_EQ(frames[0].payload, "Hello");
  EXPECT_EQ(buffer.size(), 3u);
  buffer += std::string("\0\0\0\x03\xe8", 5);
  frames = TakeClientFrames(&buffer);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kWsClose);
  EXPECT_EQ(frames[0].payload, std::string("\x03\xe8"));
  EXPECT_TRUE(buffer.empty());
}

v1::JobEvent Event(const std::string& job_id) {
  v1::JobEvent event;
  event.set_job_id(job_id);
  return event;
}

TEST(ComfyWebSocket, AJobsEventsBecomeComfyUisMessagesEndingInExecutingNull) {
  ComfyPrompt prompt;
  prompt.job_id = "job-1";
  prompt.workflow = json::parse(R"({
    "3": {"class_type": "KSampler", "inputs": {"model": ["1", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}})");
  prompt.saves = {{"9", 1}};
  ComfyProgress progress(prompt);
  v1::JobEvent queued = Event("job-1");
  queued.mutable_queued()->set_items(1);
  EXPECT_TRUE(progress.On(queued, {}).empty());

  v1::JobEvent step = Event("job-1");
  step.mutable_progress()->add_indices(0);
  step.mutable_progress()->set_step(1);
  step.mutable_progress()->set_total_steps(2);
  std::vector<std::string> types;
  for (const json& m : progress.On(step, {})) types.push_back(m["type"]);
  EXPECT_EQ(types, (std::vector<std::string>{"execution_start", "execution_cached", "executing", "progress"}));
  const json again = progress.On(step, {});
  ASSERT_EQ(again.size(), 1u);  // the sampler is still executing
  EXPECT_EQ(again[0]["data"], json::parse(R"({"value": 1, "max": 2, "prompt_id": "job-1", "node": "3"})"));

  v1::JobEvent done = Event("job-1");
  done.mutable_job_done()->set_state(v1::JOB_DONE);
  v1::Item item;
  item.set_index(0);
  item.set_state(v1::ITEM_DONE);
  const std::vector<json> end = progress.On(done, {item});
  ASSERT_EQ(end.size(), 4u);
  EXPECT_EQ(end[0]["data"]["node"], "9");
  EXPECT_EQ(end[1]["type"], "executed");
  EXPECT_EQ(end[1]["data"]["output"]["images"][0]["filename"], "job-1_0.png");
  EXPECT_EQ(end[2]["type"], "execution_success");
  EXPECT_EQ(end[3], json::parse(R"({"type": "executing", "data": {"node": null, "prompt_id": "job-1"}})"));
  EXPECT_TRUE(progress.finished());
}

}  // namespace
}  // namespace spriteforge::coordinator::http
